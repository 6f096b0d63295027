#!/usr/bin/env python3
"""Where one world step's time goes (CPU; on a GPU with REFLECTOPT_BENCH_DEVICE=cuda), and what each cut of the
non-truth part bought, side by side in one run (issue 13).

1. Split: one world of the default `surrogate` mode, `--steps` steps after one warm-up step, time attributed
   exclusively to the innermost of: surrogate forward, surrogate backward, occlusion ray tests, plate moves
   (vertex write + the scene's acceleration-structure rebuild), exploration's own numpy, the truth's
   PathSolver solves (without / with diffraction), the truth's plate model (PO), and the rest; by phase
   (exploration, inner steps, truth). Tune's bookkeeping per step is measured from a one-world Tune run
   (the gap between step ends minus the step itself). For the street example and a large built-in city
   scene (sionna's `munich`, 39k triangles, a hand-picked mounting box; small sample counts).
2. Cuts, cumulative, each variant from the same start and seed: `before` (the code as it was: ray tests that
   park and restore the plate, two launches per test; a plate write at every truth solve; exploration one
   surrogate launch per candidate), `+ray tests` (one launch against a plate-free copy of the scene, its
   acceleration structure built once), `+plate writes` (no rewrite of a pose already mounted: one rebuild per
   truth instead of two), `+exploration` (all candidates and corners in one batch: the code as it is).
   Every variant must give the same trajectory (poses and truth) as `before`: PASS/MISS.
3. Same winners: each example, 3 worlds x 5 steps (the best truth over the worlds), `before` against the code
   as it is.
4. Truth reuse: the PathSolver solve at an unchanged scene (same pose twice) against one after the plate moved,
   and the plate move alone.
5. Several plates (`--scenes two-plates`, issue 10): examples/two-plates.yaml at `--plate-samples` samples, a
   world of both plates against a world of each plate alone (its tolerance box as in the file), the same split
   side by side, variants `before` (host arrays handed to Dr.Jit as numpy lays them out: kernels recompiled per
   alignment pattern; multi-plate exploration one launch per candidate) and `now`, interleaved; each world's
   trajectory must be the same in both (PASS/MISS).

Targets: the non-truth share of a street step <= 25 % (CPU); a two-plate step <= 2x a one-plate step (the mean
of the two plates alone). Today's figures are printed first.

    .venv/bin/python benchmarks/step_profile.py [--steps 8] [--scenes street,munich,two-plates] [--no-tune]
        [--no-winners] [--plate-samples 20000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
DEVICE = os.environ.get("REFLECTOPT_BENCH_DEVICE", "cpu")
TARGET_SHARE = 0.25
TARGET_PLATE_RATIO = 2.0  # a two-plate step costs at most this many one-plate steps

from optimizer.constants import EXPLORE_SAMPLES  # noqa: E402
from optimizer.experiment import load_experiment, parse_experiment, with_overrides  # noqa: E402
from optimizer.records import PlatePose  # noqa: E402

# Munich (sionna's built-in city, 39k triangles): the access point in the open square north of the town hall,
# the targets down the street to the south-west that the blocks shadow, the plate on the corner at its top.
MUNICH = {
    "name": "munich-profile", "scene": "builtin:munich", "frequency_hz": 3.5e9,
    "transmitters": [{"name": "ap1", "position": [40.0, 90.0, 15.0], "power_dbm": 30}],
    "reflector": {"size_m": [3.0, 2.0], "bounds": {"min": [-40.0, 42.0, 4.0], "max": [-30.0, 48.0, 8.0]},
                  "yaw_deg": {"min": 0, "max": 180}},
    "targets": {"region": {"min": [-48.0, -6.0], "max": [-42.0, 0.0], "z": 1.5, "spacing_m": 1.5}},
    "objective": {"softmin_temperature_db": 1.0, "coverage_threshold_dbm": -70},
    "solver": {"max_depth": 3, "samples_per_src": 10000, "refraction": False},
    "search": {"worlds": 1, "steps": 20, "seed": 0},
}
STARTS = {"street": PlatePose(30.32, -13.0, 4.5, 100.0), "munich": PlatePose(-35.0, 45.0, 6.0, 90.0)}
# two-plates.yaml: each plate mid-box, turned toward its own group of targets
PLATE_STARTS = [PlatePose(30.32, -12.5, 4.5, 100.0), PlatePose(31.16, 13.0, 4.5, 80.0)]
PLATE_CONFIGS = [("south alone", [0]), ("north alone", [1]), ("two plates", [0, 1])]

LEAVES = ["surrogate forward", "surrogate backward", "occlusion ray tests", "plate moves (BVH)",
          "overlap checks", "exploration numpy", "PathSolver, no diffraction", "PathSolver, diffraction", "plate model (PO)",
          "other"]
PHASES = ["exploration", "inner steps", "truth"]


def corners(exp) -> int:
    from optimizer.physics.tolerance import corner_offsets, half_widths

    tol = exp.plates()[0].tolerance
    return len(corner_offsets(half_widths(tol))) if tol.active else 1


def experiment(name: str):
    if name == "munich":
        exp = parse_experiment(MUNICH, "munich")
    else:
        exp = load_experiment(REPO / "examples" / f"{name}.yaml" if name != "street" else
                              REPO / "examples" / "street-corner.yaml")
    return with_overrides(exp, name, {"device": DEVICE})


# --- exclusive-time profiler -------------------------------------------------------------------------------
class Profiler:
    """Wraps methods; time goes to the innermost wrapped call (leaf) under the outermost phase."""

    def __init__(self):
        import drjit as dr

        self.dr = dr
        self.stack: list[tuple[str, float]] = []
        self.times = defaultdict(float)  # (phase, leaf) -> s
        self.kernels = defaultdict(lambda: [0, 0, 0])  # (phase, leaf) -> [JIT kernels, of them compiled, other ops]
        self.phase = "other"
        self._undo = []
        dr.set_flag(dr.JitFlag.KernelHistory, True)
        dr.kernel_history()  # clear

    def _count(self, leaf):
        h = self.dr.kernel_history()  # the kernels since the last boundary (and clears the history)
        k = self.kernels[(self.phase, leaf)]
        jit = [e for e in h if e["type"] == self.dr.KernelType.JIT]
        k[0] += len(jit)
        k[1] += sum(1 for e in jit if not e.get("cache_hit"))  # neither in memory nor on disk: compiled
        k[2] += len(h) - len(jit)  # reductions, memsets, host calls (Embree ray tests)

    def _enter(self, leaf):
        now = time.perf_counter()
        if self.stack:
            top, t0 = self.stack[-1]
            self.times[(self.phase, top)] += now - t0
            self._count(top)
        else:
            self.dr.kernel_history()
        self.stack.append((leaf, now))

    def _exit(self):
        now = time.perf_counter()
        leaf, t0 = self.stack.pop()
        self.times[(self.phase, leaf)] += now - t0
        self._count(leaf)
        if self.stack:
            self.stack[-1] = (self.stack[-1][0], now)

    def wrap(self, owner, name, leaf=None, phase=None, leaf_of=None):
        orig = getattr(owner, name)

        def wrapper(*a, **kw):
            prev = self.phase
            self._enter(leaf_of(a, kw) if leaf_of else leaf)
            if phase is not None:
                self.phase = phase
            try:
                return orig(*a, **kw)
            finally:
                self._exit()
                self.phase = prev

        setattr(owner, name, wrapper)
        self._undo.append((owner, name, orig))

    def undo(self):
        self.dr.set_flag(self.dr.JitFlag.KernelHistory, False)
        for owner, name, orig in reversed(self._undo):
            setattr(owner, name, orig)
        self._undo.clear()


def instrument(prof: Profiler):
    import drjit as dr

    from optimizer.physics import plate_model
    from optimizer.physics.scene import RadioScene
    from optimizer.physics.surrogate import PlateSurrogate
    from optimizer.search.modes.surrogate import SurrogateMode
    from optimizer.search.space import PoseSpace
    from optimizer.search.world import World

    prof.wrap(World, "step", "other", phase="inner steps")
    prof.wrap(SurrogateMode, "explore", "exploration numpy", phase="exploration")
    prof.wrap(World, "truth", "other", phase="truth")
    prof.wrap(PlateSurrogate, "evaluate", "surrogate forward")
    prof.wrap(PlateSurrogate, "evaluate_many", "surrogate forward")
    prof.wrap(PoseSpace, "overlaps", "overlap checks")
    prof.wrap(dr, "backward", "surrogate backward")
    prof.wrap(RadioScene, "visible", "occlusion ray tests")
    prof.wrap(RadioScene, "write_plate_vertices", "plate moves (BVH)")
    prof.wrap(RadioScene, "paths", leaf_of=lambda a, kw: "PathSolver, diffraction" if kw.get("diffraction")
              else "PathSolver, no diffraction")
    for cls in (plate_model.PoPlateModel, plate_model.GoPlateModel):
        prof.wrap(cls, "power", "plate model (PO)")


# --- the code as it was (the "before" variants) ------------------------------------------------------------
@contextlib.contextmanager
def legacy(rays=False, writes=False, explore=False, align=False, multi_explore=False):
    """Patch back what each cut replaced (benchmark only: the reference side of each comparison)."""
    from optimizer.constants import OCCLUSION_PENALTY_DB
    from optimizer.physics import double_bounce, surrogate
    from optimizer.physics.reflectors import flat_plate
    from optimizer.physics.scene import RadioScene
    from optimizer.physics.surrogate import PlateSurrogate
    from optimizer.search.modes.surrogate import SurrogateMode

    saved = []

    def patch(owner, name, fn):
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, fn)

    if rays:
        def visible(self, origins, ends):  # park, test against the whole scene, restore
            pose = self.pose
            self.park_plate()
            clear = self.segments_clear(origins, ends)
            if pose is not None:
                self.set_pose(pose)
            return clear

        def occlusion(self, pose_vecs):  # two launches (one plate)
            rs = self.world.rs
            pts = np.stack([self.surrogate.specular_points(self._plate_vecs(v))[0][0] for v in pose_vecs])
            num_p, num_t, num_n = pts.shape[:3]
            flat = pts.reshape(-1, 3)
            tx = np.tile(np.repeat(self.surrogate.tx, num_n, axis=0), (num_p, 1))
            leg1 = rs.visible(tx, flat)
            leg2 = rs.visible(flat, np.tile(rs.targets, (num_p * num_t, 1)))
            blocked = (~leg1).astype(float) + (~leg2).astype(float)
            return [[o] for o in (OCCLUSION_PENALTY_DB * blocked).reshape(num_p, num_t, num_n)]

        patch(RadioScene, "visible", visible)
        patch(SurrogateMode, "occlusion", occlusion)
    if writes:
        set_pose, park = RadioScene.set_pose, RadioScene.park_plate

        def set_pose_always(self, pose):
            self._mounted = None
            return set_pose(self, pose)

        def park_always(self):
            self._mounted = None
            return park(self)

        patch(RadioScene, "set_pose", set_pose_always)
        patch(RadioScene, "park_plate", park_always)
    if explore:
        def evaluate_many(self, pose_vecs, edge_factor, occlusion_db=None, focus=None, temperature_db=1.0,
                          edge_width_m=None, offsets=None, corner_temperature_db=0.5, **kw):  # one per pose
            objs = [self.evaluate(v, edge_factor, occlusion_db=o, focus=focus, temperature_db=temperature_db,
                                  grad=False, edge_width_m=edge_width_m, offsets=offsets,
                                  corner_temperature_db=corner_temperature_db, **kw)["objective"]
                    for v, o in zip(pose_vecs, occlusion_db)]
            return {"objective": np.array(objs)}

        patch(PlateSurrogate, "evaluate_many", evaluate_many)
    if align:
        def to_float(values):  # numpy's buffer as it lies (any alignment)
            import mitsuba as mi

            return mi.Float(np.asarray(values, dtype=np.float32).reshape(-1))

        for module in (surrogate, flat_plate, double_bounce):
            patch(module, "to_float", to_float)
    if multi_explore:
        def multi_many(self, poses, edge_factor, occlusion_db=None, **kw):  # one evaluation per candidate
            return {"objective": np.array([self.evaluate(p, edge_factor, occlusion_db=o, grad=False, **kw)["objective"]
                                           for p, o in zip(poses, occlusion_db)])}

        patch(surrogate.PlateSurrogate, "evaluate_many", multi_many)
    try:
        yield
    finally:
        for owner, name, fn in reversed(saved):
            setattr(owner, name, fn)


VARIANTS = [("before", dict(rays=True, writes=True, explore=True)),
            ("+ray tests", dict(rays=False, writes=True, explore=True)),
            ("+plate writes", dict(rays=False, writes=False, explore=True)),
            ("+exploration (now)", dict(rays=False, writes=False, explore=False))]
PLATE_VARIANTS = [("before", dict(align=True, multi_explore=True)), ("now", {})]


def run_world(rs, exp, start, steps, world_id=0):
    from optimizer.search.world import World

    w = World(exp, world_id, start, radio_scene=rs)
    w.step()  # warm-up: the truth of the start, the first exploration, kernels compiled
    prof = Profiler()
    instrument(prof)
    t0 = time.perf_counter()
    try:
        for _ in range(steps):
            w.step()
    finally:
        prof.undo()
    wall = time.perf_counter() - t0
    traj = [([x for p in r.pose.plates for x in p.as_list()], r.truth.min_rss_dbm) for r in w.history]
    explore = []
    call = w.mode.explore
    for _ in range(3):  # one exploration call on its own (the trajectory is recorded already)
        t = time.perf_counter()
        call(w.progress())
        explore.append(time.perf_counter() - t)
    return (prof.times, prof.kernels), wall, traj, statistics.median(explore)


def same_trajectory(a, b) -> tuple[float, float]:
    dp = max(max(abs(x - y) for x, y in zip(pa, pb)) for (pa, _), (pb, _) in zip(a, b))
    dt = max(abs((ta if ta is not None else -999) - (tb if tb is not None else -999)) for (_, ta), (_, tb) in zip(a, b))
    return dp, dt


def tune_bookkeeping_s(exp, start, steps) -> float:
    """Per step: the gap between a Tune world's step ends minus its own step time (median), one world."""
    import json
    import tempfile

    import ray

    from optimizer.search.cluster import init_ray
    from optimizer.search.tune import run_worlds
    from optimizer.spec import RunSpec

    e = with_overrides(exp, exp.name, {"search.steps": steps + 2, "search.prune": "off", "resources.cpu_per_world": 1})
    init_ray(None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            from optimizer.physics.scene import RadioScene

            base = RadioScene(e, device=DEVICE, threads=1).rss_dbm(None)
            run_worlds(RunSpec.of(e), [(start, "explicit")], base, tmp, progress=False)
            rows = []
            for f in Path(tmp).glob("worlds/world-*/result.json"):
                rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    finally:
        ray.shutdown()
    rows.sort(key=lambda r: r["t_end_unix"])
    gaps = [b["t_end_unix"] - a["t_end_unix"] - b["step_s"] for a, b in zip(rows, rows[1:])][1:-1]
    return statistics.median(gaps)


def print_split(label, measured, wall, steps, tune_s):
    times, kernels = measured
    print(f"\n{label}: ms per step (mean of {steps} steps; exclusive time of the innermost part); per step, Dr.Jit "
          "kernels launched/compiled/other launches (reductions, memsets, host calls)")
    print(f"{'part':<30}" + "".join(f"{p:>14}" for p in PHASES) + f"{'all':>12}{'kernels':>16}")
    col = defaultdict(float)
    for leaf in LEAVES:
        vals = [times.get((p, leaf), 0.0) / steps * 1e3 for p in PHASES]
        vals[1] += times.get(("other", leaf), 0.0) / steps * 1e3
        if sum(vals) < 0.05:
            continue
        for p, v in zip(PHASES, vals):
            col[p] += v
        ks = [kernels.get((p, leaf), [0, 0, 0]) for p in PHASES + ["other"]]
        kern = "/".join(f"{sum(k[j] for k in ks) / steps:.{1 if j == 1 else 0}f}" for j in range(3))
        print(f"{leaf:<30}" + "".join(f"{v:>14.1f}" for v in vals) + f"{sum(vals):>12.1f}{kern:>16}")
    print(f"{'phase total':<30}" + "".join(f"{col[p]:>14.1f}" for p in PHASES) + f"{sum(col.values()):>12.1f}")
    step_ms = wall / steps * 1e3
    if tune_s is not None:
        print(f"{'Tune bookkeeping (1 world)':<30}{'':>42}{tune_s * 1e3:>12.1f}")
    total = step_ms + (tune_s or 0.0) * 1e3
    share = 1.0 - col["truth"] / total
    print(f"step {step_ms:.1f} ms (wall){' + Tune' if tune_s is not None else ''} = {total:.1f} ms; truth "
          f"{col['truth']:.1f} ms; non-truth share {share:.1%}")
    return share


def truth_reuse(rs, exp, start: PlatePose, repeats=5):
    """Fastest times [ms] (of `repeats`, interleaved): a solve at an unchanged scene, a solve right after the
    plate moved, the move alone."""
    import drjit as dr

    kw = exp.solver.path_solver_kwargs(None, None)
    kw["diffraction"] = False
    same, moved, move = [], [], []
    poses = [PlatePose(start.x, start.y, start.z, start.yaw_deg + d) for d in (0.0, 2.0, -2.0, 4.0, -4.0, 1.0, 3.0)]
    rs.set_pose(poses[0])
    rs.solver(rs.scene, **kw)
    for i in range(repeats):
        p = poses[1 + i % (len(poses) - 1)]
        t = time.perf_counter()
        rs.set_pose(p)
        dr.sync_thread()
        move.append(time.perf_counter() - t)
        t = time.perf_counter()
        rs.solver(rs.scene, **kw)
        dr.sync_thread()
        moved.append(time.perf_counter() - t)
        t = time.perf_counter()
        rs.solver(rs.scene, **kw)
        dr.sync_thread()
        same.append(time.perf_counter() - t)
    return [1e3 * min(v) for v in (same, moved, move)]


def ray_batch_cost(rs, start: PlatePose, repeats=5):
    """Fastest times [ms] of one batch of 1000 ray tests that ignore the plate: parked, tested against the whole
    scene and restored (two rebuilds of its acceleration structure, as before) vs the plate-free scene."""
    import drjit as dr

    rs.set_pose(start)
    c = np.array([start.x, start.y, start.z])
    rng = np.random.default_rng(0)
    o, e = c + rng.uniform(-20, 20, (1000, 3)), rs.targets[rng.integers(len(rs.targets), size=1000)]
    o[:, 2] = np.clip(o[:, 2], 1.0, 20.0)
    rs.visible(o, e)
    old, new = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        rs.park_plate()
        a = rs.segments_clear(o, e)
        rs.set_pose(start)
        dr.sync_thread()
        old.append(time.perf_counter() - t)
        t = time.perf_counter()
        b = rs.visible(o, e)
        new.append(time.perf_counter() - t)
        assert np.array_equal(a, b)
    return 1e3 * min(old), 1e3 * min(new)


def plate_experiment(indices, samples: int):
    """examples/two-plates.yaml with the plates `indices` only (tolerance boxes as in the file), `samples`."""
    exp = load_experiment(REPO / "examples" / "two-plates.yaml")
    data = exp.model_dump(mode="json")
    plates = [r.model_dump(mode="json") for r in exp.plates()]
    data.pop("reflector", None)
    data["reflectors"] = [plates[i] for i in indices]
    data["solver"]["samples_per_src"] = int(samples)
    data["search"]["steps"] = 1000  # no world reaches its end (the tolerance check) within the profile
    data["device"] = DEVICE
    return parse_experiment(data, "two-plates")


def plates_profile(args, checks) -> list:
    """Section 5: one- vs two-plate steps, variant by variant, interleaved; returns the comparison rows."""
    from optimizer.physics.scene import RadioScene
    from optimizer.records import JointPose

    setups = []
    for label, idx in PLATE_CONFIGS:
        exp = plate_experiment(idx, args.plate_samples)
        setups.append((label, exp, RadioScene(exp, device=DEVICE, threads=1),
                       JointPose(plates=[PLATE_STARTS[i] for i in idx])))
    exp2 = setups[-1][1]
    print(f"\n=== two-plates: {exp2.scene}, {len(setups[-1][2].targets)} targets, {args.plate_samples} samples, depth "
          f"{exp2.solver.max_depth}, {exp2.search.inner_steps} inner steps, {corners(exp2)} tolerance corners per "
          f"plate; one plate: each plate of the file alone")
    runs = defaultdict(list)
    for _ in range(args.repeats):  # interleaved: a load spike does not favour one variant or one configuration
        for vlabel, kw in PLATE_VARIANTS:
            for label, exp, rs, start in setups:
                with legacy(**kw):
                    runs[(vlabel, label)].append(run_world(rs, exp, start, args.steps))
    rows = []
    for vlabel, _ in PLATE_VARIANTS:
        for label, *_ in setups:
            (times, kernels), wall, traj, explore_s = min(runs[(vlabel, label)], key=lambda r: r[1])
            print_split(f"two-plates {label} [{vlabel}]", (times, kernels), wall, args.steps, None)
            print(f"one exploration call: {explore_s * 1e3:.1f} ms")
            per_leaf = defaultdict(float)
            for (_phase, leaf), v in times.items():
                per_leaf[leaf] += v / args.steps
            per_phase = {ph: sum(v for (p, _), v in times.items() if p == ph) / args.steps for ph in PHASES}
            compiled = sum(k[1] for k in kernels.values()) / args.steps
            rows.append((vlabel, label, wall / args.steps, per_leaf, per_phase, compiled, explore_s))
    for label, *_ in setups:  # every run's trajectory against the first run of `before`
        first, *others = [(v, r) for v, _ in PLATE_VARIANTS for r in runs[(v, label)]]
        for vlabel, r in others:
            dp, dt = same_trajectory(first[1][2], r[2])
            checks.append((f"two-plates {label} [{vlabel}]: same trajectory as before (poses, truth)",
                           f"max |dpose| {dp:.2e}, |dtruth| {dt:.2e} dB", dp <= 1e-6 and dt <= 1e-6))
    print("\nside by side, ms per step (least disturbed run; exclusive time): one plate = the mean of the two "
          "plates alone")
    cols = [(v, lab) for v, _ in PLATE_VARIANTS for lab in ("one plate", "two plates")]
    print(f"{'part':<30}" + "".join(f"{f'{lab} [{v}]':>24}" for v, lab in cols))

    def value(v, lab, fn):
        sel = [r for r in rows if r[0] == v and (r[1] == "two plates") == (lab == "two plates")]
        return statistics.mean(fn(r) for r in sel)

    lines = [(leaf, lambda r, leaf=leaf: 1e3 * r[3].get(leaf, 0.0)) for leaf in LEAVES]
    lines += [(f"phase: {ph}", lambda r, ph=ph: 1e3 * r[4][ph]) for ph in PHASES]
    lines += [("step (wall)", lambda r: 1e3 * r[2]), ("kernels compiled per step", lambda r: r[5]),
              ("one exploration call", lambda r: 1e3 * r[6])]
    for name, fn in lines:
        vals = [value(v, lab, fn) for v, lab in cols]
        if max(vals) < 0.05:
            continue
        print(f"{name:<30}" + "".join(f"{x:>24.1f}" for x in vals))
    out = []
    for v, _ in PLATE_VARIANTS:
        one, two = value(v, "one plate", lambda r: r[2]), value(v, "two plates", lambda r: r[2])
        t1, t2 = (value(v, lab, lambda r: r[4]["truth"]) for lab in ("one plate", "two plates"))
        out.append((v, one, two, t1, t2))
    return out


def winners(steps=5, worlds=3, befores=None):
    """Each example: the winner (best truth score over worlds) before the cuts and now, from the same starts."""
    from optimizer.physics.scene import RadioScene
    from optimizer.search.starts import initial_poses
    from optimizer.search.world import World

    out = []
    for name in ("street-corner", "indoor-corridor", "wide-facade"):
        exp = load_experiment(REPO / "examples" / f"{name}.yaml")
        # no world reaches its end (the tolerance check)
        exp = with_overrides(exp, name, {"device": DEVICE, "search.steps": steps + 1, "search.worlds": worlds})
        rs = RadioScene(exp, device=DEVICE, threads=1)
        base = rs.rss_dbm(None)
        starts = initial_poses(exp, rs, worlds)
        res = {}
        for label, kw in (befores or [("before", VARIANTS[0][1])]) + [("now", VARIANTS[-1][1])]:
            with legacy(**kw):
                ws = []
                for i, (pose, kind) in enumerate(starts):
                    w = World(exp, i, pose, radio_scene=rs, baseline_rss=base, start_kind=kind)
                    for _ in range(steps):
                        w.step()
                    ws.append(w)
            best = max(ws, key=lambda w: w.best.score)
            res[label] = (best.world_id, best.best.pose.first.as_list(), best.best.truth.min_rss_dbm,
                          [w.best.pose.first.as_list() for w in ws])
        out.append((name, res))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--scenes", default="street,munich,two-plates")
    ap.add_argument("--plate-samples", type=int, default=20000, help="samples_per_src of the two-plates section")
    ap.add_argument("--repeats", type=int, default=2, help="runs per variant, interleaved; the fastest is shown")
    ap.add_argument("--no-tune", action="store_true", help="skip the one-world Tune run (its bookkeeping)")
    ap.add_argument("--no-winners", action="store_true", help="skip the same-winners check on the examples")
    args = ap.parse_args()
    from optimizer.physics import backend
    from optimizer.physics.scene import RadioScene

    backend.init(DEVICE, 1)
    print(f"step profile on {DEVICE} (Dr.Jit threads 1, {os.cpu_count()} cores; load average "
          f"{os.getloadavg()[0]:.1f})")
    summary, checks = [], []
    scenes = [x for x in args.scenes.split(",") if x]
    unknown = [x for x in scenes if x not in (*STARTS, "two-plates")]
    if unknown:
        print(f"--scenes: {unknown[0]!r} is not one of {', '.join([*STARTS, 'two-plates'])}")
        return 2
    plate_rows = plates_profile(args, checks) if "two-plates" in scenes else []
    for scene in [x for x in scenes if x in STARTS]:
        exp = experiment(scene)
        start = STARTS[scene]
        tune_s = None if (args.no_tune or scene != "street") else tune_bookkeeping_s(exp, start, args.steps)
        rs = RadioScene(exp, device=DEVICE, threads=1)
        print(f"\n=== {scene}: {exp.scene}, {len(rs.targets)} targets, {exp.solver.samples_per_src} samples, "
              f"depth {exp.solver.max_depth}, {exp.search.inner_steps} inner steps")
        ref = None
        runs = defaultdict(list)
        for _ in range(args.repeats):  # interleaved, so that a load spike does not favour one variant
            for label, kw in VARIANTS:
                with legacy(**kw):
                    runs[label].append(run_world(rs, exp, start, args.steps))
        for label, _ in VARIANTS:
            times, wall, traj, explore_s = min(runs[label], key=lambda r: r[1])  # the least disturbed run
            share = print_split(f"{scene} [{label}]", times, wall, args.steps, tune_s)
            print(f"one exploration call ({EXPLORE_SAMPLES + 1} candidates x {corners(exp)} corners): "
                  f"{explore_s * 1e3:.1f} ms")
            truth = sum(v for (p, _), v in times[0].items() if p == "truth") / args.steps
            summary.append((scene, label, wall / args.steps, truth, share, explore_s))
            for _, _, other, _ in runs[label]:
                if ref is None:
                    ref = other
                    continue
                dp, dt = same_trajectory(ref, other)
                checks.append((f"{scene} {label}: same trajectory as before (pose, truth)",
                               f"max |dpose| {dp:.2e}, |dtruth| {dt:.2e} dB", dp <= 1e-6 and dt <= 1e-6))
        same, moved, move = truth_reuse(rs, exp, start)
        print(f"\n{scene} truth reuse (one solve without diffraction, fastest of 5): unchanged scene {same:.0f} ms, "
              f"after a plate move {moved:.0f} ms (ratio {moved / same:.2f}); the move itself {move:.1f} ms")
        summary.append((scene, "truth reuse", same, moved, move, None))
        park, free = ray_batch_cost(rs, start)
        print(f"{scene}: one batch of 1000 ray tests ignoring the plate: park, test, restore {park:.1f} ms; "
              f"plate-free scene {free:.1f} ms (fastest of 5, same answers)")

    if summary:
        print("\nside by side: ms per step (wall, Tune not included), truth ms, non-truth share (Tune included on "
              "the street)")
        print(f"{'scene':<10}{'variant':<22}{'step':>10}{'truth':>10}{'non-truth':>12}{'vs before':>11}"
              f"{'explore call':>14}{'vs before':>11}")
    first = {}
    for row in summary:
        if row[1] == "truth reuse":
            continue
        scene, label, step_s, truth_s, share, explore_s = row
        first.setdefault(scene, (step_s, explore_s))
        print(f"{scene:<10}{label:<22}{step_s * 1e3:>10.1f}{truth_s * 1e3:>10.1f}{share:>12.1%}"
              f"{first[scene][0] / step_s:>10.2f}x{explore_s * 1e3:>14.1f}{first[scene][1] / explore_s:>10.2f}x")
    if not args.no_winners:
        befores = [("before", VARIANTS[0][1])] + ([("before (plates)", PLATE_VARIANTS[0][1])] if plate_rows else [])
        for name, res in winners(befores=befores):
            n = res["now"]
            for label, _ in befores:
                b = res[label]
                dp = max(abs(x - y) for pa, pb in zip(b[3], n[3]) for x, y in zip(pa, pb))
                checks.append((f"{name}: same winner {label} and now (3 worlds x 5 steps)",
                               f"world {b[0]} vs {n[0]}, {b[2]:.2f} vs {n[2]:.2f} dBm, max |dpose| {dp:.1e}",
                               b[0] == n[0] and dp <= 1e-6))
    print()
    for v, one, two, t1, t2 in plate_rows:
        ratio = two / one
        print(f"[{'PASS' if ratio <= TARGET_PLATE_RATIO else 'MISS'}] two-plates [{v}]: two-plate step / one-plate step "
              f"{two * 1e3:.0f} / {one * 1e3:.0f} ms = {ratio:.2f}x (target <= {TARGET_PLATE_RATIO:g}x); truth alone "
              f"{t2 * 1e3:.0f} / {t1 * 1e3:.0f} ms = {t2 / t1:.2f}x")
    for scene, label, _step, _truth, share, _ in [r for r in summary if r[1] != "truth reuse"]:
        if scene == "street" and label in (VARIANTS[0][0], VARIANTS[-1][0]):
            ok = share <= TARGET_SHARE
            print(f"[{'PASS' if ok else 'MISS'}] street [{label}]: non-truth share {share:.1%} (target <= 25 %)")
    for name, detail, ok in checks:
        print(f"[{'PASS' if ok else 'MISS'}] {name}: {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
