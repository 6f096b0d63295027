#!/usr/bin/env python3
"""Sector antennas (issue 23): the cost of a step with a 3GPP sector antenna (tr38901, V) against an isotropic
one, on a generated suite case; and the sector cases of `benchmarks/planner_peers.py --antenna`, which runs the
product against the peers on them.

    .venv/bin/python benchmarks/antenna_sectors.py [--seed 1] [--cost-repeats 10]

Every case of `scripts/make_scenes.py SEED CASES` gets its transmitter's antenna `{pattern: tr38901,
polarization: V, azimuth_deg, downtilt_deg}`: the azimuth is the direction from the transmitter to the
shadowed target cluster's centroid plus a uniform draw in +-AZIMUTH_SPREAD_DEG, the downtilt a uniform draw in
DOWNTILT_RANGE_DEG (the case's own random stream). `planner_peers.py --antenna` judges the product on them:
PASS/MISS per case for a gap to the worst-case reference <= GAP_TARGET_DB and never behind the best peer's worst
case by more than PEER_MARGIN_DB.

Cost: one search step (search.inner_steps surrogate updates with the gradient, one truth evaluation) on the
first case of SEED with the sector antenna and with an isotropic one (two scenes built once, then their steps
alternated `--cost-repeats` times, the same pose); the ratio of the medians, PASS at <= COST_RATIO_TARGET.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from optimizer.experiment import load_experiment  # noqa: E402

AZIMUTH_SPREAD_DEG = 60.0  # the boresight within +-this of the direction to the shadowed cluster
DOWNTILT_RANGE_DEG = (4.0, 10.0)
GAP_TARGET_DB = 0.5  # [dB] the product's worst case at most this far below the reference's
PEER_MARGIN_DB = 0.25  # [dB] never behind the best peer by more than this
COST_RATIO_TARGET = 1.1  # a step with tr38901 over a step with iso
CACHE = REPO / "benchmarks" / ".cache"


def sector_experiment(src: Path, dest: Path, rng: np.random.Generator, isotropic: bool = False) -> Path:
    """A copy of the case's experiment with a sector antenna on every transmitter (see the module)."""
    exp = load_experiment(src)
    data = exp.model_dump(mode="json", exclude={"resources"})
    data["scene"] = str((src.parent / exp.scene).resolve()) if not exp.scene.startswith("builtin:") else exp.scene
    centroid = np.mean(exp.target_points(), axis=0)
    for t in data["transmitters"]:
        d = centroid - np.asarray(t["position"], float)
        az = math.degrees(math.atan2(d[1], d[0])) + rng.uniform(-AZIMUTH_SPREAD_DEG, AZIMUTH_SPREAD_DEG)
        tilt = rng.uniform(*DOWNTILT_RANGE_DEG)
        if not isotropic:
            t["antenna"] = {"pattern": "tr38901", "polarization": "V", "azimuth_deg": round(az, 2),
                            "downtilt_deg": round(tilt, 2)}
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / ("experiment-iso.yaml" if isotropic else "experiment.yaml")
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


class Stepper:
    """One search step (search.inner_steps surrogate updates with the gradient, one truth evaluation) at the
    case's first informed start."""

    def __init__(self, exp_path: Path):
        from optimizer.physics.scene import RadioScene
        from optimizer.physics.surrogate import sinr_terms, surrogate_for
        from optimizer.search.starts import initial_poses

        exp = self.exp = load_experiment(exp_path)
        self.rs = RadioScene(exp, device="cpu", threads=1)
        self.pose = initial_poses(exp, self.rs, n=1)[0][0]
        p = self.pose.plates[0]
        self.vec = np.array([*p.position, p.yaw_deg, p.pitch_deg], float)
        self.sur = surrogate_for(exp, self.rs.targets, sinr=sinr_terms(exp, self.rs), aperture=False)
        self()  # warm-up (kernel compilation)

    def __call__(self) -> float:
        t0 = time.perf_counter()
        for _ in range(self.exp.search.inner_steps):
            self.sur.evaluate(self.vec, 1.0)
        self.rs.rss_dbm(self.pose)
        return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cost-only", action="store_true", help="(the only part now; accepted for old command lines)")
    ap.add_argument("--cost-repeats", type=int, default=10)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "scripts"))
    from make_scenes import suite_cases

    cases = suite_cases(args.seed, 1)

    # --- cost: a step with tr38901 against a step with iso, alternated -------------------------------------
    name, src = cases[0]
    folder = CACHE / "antenna" / name
    sector = sector_experiment(src, folder, np.random.default_rng([args.seed, 0]))
    iso = sector_experiment(src, folder, np.random.default_rng([args.seed, 0]), isotropic=True)
    steppers = {"iso": Stepper(iso), "tr38901": Stepper(sector)}
    times = {"tr38901": [], "iso": []}
    for _ in range(args.cost_repeats):  # alternated: the machine's load falls on both alike
        for label, step in steppers.items():
            times[label].append(step())
    ratio = statistics.median(times["tr38901"]) / statistics.median(times["iso"])
    print(f"cost [{name}]: a step with tr38901 {statistics.median(times['tr38901']):.3f} s, with iso "
          f"{statistics.median(times['iso']):.3f} s (medians of {len(times['iso'])}): ratio {ratio:.3f} "
          f"(target <= {COST_RATIO_TARGET}) {'PASS' if ratio <= COST_RATIO_TARGET else 'MISS'}")


if __name__ == "__main__":
    main()
