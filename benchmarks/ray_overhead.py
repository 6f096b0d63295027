#!/usr/bin/env python3
"""Parallel worlds on Ray Tune: overhead, scaling, time to first step, pruning savings (side by side).

1. Overhead: the same world (street example, 1 CPU thread) run bare in this process vs as a Tune trial;
   per-step wall time (Tune's includes reporting and checkpoints, every search.checkpoint_every steps).
   Target: at most +5 %.
2. Scaling: 1 vs 2 concurrent worlds (1 CPU each); world-steps per second, both sides in the same steady
   state: the steps the two worlds finished while both were stepping (each past its first WARMUP_STEPS
   steps), against the time one world alone took for the same steps (the same step numbers, the same
   warm-up). Target: speed-up >= 1.8, and at most the physical limit (the cores, 2 here): a figure above
   it means the two sides were not measured alike (MISS).
3. Time from `reflectopt run` (a new process) to the first world's first step.
4. Pruning: 8 starting poses, with and without successive halving (ASHA, grace 5, factor 2): the same
   winner within 0.5 dB using at most 60 % of the world-steps.

    .venv/bin/python benchmarks/ray_overhead.py [--steps 20] [--example examples/street-corner.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from optimizer.experiment import load_experiment, with_overrides  # noqa: E402
from optimizer.records import PlatePose as Pose  # noqa: E402


WARMUP_STEPS = 3  # steps every world makes before any side of a comparison is timed


def bare_step_s(exp, pose, steps):
    from optimizer.physics.scene import RadioScene
    from optimizer.search.world import World

    rs = RadioScene(exp, device="cpu", threads=1)
    w = World(exp, 0, pose, radio_scene=rs)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        w.step()
        times.append(time.perf_counter() - t)
    return statistics.median(times[WARMUP_STEPS:]), rs.rss_dbm(None)


def tune_rows(exp, starts, base, tmp):
    from optimizer.search.tune import run_worlds
    from optimizer.spec import RunSpec

    t0 = time.time()
    out = run_worlds(RunSpec.of(exp), starts, base, str(tmp), progress=False)
    rows = []
    for f in Path(tmp).glob("worlds/world-*/result.json"):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return out, rows, time.time() - t0


def ends_by_step(rows, world=0) -> dict[int, float]:
    return {int(r["step"]): r["t_end_unix"] for r in rows if r["world"] == world}


def per_step_wall(rows, world=0):
    """Median time from one step's end to the next (the step and Tune's work around it), past the warm-up."""
    ends = ends_by_step(rows, world)
    return statistics.median(ends[i] - ends[i - 1] for i in sorted(ends) if i > WARMUP_STEPS and i - 1 in ends)


def steady_scaling(rows1, rows2):
    """(1-world, 2-world) world-steps/s over the same steps: the window where both worlds of the 2-world run
    were stepping, each past WARMUP_STEPS, and the time the lone world took for the same step numbers."""
    alone = ends_by_step(rows1)
    worlds = {r["world"] for r in rows2}
    ends = {w: ends_by_step(rows2, w) for w in worlds}
    t_a = max(e[WARMUP_STEPS] for e in ends.values())  # every world warm
    t_b = min(max(e.values()) for e in ends.values())  # before the first one ends
    done = [(w, i) for w, e in ends.items() for i, t in e.items() if t_a < t <= t_b and i > WARMUP_STEPS]
    alone_s = sum(alone[i] - alone[i - 1] for _, i in done)
    return len(done) / alone_s, len(done) / (t_b - t_a), len(done)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--example", default=str(REPO / "examples" / "street-corner.yaml"))
    ap.add_argument("--sections", default="overhead,scaling,first,pruning", help="which measures to run")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    from optimizer.search.cluster import init_ray

    exp = load_experiment(args.example)
    exp = with_overrides(exp, args.example, {"device": "cpu", "search.steps": args.steps, "search.prune": "off",
                                             "resources.cpu_per_world": 1})
    pose = Pose(21.0, 8.0, 5.0, 120.0)
    report = []

    import ray

    bare, base = bare_step_s(exp, pose, args.steps if "overhead" in sections else WARMUP_STEPS + 1)
    init_ray(None)
    if "overhead" in sections:
        with tempfile.TemporaryDirectory() as tmp:
            _, rows1, _ = tune_rows(exp, [(pose, "explicit")], base, tmp)
        tune1 = per_step_wall(rows1)
        report.append(("Tune overhead per step (1 world, 1 CPU)", f"bare {bare * 1e3:.0f} ms, Tune {tune1 * 1e3:.0f} ms",
                       tune1 / bare - 1, "<= +5 %", tune1 / bare - 1 <= 0.05))

    if "scaling" in sections:
        e2 = with_overrides(exp, args.example, {"search.steps": args.steps * 2})
        with tempfile.TemporaryDirectory() as tmp:
            _, r1, _ = tune_rows(e2, [(pose, "explicit")], base, tmp)
        with tempfile.TemporaryDirectory() as tmp:
            _, r2, _ = tune_rows(e2, [(pose, "explicit"), (pose, "explicit")], base, tmp)  # the same start
        th1, th2, n_steps = steady_scaling(r1, r2)
        cores = os.cpu_count() or 1
        limit = min(2, cores) / 1.0  # two single-threaded worlds cannot beat the cores they have
        ratio = th2 / th1
        report.append(("Scaling 1 -> 2 concurrent worlds", f"{th1:.2f} -> {th2:.2f} world-steps/s ({n_steps} steps)",
                       ratio, f">= 1.8x, limit {limit:.1f}x ({cores} cores)", 1.8 <= ratio <= 1.02 * limit))

    ray.shutdown()
    if "first" in sections:
        with tempfile.TemporaryDirectory() as tmp:
            small = with_overrides(exp, args.example, {"search.worlds": 2, "search.steps": 3, "output": tmp})
            f = Path(tmp) / "e.yaml"
            import yaml

            f.write_text(yaml.safe_dump(small.model_dump(mode="json")))
            t0 = time.time()
            subprocess.run([sys.executable, "-m", "optimizer.cli", "run", str(f), "--no-progress"], cwd=REPO,
                           capture_output=True, timeout=900, check=True)
            rows = []
            for res in Path(tmp).glob("*/*/checkpoints/worlds/world-*/result.json"):
                rows += [json.loads(line) for line in res.read_text().splitlines() if line.strip()]
            first = min(r["t_end_unix"] - r["step_s"] for r in rows)
            report.append(("Time from `reflectopt run` to the first step", "new process, local Ray start included",
                           first - t0, "(figure)", True))

    if "pruning" in sections:
        init_ray(None)
        from optimizer.physics.scene import RadioScene
        from optimizer.search.starts import initial_poses

        e8 = load_experiment(args.example)
        e8 = with_overrides(e8, args.example, {"device": "cpu", "search.worlds": 8, "search.steps": 20})
        rs = RadioScene(e8, device="cpu", threads=2)
        starts = initial_poses(e8, rs, 8)
        results = {}
        for label, prune in (("off", "off"), ("asha", {"reduction_factor": 2, "grace_steps": 5})):
            e = with_overrides(e8, args.example, {"search.prune": prune})
            with tempfile.TemporaryDirectory() as tmp:
                out, _, wall = tune_rows(e, starts, base, tmp)
            best = max(o.state.best.truth.min_rss_dbm for o in out if o.state and o.state.best)
            results[label] = (best, sum(o.steps for o in out), wall)
        (b_off, s_off, w_off), (b_asha, s_asha, w_asha) = results["off"], results["asha"]
        report.append(("Pruning: winner min RSS, off vs ASHA", f"{b_off:.2f} vs {b_asha:.2f} dBm", b_off - b_asha,
                       "<= 0.5 dB", b_off - b_asha <= 0.5))
        report.append(("Pruning: world-steps ASHA / off", f"{s_asha} / {s_off} (wall {w_asha:.0f} s / {w_off:.0f} s)",
                       s_asha / s_off, "<= 60 %", s_asha / s_off <= 0.6))
    ray.shutdown()

    print(f"\nRay Tune worlds ({os.cpu_count()} CPUs, {Path(args.example).name}, {args.steps} steps)")
    print(f"{'measure':<48}{'detail':<44}{'figure':>10}  target")
    for name, detail, fig, target, ok in report:
        figs = f"{fig:+.1%}" if "overhead" in name else (f"{fig:.2f}x" if "Scaling" in name else (
            f"{fig:.1f} s" if "Time" in name else (f"{fig:.0%}" if "/" in name else f"{fig:.2f} dB")))
        print(f"{name:<48}{detail:<44}{figs:>10}  {target} {'PASS' if ok else 'MISS'}")


if __name__ == "__main__":
    main()
