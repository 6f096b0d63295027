"""Truth statistics over the targets of one evaluation (all from ray tracing, never from a model)."""

from __future__ import annotations

from pydantic import Field

from optimizer.records.base import Record

STAT_FIELDS = ("min_rss_dbm", "p5_rss_dbm", "mean_rss_dbm", "coverage", "no_path")


class RssStats(Record):
    """Received power over the targets. A target no path reaches has no dBm value: `min_rss_dbm` (and
    `p5_rss_dbm` when the 5th-percentile target is one of them) is then null, and `no_path` counts them."""

    min_rss_dbm: float | None = Field(description="worst target [dBm]; null when a target has no path")
    p5_rss_dbm: float | None = Field(description="5th percentile over targets (nearest rank below) [dBm]; null "
                                                 "when that target has no path")
    mean_rss_dbm: float | None = Field(description="mean of dBm over the targets that have a path; null if none")
    coverage: float = Field(ge=0, le=1, description="share of targets at or above the coverage threshold")
    no_path: int = Field(ge=0, description="targets that no path reaches")
    objective_value: float | None = Field(default=None, description="an objective other than min "
                                          "(objective.kind): its truth value (percentile [dBm], coverage [share])")
    objective_score: float | None = Field(default=None, description="an objective other than min: its ranking "
                                          "score, which needs more than the fields above")
    protect_held: bool | None = Field(default=None, description="objective.protect: whether the result keeps the "
                                      "constraint (no protected point lost, or the lost area within max_area_m2); "
                                      "null without it")
    protect_margin_db: float | None = Field(default=None, description="objective.protect: the smallest margin of "
                                            "a protected point covered without the plate [dB] (negative: lost)")
    protect_lost: int | None = Field(default=None, ge=0, description="objective.protect: protected points lost")
    protect_lost_area_m2: float | None = Field(default=None, ge=0, description="objective.protect: the lost area "
                                               "points' cells [m^2]")

    @property
    def all_covered(self) -> bool:
        return self.coverage >= 1.0 and self.no_path == 0
