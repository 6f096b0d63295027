#!/usr/bin/env python3
"""Collateral loss (issue 24): is COLLATERAL_MARGIN_DB above the radio maps' sampling noise?

    .venv/bin/python benchmarks/collateral_noise.py RUN_DIR [--seeds 42,7] [--samples 4000000]

RUN_DIR: a finished run whose report saved heatmaps/radio_maps.npz (e.g. of examples/street-corner.yaml).
Its maps are ray-traced again, baseline and winner (the run's winner pose), with two seeds on the same cells.
Over the cells outside buildings covered without the plate where the plate changes the power (|loss| > 0.01 dB):
the per-cell loss (baseline - winner) [dB] of one seed against the other. PASS when the 95th percentile of
that seed-to-seed difference (two independent maps: the noise of one loss, times sqrt 2) is at most the
margin, i.e. a cell counted as collateral is not there by sampling noise. Also prints the collateral area of
each seed with and without the margin.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from optimizer.constants import COLLATERAL_MARGIN_DB, HEATMAPS_DIR, RADIO_MAPS_FILE


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--seeds", default="42,7")
    ap.add_argument("--samples", type=int, default=4_000_000)
    a = ap.parse_args()
    import mitsuba as mi
    from sionna import rt

    from optimizer.experiment import load_run_experiment
    from optimizer.physics.scene import RadioScene
    from optimizer.report.collateral import cells_in_footprints, collateral_mask
    from optimizer.report.radio_maps import _to_dbm
    from optimizer.store.runstore import RunStore

    run = Path(a.run_dir)
    store = RunStore(str(run))
    summary = store.read_summary()
    exp = load_run_experiment(store)
    d = dict(np.load(run / HEATMAPS_DIR / RADIO_MAPS_FILE))
    x, y, cell, h = d["x"], d["y"], float(d["cell_m"]), float(d["height_m"])
    rs = RadioScene(exp, device="cpu", threads=2)
    kw = exp.solver.radio_map_kwargs()
    thr = summary.threshold_dbm
    outside = ~cells_in_footprints(x, y, d["footprints"])
    maps = {}
    for seed in (int(s) for s in a.seeds.split(",")):
        for key, pose in (("b", None), ("w", summary.winner.joint_pose)):
            rs.park_plate() if pose is None else rs.set_pose(pose)
            rm = rt.RadioMapSolver()(rs.scene, center=mi.Point3f(float(x[0] + x[-1]) / 2, float(y[0] + y[-1]) / 2, h),
                                     orientation=mi.Point3f(0.0, 0.0, 0.0),
                                     size=mi.Point2f(float(len(x) * cell), float(len(y) * cell)),
                                     cell_size=mi.Point2f(cell, cell), samples_per_tx=a.samples, **{**kw, "seed": seed})
            r = np.array(rm.rss, dtype=np.float64)
            maps[key, seed] = _to_dbm(r.reshape(r.shape[0], len(y), len(x)).sum(axis=0))
    seeds = sorted({s for _, s in maps})
    s0, s1 = seeds[:2]
    loss = {s: maps["b", s] - maps["w", s] for s in seeds}
    acts = outside & (maps["b", s0] >= thr) & (np.abs(loss[s0]) > 0.01) & (maps["w", s0] > -199)
    diff = np.abs(loss[s0] - loss[s1])[acts]
    p95 = float(np.percentile(diff, 95)) if diff.size else 0.0
    print(f"{acts.sum()} covered cells where the plate acts; seed-to-seed loss difference: std "
          f"{diff.std():.2f} dB, 95th percentile {p95:.2f} dB; margin {COLLATERAL_MARGIN_DB:g} dB")
    for s in seeds:
        areas = [collateral_mask(maps["b", s], maps["w", s], thr, margin_db=m, buildings=~outside).sum() * cell ** 2
                 for m in (0.0, COLLATERAL_MARGIN_DB)]
        print(f"seed {s}: collateral {areas[1]:.1f} m² with the margin, {areas[0]:.1f} m² without")
    ok = p95 <= COLLATERAL_MARGIN_DB
    print(f"{'PASS' if ok else 'MISS'} noise p95 / margin = {p95 / COLLATERAL_MARGIN_DB:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
