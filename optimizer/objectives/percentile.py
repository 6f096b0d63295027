"""`objective.kind: percentile` with `p` [%] (e.g. 5): maximise the p-th percentile of target RSS.

Truth: the percentile by the linear-interpolation definition (numpy's default, `method="linear"`: over the
n values sorted ascending, rank (n - 1) p / 100, interpolated between its neighbours), no path counting as
`NO_PATH_FLOOR_DBM`; None when it lies at that floor. Model: a soft quantile, the root q of
mean_i sigmoid((q - P_i) / T) = p / 100 over the focus targets (T = `softmin_temperature_db`), whose gradient
is sigmoid'_i / sum_j sigmoid'_j (implicit differentiation). With target weights (`targets.weights`, an area's
`weight`) the truth is numpy's weighted percentile (`method="inverted_cdf"`: the smallest value whose share of
the total weight, counting it and those below, reaches p / 100) and the model's mean is weighted. A pose holds when the percentile is at or
above the coverage threshold. Ranking: the percentile, then the tie-breaks of `min`."""

from __future__ import annotations

import numpy as np

from optimizer.constants import NO_PATH_FLOOR_DBM, P5_PERCENTILE, SOFT_QUANTILE_BISECTIONS
from optimizer.objectives.base import Objective, floor_dbm, focus_mask, with_tie_breaks
from optimizer.physics.metrics import no_path_as_floor, rss_stats
from optimizer.records import RssStats
from optimizer.registry import OBJECTIVES


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def soft_quantile(values, fraction: float, temperature: float, weights=None) -> tuple[float, np.ndarray]:
    """(q, dq/dvalues): the root q of mean(sigmoid((q - v) / T)) = fraction (clipped to half a value inside
    (0, 1)), by bisection, and its gradient by implicit differentiation. With `weights`, the weighted mean
    (sum w sigmoid / sum w; clipped to half the smallest weight's share inside (0, 1))."""
    v = np.asarray(values, float)
    if weights is None:
        f = min(max(fraction, 0.5 / v.size), 1.0 - 0.5 / v.size)

        def mean(x):
            return np.mean(x)
    else:
        w = np.asarray(weights, float) / np.sum(weights)
        edge = 0.5 * float(w.min())
        f = min(max(fraction, edge), 1.0 - edge)

        def mean(x):
            return np.sum(w * x)
    lo, hi = v.min() - 50.0 * temperature, v.max() + 50.0 * temperature
    for _ in range(SOFT_QUANTILE_BISECTIONS):
        mid = 0.5 * (lo + hi)
        if mean(_sigmoid((mid - v) / temperature)) < f:
            lo = mid
        else:
            hi = mid
    q = 0.5 * (lo + hi)
    s = _sigmoid((q - v) / temperature)
    d = s * (1.0 - s) if weights is None else w * s * (1.0 - s)
    return float(q), d / d.sum() if d.sum() > 0 else np.full(v.size, 1.0 / v.size)


class PercentileObjective(Objective):
    kind = "percentile"

    def __init__(self, cfg, weights=None):
        super().__init__(cfg, weights)
        self.p = float(P5_PERCENTILE if getattr(cfg, "p", None) is None else cfg.p)

    def params(self) -> dict:
        return {"p": self.p, **super().params()}

    def _truth(self, r):
        if self.weights is None:
            q = float(np.percentile(no_path_as_floor(r), self.p))
        else:  # numpy's weighted percentile: the smallest value whose weight share reaches p / 100
            q = float(np.percentile(no_path_as_floor(r), self.p, weights=self.weights_of(r.size),
                                    method="inverted_cdf"))
        return q if q > NO_PATH_FLOOR_DBM else None

    def stats(self, rss_dbm) -> RssStats:
        s = rss_stats(rss_dbm, self.threshold_dbm)
        q = self.truth(rss_dbm)
        return s.model_copy(update={"objective_value": q, "objective_score": with_tie_breaks(floor_dbm(q), s)})

    def model_grad(self, values_db, focus=None):
        v = no_path_as_floor(values_db)
        mask = focus_mask(v.size, focus)
        w = None if self.weights is None else self.weights_of(v.size)[mask]
        q, g = soft_quantile(v[mask], self.p / 100.0, self.temperature_db, w)
        grad = np.zeros(v.size)
        grad[mask] = g
        return q, grad

    def _holds(self, r):
        q = self._truth(r)
        return q is not None and q >= self.threshold_dbm

    def met(self, stats: RssStats) -> bool:
        return stats.objective_value is not None and stats.objective_value >= self.threshold_dbm

    def score(self, stats: RssStats) -> float:
        return floor_dbm(None) if stats.objective_score is None else float(stats.objective_score)


OBJECTIVES.register("percentile", PercentileObjective)
