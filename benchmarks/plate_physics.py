#!/usr/bin/env python3
"""The plate's reflection model (issue 15): geometric optics, Sionna's edge diffraction and physical optics
side by side; the cost of PO per truth evaluation; the shipped examples under both models; the surrogate
with and without the PO level. Prints tables with PASS/MISS; asserts nothing.

1. A plate alone in free space (3.5 GHz, square ITU metal plates 0.5-4 m, equal legs 5-200 m, 30 deg
   incidence, iso V-pol antennas, no LoS), each model minus the image method (infinite mirror):
   Sionna's PathSolver (GO), with `diffraction` and `edge_diffraction` on, the truth under
   `plate_model: po`, and the far-field radar cross-section formula for reference.
2. Every shipped example: short searches (default 4 worlds x 15 steps, the same starts) with the truth
   under `go`, under `po` (the surrogate's default log-sigmoid edges), and under `po` with
   `search.surrogate_level: po` (the surrogate's level from the PO factor); each winner's min RSS under go and po (one ray tracing, both models), and whether the model moves the
   winner.
3. The cost per truth evaluation, PO against GO, on every example at its po winner (the same Sionna paths,
   median of repeated evaluations): target <= 20 % extra.

    .venv/bin/python benchmarks/plate_physics.py [--quick] [--worlds 4] [--steps 15]
        [--examples street-corner,indoor-corridor,wide-facade] [--sections plate,examples,cost]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from optimizer.experiment import load_experiment, parse_experiment, with_overrides  # noqa: E402
from optimizer.physics.geometry import free_space_gain_db, wavelength_m  # noqa: E402
from optimizer.objectives import default  # noqa: E402
from optimizer.physics.metrics import rss_stats  # noqa: E402
from optimizer.records import JointPose, PlatePose  # noqa: E402

FREQ_HZ = 3.5e9
THETA_DEG = 30.0
SIZES_M = (0.5, 1.0, 2.0, 4.0)
LEGS_M = (5.0, 10.0, 20.0, 50.0, 100.0, 200.0)
COST_TARGET = 0.20  # PO's extra cost per truth evaluation over GO
HITS_WANTED = 50  # rays expected to hit the plate (sets Sionna's sample count per link)
MAX_SAMPLES = 4_000_000


def _free_space_scene(folder: Path, size_m: float, legs_m: float, diffraction: bool, plate_model: str):
    from optimizer.physics.scene import RadioScene

    t = math.radians(THETA_DEG)
    tx = [-legs_m * math.sin(t), legs_m * math.cos(t), 0.0]
    rx = [legs_m * math.sin(t), legs_m * math.cos(t), 0.0]
    frac = size_m * size_m * math.cos(t) / (4 * math.pi * legs_m ** 2)  # share of the Tx's rays on the plate
    samples = int(min(MAX_SAMPLES, max(200_000, HITS_WANTED / frac)))
    exp = parse_experiment({
        "name": "plate-alone", "scene": str(folder), "frequency_hz": FREQ_HZ,
        "transmitters": [{"name": "tx", "position": tx, "power_dbm": 0.0}],
        "reflector": {"size_m": [size_m, size_m], "bounds": {"min": [0, 0, 0], "max": [0, 0, 0]}},
        "targets": {"points": [rx]},
        "solver": {"max_depth": 1, "los": False, "samples_per_src": samples, "diffraction": diffraction,
                   "edge_diffraction": diffraction, "plate_model": plate_model}}, "benchmark")
    return RadioScene(exp, device="cpu", threads=2), samples


def plate_table():
    from optimizer.physics.plate_model import make_plate_model

    lam = wavelength_m(FREQ_HZ)
    folder = Path(tempfile.mkdtemp(prefix="plate-physics-"))
    (folder / "scene.xml").write_text('<scene version="2.1.0"></scene>\n')
    pose = PlatePose(0.0, 0.0, 0.0, 0.0, 0.0)
    rows = []
    for size in SIZES_M:
        for legs in LEGS_M:
            image = float(free_space_gain_db(2 * legs, lam))
            rs, samples = _free_space_scene(folder, size, legs, False, "po")
            t0 = time.perf_counter()
            paths = rs.paths(pose)
            po_db = float(rs.rss_dbm_of(paths)[0])
            go_db = float(rs.rss_dbm_of(paths, make_plate_model("go", rs))[0])
            rs_d, _ = _free_space_scene(folder, size, legs, True, "go")
            diff_db = float(rs_d.rss_dbm(pose)[0])
            sigma = 4 * math.pi * (size * size) ** 2 * math.cos(math.radians(THETA_DEG)) ** 2 / lam ** 2
            rcs_db = 10 * math.log10(sigma * lam ** 2 / ((4 * math.pi) ** 3 * legs ** 4)) - image
            rows.append((size, legs, go_db - image, diff_db - image, po_db - image, rcs_db,
                         math.sqrt(lam * legs / 2), samples, time.perf_counter() - t0))
            sys.stderr.write(f"[plate] {size} m at {legs} m: {time.perf_counter() - t0:.1f} s\n")
    return rows


def _worlds(exp, rs, starts, base, steps):
    """Run the worlds of one variant; returns [(best pose, best truth stats, score)], the wall time and the
    median step time [s]."""
    from optimizer.search.world import World

    out, step_s = [], []
    t0 = time.perf_counter()
    for i, pose in enumerate(starts):
        w = World(exp, i, pose, radio_scene=rs, baseline_rss=base)
        for _ in range(steps):
            step_s.append(w.step().step_s)
        out.append((w.best.pose, w.best.truth, w.best.score))
    return out, time.perf_counter() - t0, statistics.median(step_s)


def examples_table(names, n_worlds, steps):
    from optimizer.physics import backend
    from optimizer.physics.plate_model import make_plate_model
    from optimizer.physics.scene import RadioScene
    from optimizer.search.starts import initial_poses

    backend.init("cpu", threads=2)
    rows, cost_rows = [], []
    for name in names:
        exp = load_experiment(REPO / "examples" / f"{name}.yaml")
        thr = exp.objective.coverage_threshold_dbm
        rs = RadioScene(exp, device="cpu", threads=2)
        models = {m: make_plate_model(m, rs) for m in ("go", "po")}
        base = rs.rss_dbm(None)
        starts = [p for p, _ in initial_poses(exp, rs, n_worlds)]
        variants, step_s = {}, {}
        for label, model, level in (("go", "go", "edges"), ("po", "po", "edges"), ("po, PO level", "po", "po")):
            e = with_overrides(exp, name, {"solver.plate_model": model, "search.surrogate_level": level})
            rs.plate_model = models[model]
            variants[label], wall, step_s[label] = _worlds(e, rs, starts, base, steps)
            sys.stderr.write(f"[{name}] {label}: {n_worlds} worlds x {steps} steps in {wall:.0f} s\n")
        rs.plate_model = models["po"]
        winners = {label: max(v, key=lambda r: r[2])[0] for label, v in variants.items()}
        cross = {}
        for label in ("go", "po"):
            paths = rs.paths(winners[label])
            cross[label] = {m: rss_stats(rs.rss_dbm_of(paths, models[m]), thr) for m in ("go", "po")}
        po_best = [r[1] for r in variants["po"]]
        level_best = [r[1] for r in variants["po, PO level"]]
        rows.append({"name": name, "winners": winners, "cross": cross, "po_worlds": po_best,
                     "level_worlds": level_best, "thr": thr, "step_s": step_s})
        cost_rows.append(cost_of(name, rs, models, winners["po"]))
    return rows, cost_rows


def cost_of(name, rs, models, pose, repeats=7):
    """Median [s] of Sionna's paths, GO's and PO's power from them, at `pose` (first run dropped)."""
    t_paths, t_go, t_po = [], [], []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        paths = rs.paths(pose)
        t1 = time.perf_counter()
        models["go"].power(paths)
        t2 = time.perf_counter()
        models["po"].power(paths)
        t3 = time.perf_counter()
        if i:
            t_paths.append(t1 - t0)
            t_go.append(t2 - t1)
            t_po.append(t3 - t2)
    med = statistics.median
    return {"name": name, "paths_s": med(t_paths), "go_s": med(t_go), "po_s": med(t_po),
            "extra": (med(t_po) - med(t_go)) / (med(t_paths) + med(t_go)), "samples": rs.exp.solver.samples_per_src}


