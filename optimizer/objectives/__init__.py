"""The objective (`objective.kind`): what "better" means for a pose, in one object per kind, registered in
`optimizer.registry.OBJECTIVES`. Each answers four questions (see `base.Objective`): its truth value from
per-target RSS, its differentiable model value from the surrogate's per-target powers, whether a pose holds
(its requirement is met: the tolerance rule), and how two results rank. `min` (the worst target) is the
default; `percentile` and `coverage` are the others."""

from __future__ import annotations

from optimizer.objectives.base import Objective


def of(exp) -> Objective:
    """The objective an experiment asks for (`exp.objective`: kind and parameters)."""
    from optimizer.registry import OBJECTIVES

    cfg = exp.objective
    return OBJECTIVES.get(cfg.kind)(cfg)


def default(temperature_db: float = 1.0, threshold_dbm: float = -90.0) -> Objective:
    """The `min` objective with a soft-min temperature (tests and callers with no experiment at hand)."""
    from optimizer.objectives.min import MinObjective

    return MinObjective.with_settings(temperature_db=temperature_db, threshold_dbm=threshold_dbm)


__all__ = ["Objective", "default", "of"]
