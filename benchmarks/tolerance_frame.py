#!/usr/bin/env python3
"""The mounting tolerance box in the wall's frame against the plate's own frame, side by side, in truth.

For each pose (default: on each shipped single-plate example, the plate parallel to its wall and the plate
turned as far from it as its yaw range allows), `tolerance.check` ray-traces the whole box (every corner
and the seeded interior poses) twice at the same pose: with the box in the plate's own frame (the product
before issue 25: along the plate's width axis) and in the frame of the wall found in the scene mesh (now).
Prints the worst min RSS and the lowest coverage of both, and PASS/MISS for:

* a plate parallel to its wall: the two boxes are the same (the same worst case, and the same RSS at every
  pose of the box for every target, to 0.01 dB);
* a plate turned from its wall: the boxes differ (the moves differ), so the figures may.

    .venv/bin/python benchmarks/tolerance_frame.py [--samples 20000] [--turned-only]
    .venv/bin/python benchmarks/tolerance_frame.py --suite [--cases N] [--osm-cases M] [--seed S] [--turn 45]

`--suite`: the benchmark suite's cases instead (scripts/make_scenes.py: N generated cases of seed S and M
real-city cases of central Helsinki, `--osm`; generated into benchmarks/.cache/scenes/ where missing, at
`--samples`). On each, the plate in its mounting box, parallel to its wall (the wall frame's
yaw) and turned from it: `--turn` degrees, or by default the best of three yaws (the mirror pose between the
transmitter and the targets' centroid in plan, its normal halving the angle, and 45° either way from the
wall; pitch 0) at the best of five points along the box (most targets reached in truth). One plate seldom
reaches a whole shadowed cluster, nor keeps a reached target's every path over the whole box, so the worst
min RSS is mostly "no path" in both frames; the suite's per-case change is therefore the change of the mean
received power (in mW) over the box's poses and the targets the pose reaches, wall frame minus plate frame,
printed with how many (pose, target) pairs lose every path in each frame.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

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


def specular_yaw_deg(exp, centre) -> float:
    """The yaw [deg] of a plate at `centre` whose normal halves the angle, in plan, between the transmitter
    and the targets' centroid (the mirror pose a search heads for)."""
    import numpy as np

    from optimizer.sites.wallbox import yaw_facing_deg

    c = np.array(centre[:2], float)
    to_tx = np.array(exp.transmitters[0].position[:2], float) - c
    to_rx = np.mean(np.array(exp.target_points(), float)[:, :2], axis=0) - c
    n = to_tx / np.linalg.norm(to_tx) + to_rx / np.linalg.norm(to_rx)
    return yaw_facing_deg(*(n / np.linalg.norm(n)))


