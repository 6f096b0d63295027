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

    def __init__(self, cfg):
        super().__init__(cfg)
        self.required = float(1.0 if getattr(cfg, "required", None) is None else cfg.required)

    def params(self) -> dict:
        return {"required": self.required, **super().params()}

    def _truth(self, r):
        return float(np.mean(self.covered(r)))

    def stats(self, rss_dbm) -> RssStats:
        r = np.asarray(rss_dbm, float).reshape(-1)
        s = rss_stats(r, self.threshold_dbm)
        ok = self.covered(r)
        margin = float(np.min(r[ok]) - self.threshold_dbm) if ok.any() else 0.0
        head = COVERAGE_SCORE_SPAN_DB * (ok.sum() + margin / (margin + COVERAGE_MARGIN_SCALE_DB)) / r.size
        return s.model_copy(update={"objective_value": float(ok.mean()),
                                    "objective_score": with_tie_breaks(float(head), s)})

    def model_grad(self, values_db, focus=None):
        v = no_path_as_floor(values_db)
        mask = focus_mask(v.size, focus)
        t = self.temperature_db
        s = _sigmoid((v - self.threshold_dbm) / t)
        value = COVERAGE_MODEL_SCALE * float(np.mean(s[mask]))
        grad = np.where(mask, COVERAGE_MODEL_SCALE * s * (1.0 - s) / t / mask.sum(), 0.0)
        return value, grad

    def _holds(self, r):
        return np.mean(self.covered(r)) >= self.required

    def met(self, stats: RssStats) -> bool:
        return stats.coverage >= self.required

    def score(self, stats: RssStats) -> float:
        return 0.0 if stats.objective_score is None else float(stats.objective_score)


OBJECTIVES.register("coverage", CoverageObjective)
