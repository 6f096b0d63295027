"""Statistics of received power over targets (all from ray-traced truth) and the ranking of worlds."""

from __future__ import annotations

import numpy as np

from optimizer.constants import P5_PERCENTILE, RSS_FLOOR_DBM


def floor_rss(rss_dbm) -> np.ndarray:
    return np.maximum(np.nan_to_num(np.asarray(rss_dbm, float), nan=RSS_FLOOR_DBM, neginf=RSS_FLOOR_DBM),
                      RSS_FLOOR_DBM)


def rss_metrics(rss_dbm, threshold_dbm: float) -> dict:
    """min, 5th percentile and mean RSS [dBm] and the fraction of targets at or above the threshold."""
    r = floor_rss(rss_dbm)
    return {
        "min_rss_dbm": float(r.min()),
        "p5_rss_dbm": float(np.percentile(r, P5_PERCENTILE)),
        "mean_rss_dbm": float(r.mean()),
        "coverage": float(np.mean(r >= threshold_dbm)),
    }


def rank_key(m: dict) -> tuple:
    """Higher is better: min RSS, then coverage, then mean RSS."""
    return (round(m["min_rss_dbm"], 6), m["coverage"], m["mean_rss_dbm"])


def softmin_db(values_db, temperature_db: float, mask=None) -> float:
    v = floor_rss(values_db)
    if mask is not None and np.any(mask):
        v = v[np.asarray(mask, bool)]
    m = v.min()
    return float(m - temperature_db * np.log(np.mean(np.exp(-(v - m) / temperature_db))))
