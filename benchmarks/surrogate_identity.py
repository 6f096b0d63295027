#!/usr/bin/env python3
"""One plate surrogate for one plate and several (issue 21) against the code before it (separate one-plate and
multi-plate models): the same worlds, bit for bit.

On every example (examples/*.yaml, 5 000 samples per source, 3 steps, the first informed start, world 0) runs
a surrogate world in this tree and in a tree of `--base` (a git revision, unpacked with `git archive`), each in
its own process, and prints every step's poses, model objective and truth objective as float hex. PASS when
the two print the same, to the bit.

    .venv/bin/python benchmarks/surrogate_identity.py [--base f2ce5e7]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from objective_min_identity import ROOT, base_tree, run

WORLDS = r'''
from pathlib import Path
from optimizer.experiment import with_overrides
from optimizer.experiment.loading import load_experiment
from optimizer.physics.scene import RadioScene
from optimizer.search.starts import initial_poses
from optimizer.search.world import World

for path in sorted(Path("examples").glob("*.yaml")):
    exp = with_overrides(load_experiment(path), "bench", {"solver.samples_per_src": 5000, "search.steps": 3})
    rs = RadioScene(exp, device="cpu", threads=2)
    w = World(exp, 0, initial_poses(exp, rs, n=1)[0][0], radio_scene=rs, baseline_rss=rs.rss_dbm(None))
    for _ in range(3):
        r = w.step()
        print(path.stem, w.step_index, [x.hex() for p in r.pose.plates for x in p.as_list()],
              float(r.surrogate_dbm).hex(), float(r.objective_dbm).hex())
'''


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="f2ce5e7", help="a revision before the one surrogate (default: f2ce5e7)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        before = run(base_tree(args.base, Path(tmp)), WORLDS)
    now = run(ROOT, WORLDS)
    a, b = before.splitlines(), now.splitlines()
    same = sum(x == y for x, y in zip(a, b))
    for x, y in zip(a, b):
        if x != y:
            print(f"differs:\n  {args.base}: {x}\n  this tree: {y}")
    ok = len(a) == len(b) and same == len(a) and len(a) >= 3 * len(list((ROOT / "examples").glob("*.yaml")))
    print(f"{'PASS' if ok else 'MISS'}: the one surrogate reproduces {args.base}'s worlds bit for bit "
          f"({same}/{max(len(a), len(b))} steps identical: poses, model and truth objectives)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
