#!/usr/bin/env python3
"""The mounting tolerance box in the wall's frame against the plate's own frame, side by side, in truth.

For each pose (default: on each shipped single-plate example, the plate parallel to its wall and the plate
turned as far from it as its yaw range allows), `tolerance.check` ray-traces the whole box (every corner
and the seeded interior poses) twice at the same pose: with the box in the plate's own frame (the product
before issue 25: along the plate's width axis) and in the frame of the wall found in the scene mesh (now).
Prints the worst min RSS and the lowest coverage of both, and PASS/MISS for:

* a plate parallel to its wall: the two boxes are the same (the same worst case to 0.01 dB);
* a plate turned from its wall: the boxes differ (the moves differ), so the figures may.

    .venv/bin/python benchmarks/tolerance_frame.py [--samples 20000] [--turned-only]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (example, pose x, y, z, yaw, pitch): parallel to the wall, then turned to the yaw range's end
POSES = [
    ("street-corner", (30.32, -12.75, 4.5, 90.0, 0.0)),
    ("street-corner", (30.32, -12.75, 4.5, 125.0, 0.0)),
    ("wide-facade", (-14.37, 7.77, 5.0, 0.0, 0.0)),
    ("wide-facade", (-14.37, 7.77, 5.0, 34.7, 0.0)),
    ("indoor-corridor", (29.3, 1.6, 1.8, 90.0, 0.0)),
    ("indoor-corridor", (29.3, 1.6, 1.8, 44.0, 0.0)),
]


class PlateFrame:
    """A truth whose tolerance box is in the plate's own frame at `yaw_deg` (the product before issue 25)."""

    def __init__(self, rs, yaw_deg: float):
        self.rs, self.yaw_deg = rs, yaw_deg

    def __getattr__(self, name):
        return getattr(self.rs, name)

    def wall_frames(self):
        return [f.model_copy(update={"yaw_deg": self.yaw_deg, "source": "plate"}) for f in self.rs.wall_frames()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=None, help="samples per source (default: the example's)")
    ap.add_argument("--turned-only", action="store_true", help="skip the poses parallel to their wall")
    args = ap.parse_args()
    from optimizer.experiment import load_experiment
    from optimizer.physics import tolerance
    from optimizer.physics.scene import RadioScene
    from optimizer.physics.wall import angle_to_wall_deg, frame_label
    from optimizer.records import JointPose, PlatePose
    from optimizer.records.text import fmt_pct, fmt_power

    scenes: dict = {}
    ok = True
    print(f"{'example':<16}{'pose (x, y, z, yaw, pitch)':<36}{'to wall':>8}{'plate frame':>16}{'wall frame':>16}"
          f"{'change':>9}   coverage plate / wall")
    for name, vec in POSES:
        if args.turned_only and vec[3] in (0.0, 90.0):
            continue
        if name not in scenes:
            exp = load_experiment(ROOT / "examples" / f"{name}.yaml")
            scenes[name] = (exp, RadioScene(exp, device="cpu", threads=2))
            print(f"  {name}: box in the frame of {frame_label(scenes[name][1].wall_frames()[0])}")
        exp, rs = scenes[name]
        pose = JointPose.single(PlatePose(*vec))
        t0 = time.perf_counter()
        nominal = rs.rss_dbm(pose, samples_per_src=args.samples)
        old, _ = tolerance.check(PlateFrame(rs, vec[3]), pose, exp, samples_per_src=args.samples, nominal_rss=nominal)
        new, _ = tolerance.check(rs, pose, exp, samples_per_src=args.samples, nominal_rss=nominal)
        a, b = old.worst_min_rss_dbm, new.worst_min_rss_dbm
        change = "-" if a is None or b is None else f"{b - a:+.2f}"
        turned = angle_to_wall_deg(vec[3], rs.wall_frames()[0])
        print(f"{name:<16}{', '.join(f'{v:g}' for v in vec):<36}{turned:>7.1f}°{fmt_power(a, 2):>16}"
              f"{fmt_power(b, 2):>16}{change:>9}   {fmt_pct(old.worst_coverage)} / {fmt_pct(new.worst_coverage)}"
              f"   ({time.perf_counter() - t0:.0f} s)")
        if turned < 0.01:
            same = (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 0.01)
            ok &= same
            print(f"  [{'PASS' if same else 'MISS'}] parallel to its wall: the same box (change {change} dB)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