def suite_poses(seed: int, cases: int, osm_cases: int, samples: int | None, turn_deg: float | None):
    """[(case, (experiment, truth), pose vector)]: the suite's cases (generated where missing), each parallel to
    its wall and turned from it (`turn_deg` from it, or (None) the best of the mirror pose between the
    transmitter and the targets, `specular_yaw_deg`, and 45 degrees either way from the wall), at the point of
    five along the box's middle line where the turned pose reaches the most targets in truth (then the best
    median RSS)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from make_scenes import suite_cases

    from optimizer.experiment import load_experiment
    from optimizer.physics.metrics import has_path
    from optimizer.physics.scene import RadioScene
    from optimizer.physics.wall import offset_axes
    from optimizer.records import JointPose, PlatePose

    out = []
    for name, path in suite_cases(seed, cases, samples=samples) + suite_cases(seed, osm_cases, True, samples=samples):
        exp = load_experiment(path)
        rs = RadioScene(exp, device="cpu", threads=2)
        r = exp.reflector
        lo, hi = np.array(r.bounds.min), np.array(r.bounds.max)
        flat = rs.wall_frames()[0].yaw_deg
        along, _ = offset_axes(flat)
        best = None
        for t in np.linspace(-0.4, 0.4, 5) * np.hypot(*(hi - lo)[:2]):  # the box's middle line along the wall
            c = [round(float(v), 2) for v in 0.5 * (lo + hi) + t * along]
            yaws = [flat + turn_deg] if turn_deg is not None else [specular_yaw_deg(exp, c), flat - 45, flat + 45]
            for yaw in (round(math.remainder(y, 360.0), 1) for y in yaws):
                rss = rs.rss_dbm(JointPose.single(PlatePose(*c, yaw, 0.0)), samples_per_src=samples)
                reached = rss[has_path(rss)]
                key = (len(reached), float(np.median(reached)) if len(reached) else -math.inf)
                if best is None or key > best[0]:
                    best = key, c, yaw
        _, c, yaw = best
        out += [(name, (exp, rs), (*c, flat, 0.0)), (name, (exp, rs), (*c, yaw, 0.0))]
    return out


def served_over_box(raw) -> tuple[float | None, int, int]:
    """Over the targets the pose itself reaches and every pose of the box (the pose itself included): (the mean
    received power [dBm, the mean in mW], how many (pose, target) pairs have no path, how many pairs); a pair
    with no path counts as 0 mW. (None, 0, 0): the pose reaches none."""
    from optimizer.physics.metrics import has_path

    nominal = np.asarray(raw["nominal"], float)
    keep = has_path(nominal)
    if not keep.any():
        return None, 0, 0
    rss = np.vstack([nominal[None], np.asarray(raw["rss"], float).reshape(-1, len(nominal))])[:, keep]
    ok = has_path(rss)
    mw = np.where(ok, 10.0 ** (np.where(ok, rss, 0.0) / 10.0), 0.0)
    return float(10.0 * np.log10(mw.mean())), int((~ok).sum()), int(ok.size)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=None, help="samples per source (default: the example's)")
    ap.add_argument("--turned-only", action="store_true", help="skip the poses parallel to their wall")
    ap.add_argument("--suite", action="store_true", help="the benchmark suite's cases (scripts/make_scenes.py)")
    ap.add_argument("--seed", type=int, default=1, help="suite seed (--suite)")
    ap.add_argument("--cases", type=int, default=0, help="generated cases (--suite)")
    ap.add_argument("--osm-cases", type=int, default=3, help="real-city cases, central Helsinki (--suite)")
    ap.add_argument("--turn", type=float, default=None,
                    help="degrees the turned pose is from its wall (--suite; default: the mirror pose between the "
                         "transmitter and the targets)")
    args = ap.parse_args()
    from optimizer.experiment import load_experiment
    from optimizer.physics import tolerance
    from optimizer.physics.metrics import has_path
    from optimizer.physics.scene import RadioScene
    from optimizer.physics.wall import angle_to_wall_deg, frame_label
    from optimizer.records import JointPose, PlatePose
    from optimizer.records.text import fmt_pct, fmt_power

    scenes: dict = {}
    ok = True
    print(f"{'example':<16}{'pose (x, y, z, yaw, pitch)':<36}{'to wall':>8}{'plate frame':>16}{'wall frame':>16}"
          f"{'change':>9}   coverage plate / wall")
    if args.suite:
        poses = suite_poses(args.seed, args.cases, args.osm_cases, args.samples, args.turn)
    else:
        poses = []
        for name, vec in POSES:
            if name not in scenes:
                exp = load_experiment(ROOT / "examples" / f"{name}.yaml")
                scenes[name] = (exp, RadioScene(exp, device="cpu", threads=2))
            poses.append((name, scenes[name], vec))
    shown = set()
    changes = []
    for name, (exp, rs), vec in poses:
        if args.turned_only and angle_to_wall_deg(vec[3], rs.wall_frames()[0]) < 0.01:
            continue
        if name not in shown:
            shown.add(name)
            print(f"  {name}: box in the frame of {frame_label(rs.wall_frames()[0])}")
        pose = JointPose.single(PlatePose(*vec))
        t0 = time.perf_counter()
        nominal = rs.rss_dbm(pose, samples_per_src=args.samples)
        old, old_raw = tolerance.check(PlateFrame(rs, vec[3]), pose, exp, samples_per_src=args.samples,
                                       nominal_rss=nominal)
        new, new_raw = tolerance.check(rs, pose, exp, samples_per_src=args.samples, nominal_rss=nominal)
        a, b = old.worst_min_rss_dbm, new.worst_min_rss_dbm
        change = "-" if a is None or b is None else f"{b - a:+.2f}"
        turned = angle_to_wall_deg(vec[3], rs.wall_frames()[0])
        print(f"{name:<16}{', '.join(f'{v:.6g}' for v in vec):<36}{turned:>7.1f}°{fmt_power(a, 2):>16}"
              f"{fmt_power(b, 2):>16}{change:>9}   {fmt_pct(old.worst_coverage)} / {fmt_pct(new.worst_coverage)}"
              f"   ({time.perf_counter() - t0:.0f} s)")
        if args.suite:  # one plate seldom reaches a whole cluster, nor keeps a reached target over the box
            (ma, la, n), (mb, lb, _) = served_over_box(old_raw), served_over_box(new_raw)
            reached = int(np.sum(has_path(nominal)))
            print(f"  {reached} of {len(nominal)} targets reached by the pose; over the box, their mean RSS "
                  f"{fmt_power(ma, 2)} / {fmt_power(mb, 2)}" + (f" (change {mb - ma:+.2f} dB)" if n else "")
                  + f", pairs with no path {la} / {lb} of {n}")
            if turned >= 0.01 and n:
                changes.append(mb - ma)
        elif turned >= 0.01 and a is not None and b is not None:
            changes.append(b - a)
        if turned < 0.01:
            same = (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 0.01)
            ra, rb = (np.nan_to_num(np.asarray(r["rss"], float), neginf=-1e3) for r in (old_raw, new_raw))
            same &= ra.shape == rb.shape and bool(np.allclose(ra, rb, atol=0.01))  # every pose, every target
            ok &= same
            print(f"  [{'PASS' if same else 'MISS'}] parallel to its wall: the same box (change {change} dB)")
    if changes:
        what = "the reached targets' mean RSS over the box" if args.suite else "the worst min RSS"
        print(f"turned poses: {len(changes)}, change of {what} (wall frame - plate frame): mean "
              f"{sum(changes) / len(changes):+.2f} dB, largest {max(changes, key=abs):+.2f} dB")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
