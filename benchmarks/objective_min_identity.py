#!/usr/bin/env python3
"""`objective.kind: min` against the code before objectives (issue 21: "min, today's behaviour, bit for bit").

Runs the same two small worlds (street canyon, tolerance on: a surrogate world of 5 steps, then the
end-of-world tolerance check and worst-case polish; an spsa world of 3 steps) in this tree and in a tree of
`--base` (a git revision, unpacked with `git archive`), each in its own process, and prints every best score,
model objective, winner pose and tolerance result as float hex. PASS when the two print the same, to the bit.

    .venv/bin/python benchmarks/objective_min_identity.py [--base main]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORLDS = r'''
import sys
sys.path.insert(0, "tests")
from worlds_helpers import street
from optimizer.experiment import with_overrides
from optimizer.records import PlatePose as Pose
from optimizer.physics.scene import RadioScene
from optimizer.search.world import World

exp = street(**{"solver.max_depth": 2, "solver.samples_per_src": 20000,
                "reflector.tolerance": {"position_m": 0.02, "yaw_deg": 0.5, "pitch_deg": 0.0}})
rs = RadioScene(exp, device="cpu", threads=2)
base = rs.rss_dbm(None)
for mode, steps in (("surrogate", 5), ("spsa", 3)):
    e = with_overrides(exp, exp.name, {"search.steps": steps, "search.gradient": mode})
    w = World(e, 1, Pose(27.5, 8.4, 5.0, 95.0), radio_scene=rs, baseline_rss=base)
    while w.step_index < steps:
        w.step()
    print(mode, [r.best_score.hex() for r in w.history], w.best.pose.model_dump_json(), w.best.score.hex())
    print(mode, "objective", [float(r.objective_dbm).hex() for r in w.history])
    t = w.tolerance
    if t is not None:
        print(mode, "tolerance", t.holds, t.pose.model_dump_json(), float(t.worst.min_rss_dbm or 0).hex(),
              t.poses_checked, t.worst_offset, t.failing_offsets[:3])
'''


def run(tree: Path, code: str = WORLDS) -> str:
    """`code` run in its own process on the tree's `optimizer` package; its stdout."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True,
                         timeout=1200)
    if out.returncode:
        raise SystemExit(f"worlds failed in {tree}:\n{out.stderr[-2000:]}")
    return out.stdout


def base_tree(rev: str, tmp: Path) -> Path:
    """The tree of git revision `rev`, unpacked under `tmp` (`git archive`)."""
    archive = Path(tmp) / "base.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), rev], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(Path(tmp) / "base", filter="data")
    return Path(tmp) / "base"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="main", help="a revision without objectives (default: main)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        before = run(base_tree(args.base, Path(tmp)))
    now = run(ROOT)
    print(f"--- {args.base}\n{before}--- this tree\n{now}")
    # by (mode, what): a tree whose worlds end without a tolerance check (it moved to the driver) has no such line
    a, b = ({" ".join(ln.split()[:2]): ln for ln in out.splitlines()} for out in (before, now))
    common = sorted(set(a) & set(b))
    same = len(common) >= 4 and all(a[k] == b[k] for k in common)
    only = sorted(set(a) ^ set(b))
    print(f"{'PASS' if same else 'MISS'}: min reproduces {args.base}'s worlds bit for bit "
          f"({sum(a[k] == b[k] for k in common)}/{len(common)} lines in both identical"
          f"{'; only in one: ' + ', '.join(only) if only else ''})")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
