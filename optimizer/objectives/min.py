"""`objective.kind: min` (the default): maximise the worst target's RSS. Truth: the minimum over targets
(None when a target has no path); model: the soft-min (log-sum-exp, temperature `softmin_temperature_db`)
over the focus targets; a pose holds when every target has a path at or above the coverage threshold;
ranking: min RSS, then coverage, then mean RSS (`base.with_tie_breaks`). Target weights do not apply: the
worst target is the worst whatever its weight."""

from __future__ import annotations

import numpy as np

from optimizer.objectives.base import Objective, floor_dbm, focus_mask, focus_values, with_tie_breaks
from optimizer.physics.metrics import has_path, no_path_as_floor
from optimizer.records import RssStats
from optimizer.registry import OBJECTIVES


def softmin_db(values_db, temperature_db: float, mask=None) -> float:
    """Soft-min (log-sum-exp) over targets [dBm]: -T log(mean exp(-v / T)) over the masked values."""
    v = focus_values(values_db, mask)
    m = v.min()
    return float(m - temperature_db * np.log(np.mean(np.exp(-(v - m) / temperature_db))))


class MinObjective(Objective):
    kind = "min"

    def _truth(self, r):
        return float(r.min()) if has_path(r).all() else None

    def model(self, values_db, focus=None) -> float:
        return softmin_db(values_db, self.temperature_db, focus)

    def model_grad(self, values_db, focus=None):
        v = no_path_as_floor(values_db)
        mask = focus_mask(v.size, focus)
        w = np.where(mask, np.exp(-(v - v[mask].min()) / self.temperature_db), 0.0)
        return self.model(values_db, focus), w / w.sum()

    def model_dr(self, values, values_np, focus):
        """The one Dr.Jit soft-min over targets: -T log(mean exp(-P/T)) over the focus targets, shifted by the
        (detached) minimum for stability."""
        import drjit as dr
        import mitsuba as mi

        from optimizer.physics.backend import to_float

        t = self.temperature_db
        mask = focus_mask(values_np.size, focus)
        pmin = dr.opaque(mi.Float, float(values_np[mask].min()))
        # select, not a product with the mask: a target left out far below the focus (a protected point, a
        # blocked target) overflows exp to inf, and inf * 0 is NaN; where exp is finite the two are the same bits
        e = dr.select(to_float(mask) > 0.5, dr.exp(-(values - pmin) / t), 0.0)
        return pmin - t * dr.log(dr.sum(e) / dr.opaque(mi.Float, float(mask.sum())))

    def model_dr_many(self, values, values_np, focus) -> np.ndarray:
        """`model_dr` for P poses at once: `values` a Dr.Jit Float of P x N lanes (pose-major) [dB]."""
        import drjit as dr

        from optimizer.physics.backend import to_float

        n_p, n_tg = values_np.shape
        mask = focus_mask(n_tg, focus)
        t = self.temperature_db
        pmin = values_np[:, mask].min(axis=1)  # as `model_dr`, per pose
        e = dr.select(to_float(np.tile(mask, n_p)) > 0.5, dr.exp(-(values - to_float(np.repeat(pmin, n_tg))) / t),
                      0.0)  # as `model_dr`: select, not a product (inf * 0)
        obj = to_float(pmin) - t * dr.log(dr.block_sum(e, n_tg) / float(mask.sum()))
        return np.array(obj, dtype=float).reshape(n_p)

    def _holds(self, r):
        return np.all(self.covered(r))

    def holds_each(self, rss_dbm):
        r = np.asarray(rss_dbm, float)
        return np.all(self.covered(r), axis=-1)

    def met(self, stats: RssStats) -> bool:
        return stats.coverage >= 1.0

    def score(self, stats: RssStats) -> float:
        """Min RSS first (no path counts as NO_PATH_FLOOR_DBM), then the tie-breaks."""
        return with_tie_breaks(floor_dbm(stats.min_rss_dbm), stats)


OBJECTIVES.register("min", MinObjective)
