"""`objective.kind: coverage`: maximise the share of targets at or above the coverage threshold, then the
margin of the worst covered ones.

Truth: the share of targets covered (a path, RSS >= threshold). Model: a sigmoid count,
COVERAGE_MODEL_SCALE * mean_i sigmoid((P_i - threshold) / T) over the focus targets
(T = `softmin_temperature_db`; percent of targets). A pose holds when the share is at least
`objective.required` (default 1: every target). Ranking: COVERAGE_SCORE_SPAN_DB * (covered + m / (m +
COVERAGE_MARGIN_SCALE_DB)) / targets, m the margin [dB] of the worst covered target (0 if none): the count
first, then the margin, then the tie-breaks of `min`."""

from __future__ import annotations

import numpy as np

from optimizer.constants import COVERAGE_MARGIN_SCALE_DB, COVERAGE_MODEL_SCALE, COVERAGE_SCORE_SPAN_DB
from optimizer.objectives.base import Objective, focus_mask, with_tie_breaks
from optimizer.objectives.percentile import _sigmoid
from optimizer.physics.metrics import no_path_as_floor, rss_stats
from optimizer.records import RssStats
from optimizer.registry import OBJECTIVES


class CoverageObjective(Objective):
    kind = "coverage"

    def __init__(self, cfg, weights=None):
        super().__init__(cfg, weights)
        self.required = float(1.0 if getattr(cfg, "required", None) is None else cfg.required)

    def params(self) -> dict:
        return {"required": self.required, **super().params()}

    def share(self, r) -> float:
        """The (weighted) share of targets covered."""
        ok = self.covered(r)
        if self.weights is None:
            return float(np.mean(ok))
        w = self.weights_of(ok.size)
        return float(np.sum(w * ok) / np.sum(w))

    def _truth(self, r):
        return self.share(r)

    def stats(self, rss_dbm) -> RssStats:
        r = np.asarray(rss_dbm, float).reshape(-1)
        s = rss_stats(r, self.threshold_dbm)
        ok = self.covered(r)
        margin = float(np.min(r[ok]) - self.threshold_dbm) if ok.any() else 0.0
        if self.weights is None:
            head = COVERAGE_SCORE_SPAN_DB * (ok.sum() + margin / (margin + COVERAGE_MARGIN_SCALE_DB)) / r.size
        else:  # the weighted share first, the margin as a fraction of one target after it
            head = COVERAGE_SCORE_SPAN_DB * (self.share(r) + margin / (margin + COVERAGE_MARGIN_SCALE_DB) / r.size)
        return s.model_copy(update={"objective_value": self.share(r),
                                    "objective_score": with_tie_breaks(float(head), s)})

    def model_grad(self, values_db, focus=None):
        v = no_path_as_floor(values_db)
        mask = focus_mask(v.size, focus)
        t = self.temperature_db
        s = _sigmoid((v - self.threshold_dbm) / t)
        if self.weights is not None:
            w = np.where(mask, self.weights_of(v.size), 0.0)
            w = w / w.sum()
            return COVERAGE_MODEL_SCALE * float(np.sum(w * s)), COVERAGE_MODEL_SCALE * w * s * (1.0 - s) / t
        value = COVERAGE_MODEL_SCALE * float(np.mean(s[mask]))
        grad = np.where(mask, COVERAGE_MODEL_SCALE * s * (1.0 - s) / t / mask.sum(), 0.0)
        return value, grad

    def _holds(self, r):
        return self.share(r) >= self.required

    def met(self, stats: RssStats) -> bool:
        if self.weights is not None and stats.objective_value is not None:
            return stats.objective_value >= self.required
        return stats.coverage >= self.required

    def score(self, stats: RssStats) -> float:
        return 0.0 if stats.objective_score is None else float(stats.objective_score)


OBJECTIVES.register("coverage", CoverageObjective)