def _fmt(v):
    return "no path" if v is None else f"{v:.2f}"


def _fmt_pose(p: JointPose):
    q = p.first
    return f"({q.x:.2f}, {q.y:.2f}) m, yaw {q.yaw_deg:.1f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", default="street-corner,indoor-corridor,wide-facade")
    ap.add_argument("--sections", default="plate,examples,cost")
    ap.add_argument("--worlds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="2 worlds x 4 steps, plates 1 and 2 m only")
    args = ap.parse_args()
    global SIZES_M, LEGS_M
    if args.quick:
        args.worlds, args.steps = 2, 4
        SIZES_M, LEGS_M = (1.0, 2.0), (20.0, 50.0)
    from optimizer.physics import backend

    backend.init("cpu", threads=2)
    sections = args.sections.split(",")
    checks = []
    if "plate" in sections:
        rows = plate_table()
        print(f"\n1. Plate alone in free space: {FREQ_HZ / 1e9:g} GHz, square ITU metal plate, equal legs, "
              f"{THETA_DEG:g} deg incidence; each model minus the image method (infinite mirror) [dB]")
        print(f"{'plate':>6} {'legs':>6} {'Fresnel r':>10} {'GO (Sionna)':>12} {'GO + diffr.':>12} {'PO':>8} "
              f"{'RCS formula':>12} {'rays':>10}")
        for size, legs, go, diff, po_, rcs, r_f, samples, _ in rows:
            print(f"{size:>5g}m {legs:>5g}m {r_f:>9.2f}m {go:>12.2f} {diff:>12.2f} {po_:>8.2f} {rcs:>12.2f} "
                  f"{samples:>10,}")
        print("  (GO + diffr.: PathSolver with diffraction and edge_diffraction on; PO: the truth under "
              "plate_model po;\n   RCS formula: sigma = 4 pi A^2 cos^2 th / lambda^2, P_r/P_t = sigma lambda^2 / "
              "((4 pi)^3 d1^2 d2^2), valid far from the plate)")
        far = [r for r in rows if r[1] >= 2 * (r[0] ** 2) / wavelength_m(FREQ_HZ) * 4]
        if far:
            worst = max(abs(r[4] - r[5]) for r in far)
            checks.append(("PO equals the RCS formula far from the plate (legs >= 8 D^2/lambda)", worst <= 0.2,
                           f"worst {worst:.2f} dB over {len(far)} links (<= 0.2 dB)"))
    names = args.examples.split(",")
    if "examples" in sections or "cost" in sections:
        rows, cost_rows = examples_table(names, args.worlds, args.steps)
    if "examples" in sections:
        print(f"\n2. Shipped examples: {args.worlds} worlds x {args.steps} steps per variant (the same starts); "
              "each winner's min RSS [dBm] under go and po (one ray tracing, both models)")
        print(f"{'example':<16} {'winner of':<10} {'pose':<30} {'min RSS go':>11} {'min RSS po':>11} "
              f"{'po - go':>8}")
        for r in rows:
            for label in ("go", "po"):
                c = r["cross"][label]
                gap = (c["po"].min_rss_dbm - c["go"].min_rss_dbm
                       if c["po"].min_rss_dbm is not None and c["go"].min_rss_dbm is not None else None)
                print(f"{r['name']:<16} {label:<10} {_fmt_pose(r['winners'][label]):<30} "
                      f"{_fmt(c['go'].min_rss_dbm):>11} {_fmt(c['po'].min_rss_dbm):>11} "
                      f"{'-' if gap is None else f'{gap:+.2f}':>8}")
            go_w, po_w = r["cross"]["go"]["po"], r["cross"]["po"]["po"]
            moved = default().score(po_w) - default().score(go_w)
            d = np.linalg.norm(np.array(r["winners"]["go"].first.position) - np.array(r["winners"]["po"].first.position))
            print(f"{'':<16} under po, the po winner beats the go winner by {moved:+.2f} dB "
                  f"(winners {d:.2f} m and {abs(r['winners']['go'].first.yaw_deg - r['winners']['po'].first.yaw_deg):.1f}"
                  " deg apart)" + ("; the model moves the winner" if moved > 0.5 else ""))
        print("\n   Surrogate under plate_model po: search.surrogate_level edges (default) vs po; truth min RSS "
              "[dBm] under po of each world's best; median step time")
        print(f"{'example':<16} {'variant':<22} {'median':>8} {'best':>8} {'covered':>8} {'step':>8}")
        for r in rows:
            for label, key, stats in (("edges (log-sigmoid)", "po", r["po_worlds"]),
                                      ("po (PO level + pull)", "po, PO level", r["level_worlds"])):
                mins = [s.min_rss_dbm if s.min_rss_dbm is not None else -200.0 for s in stats]
                cov = sum(s.coverage == 1.0 and s.min_rss_dbm is not None and s.min_rss_dbm >= r["thr"]
                          for s in stats)
                print(f"{r['name']:<16} {label:<22} {statistics.median(mins):>8.2f} {max(mins):>8.2f} "
                      f"{cov:>5}/{len(stats)} {r['step_s'][key]:>7.3f}s")
    if "cost" in sections:
        print("\n3. Cost per truth evaluation at the po winner (median of 7; the same Sionna paths)")
        print(f"{'example':<16} {'rays':>9} {'Sionna paths':>13} {'GO power':>9} {'PO power':>9} {'PO extra':>9}")
        for c in cost_rows:
            print(f"{c['name']:<16} {c['samples']:>9,} {c['paths_s'] * 1e3:>11.1f}ms {c['go_s'] * 1e3:>7.2f}ms "
                  f"{c['po_s'] * 1e3:>7.2f}ms {100 * c['extra']:>8.1f}%")
            checks.append((f"{c['name']}: PO costs <= {100 * COST_TARGET:.0f} % more than GO per evaluation",
                           c["extra"] <= COST_TARGET, f"{100 * c['extra']:+.1f} %"))
    print("\nTargets:")
    for label, ok, fig in checks:
        print(f"  [{'PASS' if ok else 'MISS'}] {label}: {fig}")


if __name__ == "__main__":
    main()
