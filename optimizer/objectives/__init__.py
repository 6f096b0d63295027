"""The objective (`objective.kind`): what "better" means for a pose, in one object per kind, registered in
`optimizer.registry.OBJECTIVES`. Each answers four questions (see `base.Objective`): its truth value from
per-target RSS, its differentiable model value from the surrogate's per-target powers, whether a pose holds
(its requirement is met: the tolerance rule), and how two results rank. `min` (the worst target) is the
default; `percentile` and `coverage` are the others."""

from __future__ import annotations

from optimizer.objectives.base import Objective


def of(exp, rs=None, baseline_dbm=None) -> Objective:
    """The objective an experiment asks for (`exp.objective`: kind and parameters) on scene `rs`
    (`optimizer.physics.scene.RadioScene`: its targets after the area drop, their weights, and with
    `objective.protect` the protected points it appends as receivers and their RSS without the plate;
    `baseline_dbm` [all receivers], when given, instead of the scene's own baseline). Without `rs` the targets are
    the experiment's (`target_points`, no drop), and `objective.protect` needs `baseline_dbm`."""
    import numpy as np

    from optimizer.registry import OBJECTIVES

    cfg = exp.objective
    weights = None  # all 1 (and `min` ignores them): the kinds' unweighted arithmetic
    if exp.targets.weighted():
        weights = rs.target_weights if rs is not None else np.asarray(exp.target_weights(), float)
    inner = OBJECTIVES.get(cfg.kind)(cfg, weights=weights)
    if cfg.protect is None:
        return inner
    n = rs.n_targets if rs is not None else len(exp.target_points())
    from optimizer.objectives.protect import Protected, ProtectRule

    _, cells = exp.protect_points()
    if baseline_dbm is None:
        if rs is None:
            raise ValueError("objective.protect: the rule needs the protected points' RSS without the plate "
                             "(a scene or baseline_dbm)")
        baseline_dbm = rs.baseline_dbm()
    base = np.asarray(baseline_dbm, float).reshape(-1)[n:]
    rule = ProtectRule(base, np.asarray(cells, float), float(cfg.coverage_threshold_dbm),
                       float(cfg.protect.max_loss_db), cfg.protect.max_area_m2)
    return Protected(inner, n, rule)


def default(temperature_db: float = 1.0, threshold_dbm: float = -90.0) -> Objective:
    """The `min` objective with a soft-min temperature (tests and callers with no experiment at hand)."""
    from optimizer.objectives.min import MinObjective

    return MinObjective.with_settings(temperature_db=temperature_db, threshold_dbm=threshold_dbm)


def or_default(objective, temperature_db: float) -> Objective:
    """`objective`, or (None) the `min` objective's soft-min at `temperature_db`: what reduces per-target
    powers to a model value where a caller has no experiment at hand."""
    return objective if objective is not None else default(temperature_db)


__all__ = ["Objective", "default", "of", "or_default"]
