"""The objective's interface and what its kinds share.

Units: RSS and model powers in dBm, a target no path reaches is -inf (see `optimizer.physics.metrics`);
scores are "higher is better" numbers on a dB-like scale, below `SIZE_RANK_BONUS_DB` in spread.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from optimizer.constants import NO_PATH_FLOOR_DBM, SIZE_RANK_BONUS_DB
from optimizer.physics.metrics import has_path, no_path_as_floor, rss_stats
from optimizer.records import RssStats


def floor_dbm(v: float | None) -> float:
    return NO_PATH_FLOOR_DBM if v is None else max(float(v), NO_PATH_FLOOR_DBM)


def with_tie_breaks(head: float, stats: RssStats) -> float:
    """`head` (the objective's own number, higher better) then coverage, then mean RSS as tie-breaks whose
    weights are too small to reorder distinct heads by more than 0.01 dB."""
    mean = floor_dbm(stats.mean_rss_dbm) - NO_PATH_FLOOR_DBM  # >= 0
    return float(head + 1e-2 * stats.coverage - 1e-2 * min(stats.no_path, 100) / 100.0
                 + 1e-6 * min(mean, 1000.0))


def focus_values(values_db, focus) -> np.ndarray:
    """The values (-inf as the floor) of the focus targets (all of them when `focus` is None or empty)."""
    v = no_path_as_floor(values_db)
    if focus is not None and np.any(focus):
        v = v[np.asarray(focus, bool)]
    return v


def focus_mask(n: int, focus) -> np.ndarray:
    mask = np.ones(n, bool) if focus is None else np.asarray(focus, bool)
    return mask if mask.any() else np.ones(n, bool)


class Objective:
    """One objective kind. Subclasses set `kind` and implement `_truth`, `_holds`, `score`, `model_grad`;
    `min` also overrides the Dr.Jit model for its exact historical arithmetic."""

    kind = ""

    def __init__(self, cfg, weights=None):
        """weights: one per target (`targets.weights`, area weights), or None (all 1); `min` ignores them."""
        self.cfg = cfg
        self.threshold_dbm = float(cfg.coverage_threshold_dbm)
        self.temperature_db = float(cfg.softmin_temperature_db)
        self.weights = None if weights is None else np.asarray(weights, float).reshape(-1)

    def weights_of(self, n: int) -> np.ndarray:
        """The first `n` targets' weights (the targets come first in every array; 1 each without weights)."""
        if self.weights is None:
            return np.ones(n)
        w = self.weights[:n]
        return np.concatenate([w, np.ones(n - w.size)]) if w.size < n else w

    def wanted(self, rss_dbm):
        """The targets' part of an array over every receiver (all of it, unless `objective.protect` appends its
        points)."""
        return np.asarray(rss_dbm, float)

    @classmethod
    def with_settings(cls, *, temperature_db: float = 1.0, threshold_dbm: float = -90.0, weights=None, **params):
        return cls(SimpleNamespace(kind=cls.kind, softmin_temperature_db=temperature_db,
                                   coverage_threshold_dbm=threshold_dbm, **params), weights=weights)

    # --- 1. the truth value ---------------------------------------------------------------------------------
    def stats(self, rss_dbm) -> RssStats:
        """The truth statistics of one evaluation; kinds other than `min` add their score to them."""
        return rss_stats(rss_dbm, self.threshold_dbm)

    def truth(self, rss_dbm) -> float | None:
        """The objective's truth value of one evaluation (None: undefined, e.g. a target without a path)."""
        return self._truth(np.asarray(rss_dbm, float).reshape(-1))

    def _truth(self, r: np.ndarray) -> float | None:
        raise NotImplementedError

    def params(self) -> dict:
        """The kind's parameters as the user gave them (for `summary.objective`)."""
        return {"coverage_threshold_dbm": self.threshold_dbm, "softmin_temperature_db": self.temperature_db}

    # --- 2. the model value (smooth, for the gradient) --------------------------------------------------------
    def model(self, values_db, focus=None) -> float:
        """The smooth model value over the focus targets of per-target powers [dBm] (numpy)."""
        return self.model_grad(values_db, focus)[0]

    def model_grad(self, values_db, focus=None) -> tuple[float, np.ndarray]:
        """(model value, its gradient w.r.t. each target's power [same length as values_db])."""
        raise NotImplementedError

    def model_dr(self, values, values_np: np.ndarray, focus):
        """The model value as a Dr.Jit expression of `values` (a Float per target [dB]; `values_np` its
        detached copy): the detached value plus the first-order term, so reverse-mode AD gives the
        gradient of `model_grad`."""
        import drjit as dr

        from optimizer.physics.backend import to_float

        value, grad = self.model_grad(values_np, focus)
        return dr.opaque(type(values), value) + dr.sum(to_float(grad) * (values - to_float(values_np)))

    def model_dr_many(self, values, values_np: np.ndarray, focus) -> np.ndarray:
        """The model value for P poses at once (`values_np` [P, N]; no gradient): [P] numpy."""
        return np.array([self.model(row, focus) for row in np.asarray(values_np, float)])

    # --- 3. the requirement (coverage / the tolerance rule) ---------------------------------------------------
    def holds(self, rss_dbm) -> bool:
        """Whether one pose's truth meets the objective's requirement (a box holds when every pose does)."""
        return bool(self._holds(np.asarray(rss_dbm, float).reshape(-1)))

    def holds_each(self, rss_dbm) -> np.ndarray:
        """`holds` per row of [M, N] truths."""
        r = np.asarray(rss_dbm, float)
        return np.array([self._holds(row) for row in r.reshape(len(r), -1)], bool)

    def _holds(self, r: np.ndarray) -> bool:
        raise NotImplementedError

    def met(self, stats: RssStats) -> bool:
        """`holds` from a result's statistics alone."""
        raise NotImplementedError

    def covered(self, r: np.ndarray) -> np.ndarray:
        """Per target: a path, at or above the threshold."""
        return has_path(r) & (r >= self.threshold_dbm)

    # --- 4. the ranking ---------------------------------------------------------------------------------------
    def score(self, stats: RssStats) -> float:
        """The one ranking of truth results (higher is better), for the pruner and the winner alike."""
        raise NotImplementedError

    def rank_check(self, chk) -> tuple:
        """Worlds and candidates rank by their worst case over the tolerance box (a `ToleranceCheck`): holding
        first, then the worst case's score, then the nominal score."""
        return (chk.holds, self.score(chk.worst), self.score(chk.nominal))

    def score_rss(self, rss_dbm) -> float:
        return self.score(self.stats(rss_dbm))

    def sized_score(self, stats: RssStats, area_rank: int, ranks: int) -> float:
        """`score` under a size catalogue (optimizer.experiment.catalogue): a result that meets the
        requirement ranks above every one that does not, and among those that do, the smaller plates (area
        rank 0: the smallest of `ranks`) first; the others rank by `score` alone."""
        bonus = SIZE_RANK_BONUS_DB * (ranks - area_rank) if self.met(stats) else 0.0
        return self.score(stats) + bonus
