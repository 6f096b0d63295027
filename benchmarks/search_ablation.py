#!/usr/bin/env python3
"""Each part of the truth-driven search on its own (issue 9), side by side in one run, same starts.

World-level parts (in this process, one world after another, the same seeded starts for every variant):
`none` (residual correction, trust region, polish and worst-case polish all off), each part alone, and `all` (the defaults).
Run-level parts (real local Ray, the product's `run_worlds`, 1 world at a time so the pruner sees the same
order): successive halving with the freed budget reused (`search.reuse: mixed`, the default) or thrown away
(`off`), and no pruning at all. Figures per variant: the best and the median world's worst case over the
mounting tolerance (truth), worlds whose best pose holds, world-steps and wall time. Targets are printed as
PASS/MISS, never asserted.

    .venv/bin/python benchmarks/search_ablation.py [--examples street-corner,wide-facade] [--worlds 4]
        [--steps 20] [--skip-ray]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from optimizer.experiment import load_experiment, with_overrides  # noqa: E402
from optimizer.physics.metrics import focus_mask  # noqa: E402

OFF = dict(residual_correction=False, trust_region=False, polish_share=0.0, robust_polish_boxes=0.0)
WORLD_VARIANTS = {
    "none": OFF,
    "residual only": dict(OFF, residual_correction=True),
    "trust only": dict(OFF, trust_region=True),
    "polish only": dict(OFF, polish_share=0.15),
    "worst-case polish only": dict(OFF, robust_polish_boxes=3.0),
    "all (default)": {},
}
NO_PATH = -200.0  # printed for a worst case with no path (never used as a gain)


def _worst(chk) -> float:
    return NO_PATH if chk is None or chk.worst_min_rss_dbm is None else chk.worst_min_rss_dbm


def world_variants(exp, rs, base, starts):
    from optimizer.search.world import World

    rows = {}
    for label, kw in WORLD_VARIANTS.items():
        # each world's own result (its check and polish at its end)
        e = with_overrides(exp, exp.name, {"search.robust_phase": "every_world",
                                           **{f"search.{k}": v for k, v in kw.items()}})
        t0 = time.perf_counter()
        worst, holds = [], 0
        for i, pose in enumerate(starts):
            w = World(e, i, pose, radio_scene=rs, baseline_rss=base)
            for _ in range(e.search.steps):
                w.step()
            worst.append(_worst(w.tolerance))
            holds += bool(w.tolerance is not None and w.tolerance.holds)
        rows[label] = {"best": max(worst), "median": statistics.median(worst), "holds": holds,
                       "worlds": len(starts), "world_steps": len(starts) * e.search.steps,
                       "wall_s": time.perf_counter() - t0}
        sys.stderr.write(f"  {label}: best worst case {rows[label]['best']:.2f} dBm ({rows[label]['wall_s']:.0f} s)\n")
    return rows


def run_variants(exp, base, starts):
    import ray

    from optimizer.search.cluster import init_ray
    from optimizer.search.tune import run_worlds
    from optimizer.spec import RunSpec
    from optimizer.objectives import default

    variants = {"pruned, reuse mixed (default)": dict(reuse="mixed"), "pruned, reuse off": dict(reuse="off"),
                "no pruning": dict(prune="off", reuse="off")}
    rows = {}
    init_ray(None)
    try:
        for label, kw in variants.items():
            # the worlds' own checks (run_worlds alone has no robust phase)
            e = with_overrides(exp, exp.name, {"search.concurrency": 1, "search.robust_phase": "every_world",
                                               **{f"search.{k}": v for k, v in kw.items()}})
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                out = run_worlds(RunSpec.of(e), [(p, "uniform") for p in starts], base, tmp,
                                 progress=False)
            checked = [o.state.tolerance for o in out if o.state is not None and o.state.tolerance is not None]
            best = max(checked, key=default().rank_check) if checked else None
            rows[label] = {"best": _worst(best), "holds": sum(c.holds for c in checked), "worlds": len(out),
                           "world_steps": sum(o.steps for o in out), "wall_s": time.perf_counter() - t0,
                           "reused": sum(o.world >= len(starts) for o in out),
                           "merged": sum(o.status == "merged" for o in out)}
            sys.stderr.write(f"  {label}: {rows[label]}\n")
    finally:
        ray.shutdown()
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", default="street-corner,wide-facade")
    ap.add_argument("--worlds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--skip-ray", action="store_true", help="world-level parts only")
    ap.add_argument("--skip-worlds", action="store_true", help="run-level parts only")
    args = ap.parse_args()
    from optimizer.physics import backend
    from optimizer.physics.scene import RadioScene
    from optimizer.search.starts import initial_poses

    backend.init("cpu", threads=1)
    checks, tables = [], []
    for name in args.examples.split(","):
        exp = load_experiment(REPO / "examples" / f"{name}.yaml")
        exp = with_overrides(exp, name, {"search.steps": args.steps, "search.worlds": args.worlds})
        rs = RadioScene(exp, device="cpu", threads=1)
        base = rs.rss_dbm(None)
        e0 = with_overrides(exp, name, {"search.starts": "uniform"})
        starts = [p for p, _ in initial_poses(e0, rs, args.worlds, focus_mask(
            base, exp.objective.coverage_threshold_dbm, exp.objective.focus_margin_db))]
        if not args.skip_worlds:
            sys.stderr.write(f"[{name}] world-level parts, {len(starts)} worlds x {args.steps} steps\n")
            wrows = world_variants(exp, rs, base, starts)
            tables.append((name, "world", wrows))
            ref = wrows["none"]
            for label in ("residual only", "trust only", "polish only", "all (default)"):
                d = wrows[label]["median"] - ref["median"]
                checks.append((f"{name}: {label} does not lower the median worst case (>= -0.1 dB vs none)",
                               d >= -0.1, f"{d:+.2f} dB median, {wrows[label]['best'] - ref['best']:+.2f} dB best"))
        if not args.skip_ray:
            sys.stderr.write(f"[{name}] run-level parts (local Ray)\n")
            rrows = run_variants(exp, base, starts)
            tables.append((name, "run", rrows))
            a, b, c = (rrows[k] for k in ("pruned, reuse mixed (default)", "pruned, reuse off", "no pruning"))
            checks.append((f"{name}: reusing freed budget does not lower the best worst case (vs reuse off)",
                           a["best"] >= b["best"] - 0.1, f"{a['best'] - b['best']:+.2f} dB, {a['reused']} reused"))
            checks.append((f"{name}: reuse stays within the budget (world-steps <= no pruning's)",
                           a["world_steps"] <= c["world_steps"], f"{a['world_steps']} / {c['world_steps']}"))
            checks.append((f"{name}: pruning without reuse: same winner (+-0.25 dB) at <= 40 % of the world-steps",
                           abs(b["best"] - c["best"]) <= 0.25 and b["world_steps"] <= 0.4 * c["world_steps"],
                           f"{b['best'] - c['best']:+.2f} dB at {b['world_steps'] / c['world_steps']:.0%}"))

    print(f"\nSearch ablation: {args.worlds} worlds x {args.steps} steps per example, the same uniform starts for "
          "every variant; worst case = truth min RSS over the mounting tolerance box of each world's result")
    print(f"{'example':<16}{'variant':<32}{'best worst':>12}{'median worst':>14}{'holds':>7}{'worlds':>8}"
          f"{'world-steps':>13}{'wall [s]':>10}")
    for name, _, rows in tables:
        for label, r in rows.items():
            med = f"{r['median']:.2f}" if "median" in r else "-"
            print(f"{name:<16}{label:<32}{r['best']:>12.2f}{med:>14}{r['holds']:>7}{r['worlds']:>8}"
                  f"{r['world_steps']:>13}{r['wall_s']:>10.0f}")
    print("\nTargets:")
    for label, ok, fig in checks:
        print(f"  [{'PASS' if ok else 'MISS'}] {label}: {fig}")
    print(f"\n({NO_PATH:g} dBm = a worst case with a target no path reaches; shown, never used as a gain)")


if __name__ == "__main__":
    main()
