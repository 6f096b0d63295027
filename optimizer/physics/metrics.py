"""Statistics of received power over targets (ray-traced truth). What is better, and the soft model of it,
is the objective's (`optimizer.objectives`).

Inside this module a target no path reaches is -inf [dBm]; it becomes null in `RssStats` and stands in
as `NO_PATH_FLOOR_DBM` only where arithmetic needs a number (the objectives' scores and models). NaN and +inf are no
power at all: `checked_rss` rejects them (NumericsError), and nothing here turns them into a number.
"""

from __future__ import annotations

import numpy as np

from optimizer.constants import BOLTZMANN_J_K, NO_PATH_FLOOR_DBM, NOISE_TEMPERATURE_K, P5_PERCENTILE
from optimizer.errors import NumericsError
from optimizer.records import RssStats


def checked_rss(rss_dbm, what: str) -> np.ndarray:
    """RSS [dBm] per target as floats, -inf where no path reaches it. NaN or +inf raise NumericsError
    naming `what` (e.g. "truth at (x, y, z) m ...") and the targets concerned."""
    r = np.asarray(rss_dbm, float)
    bad = np.isnan(r) | (r == np.inf)
    if bad.any():
        idx = np.flatnonzero(bad.reshape(-1))
        shown = ", ".join(str(i) for i in idx[:5]) + (", ..." if idx.size > 5 else "")
        raise NumericsError(f"{what}: {'NaN' if np.isnan(r).any() else 'infinite'} received power at "
                            f"{idx.size} of {r.size} targets (target {shown}); not a number to rank, stopped")
    return r


def no_path_as_floor(rss_dbm) -> np.ndarray:
    """RSS [dBm] with -inf (no path) replaced by NO_PATH_FLOOR_DBM, for arithmetic only (NaN raises)."""
    r = checked_rss(rss_dbm, "received power")
    return np.maximum(np.where(np.isneginf(r), NO_PATH_FLOOR_DBM, r), NO_PATH_FLOOR_DBM)


def has_path(rss_dbm) -> np.ndarray:
    return np.isfinite(np.asarray(rss_dbm, float)) & (np.asarray(rss_dbm, float) > NO_PATH_FLOOR_DBM)


def rss_stats(rss_dbm, threshold_dbm: float) -> RssStats:
    """min, 5th percentile and mean RSS [dBm], coverage and the no-path count of one truth evaluation."""
    r = checked_rss(rss_dbm, "received power").reshape(-1)
    ok = has_path(r)
    s = np.sort(np.where(ok, r, -np.inf))
    idx = P5_PERCENTILE / 100.0 * (s.size - 1)
    lo, hi = int(np.floor(idx)), int(np.ceil(idx))
    p5 = None
    if np.isfinite(s[lo]) and np.isfinite(s[hi]):
        p5 = float(s[lo] + (s[hi] - s[lo]) * (idx - lo))
    return RssStats(min_rss_dbm=float(s[0]) if ok.all() else None, p5_rss_dbm=p5,
                    mean_rss_dbm=float(r[ok].mean()) if ok.any() else None,
                    coverage=float(np.mean(ok & (r >= threshold_dbm))), no_path=int((~ok).sum()))


def focus_mask(baseline_rss, threshold_dbm: float, margin_db: float) -> np.ndarray:
    """Targets that need the plate: baseline below threshold + margin (all targets if none do)."""
    b = no_path_as_floor(baseline_rss)
    mask = b < threshold_dbm + margin_db
    return mask if mask.any() else np.ones_like(mask)


def noise_mw(bandwidth_hz: float | None, noise_figure_db: float) -> float:
    """Thermal noise kTB times the noise figure [mW] (T = NOISE_TEMPERATURE_K); 0 without a bandwidth."""
    if bandwidth_hz is None:
        return 0.0
    return BOLTZMANN_J_K * NOISE_TEMPERATURE_K * float(bandwidth_hz) * 1e3 * 10.0 ** (float(noise_figure_db) / 10.0)


def combine_dbm(per_tx_mw, combine: str, noise: float = 0.0) -> np.ndarray:
    """Per target, the transmitters' received powers [R, T] [mW] combined (`objective.combine`): `sum` the
    total [dBm], `best_server` the strongest [dBm], `sinr` the strongest over the others plus `noise` [mW]
    [dB]. -inf where no transmitter reaches a target."""
    p = np.asarray(per_tx_mw, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if combine == "sum":
            return 10.0 * np.log10(p.sum(axis=1))
        best = p.max(axis=1)
        if combine == "best_server":
            return 10.0 * np.log10(best)
        if combine == "sinr":
            return np.where(best > 0, 10.0 * np.log10(best / (p.sum(axis=1) - best + noise)), -np.inf)
    raise ValueError(f"objective.combine: {combine!r} is not one of sum, best_server, sinr")


def worst_over_band(band_rss_dbm) -> np.ndarray:
    """Per target, the worst [dBm] over a band's rows [frequencies, targets] (`RadioScene.band_rss_dbm`; one
    row: that row itself)."""
    band = np.asarray(band_rss_dbm, float)
    return band[0] if len(band) == 1 else band.min(axis=0)
