"""Result files of a run: targets.csv, trajectories.csv, winner_scene/, summary.json (written last)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from optimizer.constants import SUMMARY_FILE, TARGETS_FILE, TRAJECTORIES_FILE

TRAJECTORY_COLUMNS = ["world", "step", "x", "y", "z", "yaw_deg", "pitch_deg", "min_rss_dbm", "p5_rss_dbm",
                      "mean_rss_dbm", "coverage", "objective_dbm", "surrogate_dbm", "best_min_rss_dbm",
                      "best_coverage", "best_mean_rss_dbm", "evaluations", "step_s"]


def _clean(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, (np.floating,)):
        return _clean(float(v))
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def write_json(path: Path, data: dict):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(_clean(data), indent=2, sort_keys=False, allow_nan=False) + "\n")
    tmp.replace(path)


def write_targets(path: Path, targets, baseline_rss, winner_rss, threshold_dbm: float):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["target", "x", "y", "z", "baseline_rss_dbm", "winner_rss_dbm", "gain_db", "covered_baseline",
                    "covered_winner"])
        for i, (p, b, r) in enumerate(zip(targets, baseline_rss, winner_rss)):
            w.writerow([i, f"{p[0]:.3f}", f"{p[1]:.3f}", f"{p[2]:.3f}", f"{b:.3f}", f"{r:.3f}", f"{r - b:.3f}",
                        int(b >= threshold_dbm), int(r >= threshold_dbm)])


def write_trajectories(path: Path, rows: list[dict]):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=TRAJECTORY_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in TRAJECTORY_COLUMNS})


def read_summary(run_dir: Path) -> dict:
    return json.loads(Path(run_dir, SUMMARY_FILE).read_text())


__all__ = ["write_json", "write_targets", "write_trajectories", "read_summary", "TRAJECTORY_COLUMNS",
           "TARGETS_FILE", "TRAJECTORIES_FILE", "SUMMARY_FILE"]
