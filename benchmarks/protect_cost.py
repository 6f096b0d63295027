#!/usr/bin/env python3
"""What `objective.protect` costs on the street example (issue 24: "the street example with a protect constraint:
the winner must not uncover the covered cells; report what the constraint costs in dB").

Searches examples/street-corner.yaml and examples/street-corner-protect.yaml (the same file plus the constraint)
side by side at the same small budget, in this process (no Ray): the same worlds from the same starts, each
`--steps` steps, the winner the best nominal score of all worlds. Both winners are then judged on the protected
scene (targets and protected points in one truth evaluation): the worst case of the targets' min RSS over the
mounting tolerance box (its corners; `--interior` more poses) and the constraint at the nominal pose and over
the box. Prints both, the cost (worst case without minus with) and PASS/MISS for "the protected winner keeps
the constraint" (nominal and over the whole box).

    .venv/bin/python benchmarks/protect_cost.py [--worlds 2] [--steps 4] [--samples 20000] [--interior 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optimizer import objectives  # noqa: E402
from optimizer.experiment import load_experiment  # noqa: E402
from optimizer.physics import tolerance  # noqa: E402
from optimizer.physics.scene import RadioScene  # noqa: E402
from optimizer.records.text import fmt_power  # noqa: E402
from optimizer.search.starts import initial_poses  # noqa: E402
from optimizer.search.world import World  # noqa: E402


def small(name: str, args):
    exp = load_experiment(ROOT / "examples" / f"{name}.yaml")
    return exp.model_copy(update={
        "search": exp.search.model_copy(update={"worlds": args.worlds, "steps": args.steps}),
        "solver": exp.solver.model_copy(update={"samples_per_src": args.samples})})


def search(exp, threads: int):
    """The winner's pose (best nominal score over the worlds) and the truth evaluations spent."""
    rs = RadioScene(exp, device="cpu", threads=threads)
    base = rs.baseline_dbm()
    worlds = [World(exp, i, pose, radio_scene=rs, baseline_rss=base, start_kind=kind)
              for i, (pose, kind) in enumerate(initial_poses(exp, rs, exp.search.worlds))]
    for w in worlds:
        while w.step_index < exp.search.steps:
            w.step()
    best = max(worlds, key=lambda w: w.best.score)
    return best.best.pose, sum(w.evaluations for w in worlds) + 1


def judge(rs, exp, pose, interior: int) -> dict:
    """On the protected scene: the constraint at the pose and over its tolerance box, the targets' worst case."""
    objective = objectives.of(exp, rs)
    nominal = objective.stats(rs.rss_dbm(pose))
    chk, raw = tolerance.check(rs, pose, exp, interior=interior)
    box_held = bool(objective.rule.held_each(raw["rss"][:, objective.n:]).all()) if len(raw["rss"]) else True
    return {"nominal_min": nominal.min_rss_dbm, "worst_min": chk.worst_min_rss_dbm, "held": bool(nominal.protect_held),
            "margin_db": nominal.protect_margin_db, "lost": nominal.protect_lost, "box_held": box_held,
            "poses": chk.poses_checked, "constrained": int(objective.rule.constrained.sum())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--samples", type=int, default=20_000, help="solver.samples_per_src of both (default 20000)")
    ap.add_argument("--interior", type=int, default=0, help="interior poses of the tolerance box besides its corners")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    t0 = time.perf_counter()
    plain, guarded = small("street-corner", args), small("street-corner-protect", args)
    rows = {}
    for label, exp in (("without protect", plain), ("with protect", guarded)):
        pose, spent = search(exp, args.threads)
        rows[label] = (pose, spent)
        print(f"{label}: winner {pose} ({spent} truth evaluations)", flush=True)
    rs = RadioScene(guarded, device="cpu", threads=args.threads)
    print(f"judged on the protected scene: {len(rs.targets) - rs.n_targets} protected points, "
          f"{args.samples} samples, tolerance box corners + {args.interior} interior poses")
    out = {label: judge(rs, guarded, pose, args.interior) for label, (pose, _) in rows.items()}
    for label, j in out.items():
        print(f"{label:>16}: nominal min RSS {fmt_power(j['nominal_min'])}, worst case over the box "
              f"{fmt_power(j['worst_min'])} ({j['poses']} poses); constraint {'held' if j['held'] else 'BROKEN'} "
              f"at the pose ({j['lost']} of {j['constrained']} covered points lost, margin "
              f"{j['margin_db']:+.1f} dB), {'held' if j['box_held'] else 'BROKEN'} over the box")
    a, b = out["without protect"], out["with protect"]
    if a["worst_min"] is not None and b["worst_min"] is not None:
        print(f"cost of the constraint: {a['worst_min'] - b['worst_min']:+.2f} dB of worst-case min RSS "
              f"(without {a['worst_min']:.2f}, with {b['worst_min']:.2f} dBm)")
    ok = b["held"] and b["box_held"]
    print(f"{'PASS' if ok else 'MISS'}: constraint held by the protected winner (at the pose and over the box); "
          f"the unprotected winner {'keeps' if a['held'] and a['box_held'] else 'breaks'} it "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
