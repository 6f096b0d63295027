"""The driver of a run: baseline and starts, the worlds on Ray; the winner and its records are
`optimizer.search.conclude`'s.

`prepare` ray-traces the baseline and picks the starting poses; `run_search` runs (or resumes) the worlds
on Ray Tune, from the run's `RunSpec` (`optimizer.spec`, built once by the run command).
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from optimizer.errors import ConfigError
from optimizer.physics import backend
from optimizer.physics.metrics import focus_mask, rss_stats
from optimizer.records import (
    JointPose,
    RunMeta,
)
from optimizer.records.text import fmt_power
from optimizer.console import say
from optimizer.search.space import PoseSpace
from optimizer.search.tune import Collected

BOX_CUT_SAMPLES = 256  # poses of each mounting box (its corners, then seeded draws) tested against the scene

if TYPE_CHECKING:
    from optimizer.experiment import Experiment
    from optimizer.spec import RunSpec


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def driver_scene(exp: Experiment, threads: int | None = None):
    """The driver's own scene (baseline, winner re-evaluation), on this machine's device."""
    from optimizer.physics.scene import RadioScene

    return RadioScene(exp, device=backend.resolve_device(exp.device), threads=threads or os.cpu_count())


@dataclass
class Prepared:
    rs: object  # RadioScene
    baseline: np.ndarray  # [targets] dBm, -inf: no path
    starts: list  # [(JointPose, kind)]


def box_samples(space: PoseSpace, samples: int, seed: int = 0) -> list[JointPose]:
    """Poses of a one-plate search box: every corner (position bounds x yaw and pitch extremes, the free axes),
    then seeded uniform draws, `samples` in all (the corners first where there are more)."""
    free = np.flatnonzero(space.free)
    corners = []
    for bits in itertools.product((0.0, 1.0), repeat=free.size):
        u = np.full(space.dim, 0.5)
        u[free] = bits
        corners.append(u)
    rng = np.random.default_rng([seed, 43])
    units = corners[:samples] + list(rng.uniform(0.0, 1.0, (max(0, samples - len(corners)), space.dim)))
    return [space.unit_pose(u) for u in units]


def check_boxes_clear(exp: Experiment, rs) -> None:
    """Pre-flight: sample each plate's mounting box (`box_samples`, BOX_CUT_SAMPLES poses) against the scene.
    Every sampled pose cuts it: ConfigError naming the box and what it cuts. Some do: one warning with the
    share (the search rejects those poses)."""
    for k, r in enumerate(exp.plates()):
        key = "reflector.bounds" if exp.reflectors is None else f"reflectors[{k}].bounds ({r.name})"
        poses = box_samples(PoseSpace([r]), BOX_CUT_SAMPLES, exp.search.seed)
        cuts = rs.plate_cuts([p.first for p in poses], [k] * len(poses))
        hit = [(p, c) for p, c in zip(poses, cuts) if c is not None]
        if not hit:
            continue
        names = [c for _, c in hit]
        shape = max(sorted(set(names)), key=names.count)  # what most of them cut
        example = next(p for p, c in hit if c == shape).first
        fix = (f"move the box off {shape!r} by at least half the plate's width ({0.5 * r.size_m[0]:g} m), "
               "or narrow its yaw/pitch range")
        if len(hit) == len(poses):
            raise ConfigError(f"{key}: the plate cuts through {shape!r} at every one of {len(poses)} poses sampled "
                              f"in the mounting box (e.g. {example}); {fix}")
        say(f"warning: {key}: the plate cuts through {shape!r} at {len(hit)} of {len(poses)} poses sampled in the "
            f"mounting box ({len(hit) / len(poses):.0%}); the search rejects such poses ({fix} to use all of it)")


def check_targets(exp: Experiment, rs) -> None:
    """Pre-flight: the targets against the scene's geometry (`RadioScene.geometry_bounds`). A target more than
    TARGET_OUTSIDE_MARGIN_M below the scene's lowest surface (the ground), or farther outside its bounding box
    than the scene is wide: ConfigError naming it (no path would reach it: the run would end with "no path"
    there). Targets below the lowest surface or more than TARGET_OUTSIDE_MARGIN_M outside the box, or inside an
    object (`RadioScene.enclosing_objects`): one warning line each kind, naming the first and counting the
    rest. A scene without geometry has nothing to check against."""
    from optimizer.constants import TARGET_OUTSIDE_MARGIN_M

    pts = np.asarray(rs.targets, float).reshape(-1, 3)
    lo, hi = rs.geometry_bounds()
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo <= hi)) or not len(pts):
        return
    extent = float(max(hi[0] - lo[0], hi[1] - lo[1]))
    box = (f"x {lo[0]:.1f} to {hi[0]:.1f} m, y {lo[1]:.1f} to {hi[1]:.1f} m, z {lo[2]:.1f} to {hi[2]:.1f} m")
    outside = np.linalg.norm(np.maximum(0.0, np.maximum(lo - pts, pts - hi)), axis=1)
    below = lo[2] - pts[:, 2]

    def named(i: int) -> str:
        return f"{exp.target_key(i)}: {[round(float(v), 3) for v in pts[i]]}"

    fix = "give targets in the scene (where the receivers stand)"
    for i in np.flatnonzero(below > TARGET_OUTSIDE_MARGIN_M)[:1]:
        raise ConfigError(f"{named(i)} is {below[i]:.4g} m below the scene's lowest surface (z {lo[2]:.2f} m, the "
                          f"ground): no path would reach it; {fix}")
    for i in np.flatnonzero(outside > max(extent, TARGET_OUTSIDE_MARGIN_M))[:1]:
        raise ConfigError(f"{named(i)} is {outside[i]:.4g} m outside the scene ({box}), farther than the scene is "
                          f"wide ({extent:.0f} m): no path would reach it; {fix}")

    def more(n: int) -> str:
        return f" (and {n - 1} more target{'s' if n > 2 else ''})" if n > 1 else ""

    far = np.flatnonzero((outside > TARGET_OUTSIDE_MARGIN_M) | (below > 0))
    if far.size:
        i = far[0]
        where = (f"{below[i]:.4g} m below the scene's lowest surface (the ground)" if below[i] > 0 else
                 f"{outside[i]:.4g} m outside the scene's bounding box")
        say(f"warning: {named(i)}{more(far.size)} lies {where} ({box}); no path may reach it")
    near = np.flatnonzero(outside <= 0.0)
    inside = [(i, obj) for i, obj in zip(near, rs.enclosing_objects(pts[near])) if obj is not None]
    if inside:
        i, obj = inside[0]
        say(f"warning: {named(i)}{more(len(inside))} lies inside {obj!r}; its power is what reaches it there "
            "(through walls or not at all)")


def prepare(exp: Experiment) -> Prepared:
    """Driver-side set-up shared by run and resume: scene check, targets and mounting boxes against the scene
    (`check_targets`, `check_boxes_clear`), baseline, starting poses."""
    from optimizer.search.starts import initial_poses

    t0 = time.perf_counter()
    rs = driver_scene(exp)
    check_targets(exp, rs)
    check_boxes_clear(exp, rs)
    baseline = rs.rss_dbm(None)
    obj = exp.objective
    focus = focus_mask(baseline, obj.coverage_threshold_dbm, obj.focus_margin_db)
    starts = initial_poses(exp, rs, exp.search.worlds, focus)
    b = rss_stats(baseline, obj.coverage_threshold_dbm)
    covered = int(round(b.coverage * len(baseline)))
    say(f"scene ready: {len(rs.targets)} targets, baseline min RSS {fmt_power(b.min_rss_dbm)}, "
        f"{covered}/{len(baseline)} covered{f', {b.no_path} with no path' if b.no_path else ''}"
        f"{f', {rs.targets_dropped} area points inside buildings dropped' if rs.targets_dropped else ''} "
        f"({time.perf_counter() - t0:.1f} s)")
    return Prepared(rs, baseline, starts)


def start_ray(exp: Experiment, address: str | None) -> tuple[dict, Experiment]:
    """Ray up (`cluster.init_ray`); returns its info and the experiment to run: without a GPU in the cluster,
    a new one whose worlds take none."""
    import ray

    from optimizer.search.cluster import init_ray

    info = init_ray(address)
    gpus = float(ray.cluster_resources().get("GPU", 0.0))
    if exp.resources.gpu_per_world > 0 and gpus == 0:
        say(f"no GPU in the Ray cluster: running worlds on CPUs (resources.gpu_per_world "
            f"{exp.resources.gpu_per_world} ignored)")
        exp = exp.model_copy(update={"resources": exp.resources.model_copy(update={"gpu_per_world": 0.0})})
    if "dashboard" in info:
        say(f"Ray dashboard: {info['dashboard']}")
    return info, exp


def run_search(spec: RunSpec, prep: Prepared, tune_path: str, tune_fs, meta: RunMeta, resume: bool,
               progress: bool) -> list[Collected]:
    from optimizer.experiment import catalogue
    from optimizer.search.tune import run_worlds

    exp = spec.exp
    if spec.options:
        opts = spec.options
        unstarted = opts[len(prep.starts):]
        say(f"sizes_m: {len(opts)} size options, {len(prep.starts)} worlds in turn"
            + (f"; no starting world for {', '.join(catalogue.label(o) for o in unstarted)} (raise search.worlds "
               "to try them)" if unstarted else ""))
    say(f"{len(prep.starts)} worlds ({exp.search.gradient} gradient, {exp.resources.cpu_per_world:g} CPU / "
        f"{exp.resources.gpu_per_world:g} GPU each), {exp.search.steps} steps, pruning "
        f"{'off' if exp.search.prune == 'off' else 'successive halving'}")
    return run_worlds(spec, prep.starts, prep.baseline, tune_path, tune_fs,
                      resume=resume, progress=progress, pruned_before=meta.pruned,
                      restarts_before=meta.restarts, merged_before=meta.merged, radio_scene=prep.rs)
