"""The reference search that uses only truth evaluations: an exhaustive grid (optional local refinement).
Grid poses whose plate cuts through the scene are skipped (counted in `skipped_cut`), never traced."""

from __future__ import annotations

import itertools
import sys
import time
from typing import TYPE_CHECKING

import numpy as np

from optimizer.errors import ConfigError
from optimizer import objectives
from optimizer.physics.metrics import rss_stats
from optimizer.search.space import PoseSpace

if TYPE_CHECKING:
    from optimizer.experiment import Experiment


def _axis(lo, hi, step, periodic=False):
    if hi - lo <= 0:
        return np.array([lo])
    n = int(np.floor((hi - lo) / step + 1e-9)) + 1
    vals = lo + step * np.arange(n)
    if periodic and np.isclose(vals[-1] - vals[0], 360.0):
        vals = vals[:-1]
    return vals


def grid_poses(space: PoseSpace, spacing_m: float, yaw_step_deg: float, center=None, radius=None):
    """The grid's points in box coordinates (`PoseSpace.lo`/`hi`: along and off a wall where the box is in
    its frame); `center`: box coordinates too."""
    lo, hi = space.lo.copy(), space.hi.copy()
    if center is not None:
        lo = np.maximum(space.lo, center - radius)
        hi = np.minimum(space.hi, center + radius)
        if space.yaw_periodic:
            lo[3], hi[3] = center[3] - radius[3], center[3] + radius[3]
    axes = [_axis(lo[k], hi[k], spacing_m) for k in range(3)]
    axes.append(_axis(lo[3], hi[3], yaw_step_deg, periodic=space.yaw_periodic and center is None))
    if space.with_pitch:
        axes.append(_axis(lo[4], hi[4], yaw_step_deg))
    return [np.array(v) for v in itertools.product(*axes)]


def planned_evaluations(exp: Experiment, spacing_m: float, yaw_step_deg: float, refine: int = 0,
                        top_k: int = 4) -> tuple[int, int]:
    """(poses of the grid, at most how many truth evaluations with `refine` rounds around the top_k)."""
    space = PoseSpace.of(exp)
    n = len(grid_poses(space, spacing_m, yaw_step_deg))
    total, step, ystep = n, spacing_m, yaw_step_deg
    centre = (space.lo + space.hi) / 2.0
    for _ in range(refine):
        radius = np.array([step, step, step, ystep] + ([ystep] if space.with_pitch else []))
        step, ystep = step / 4.0, ystep / 4.0
        total += top_k * len(grid_poses(space, step, ystep, center=centre, radius=radius))
    return n, total


def grid_search(exp: Experiment, radio_scene, spacing_m: float = 0.25, yaw_step_deg: float = 5.0, refine: int = 0,
                top_k: int = 4, max_evals: int = 200_000, progress=True):
    """Truth at every grid pose; with `refine` > 0, that many rounds of a 4x finer grid around the top_k."""
    space = PoseSpace.of(exp, radio_scene)  # a pose whose plate cuts the scene is skipped, never traced
    poses = grid_poses(space, spacing_m, yaw_step_deg)
    if len(poses) > max_evals:
        raise ConfigError(f"grid: {len(poses)} poses exceed the limit of {max_evals}; raise --spacing or "
                          "--yaw-step, or use --refine with a coarse grid")
    thr = exp.objective.coverage_threshold_dbm
    objective = objectives.of(exp)
    results = []
    skipped = [0]
    t0 = time.perf_counter()

    def run(batch, label):
        batch = [space.project(space.box_to_vec(b)) for b in batch]
        why = space.rejections([space.to_unit(vec) for vec in batch])
        skipped[0] += sum(r is not None for r in why)
        batch = [vec for vec, r in zip(batch, why) if r is None]
        for i, vec in enumerate(batch):
            rss = radio_scene.rss_dbm(space.to_pose(vec))
            results.append((objective.score_rss(rss), vec, rss))
            if progress and (i + 1) % max(1, len(batch) // 20) == 0:
                sys.stderr.write(f"\r[grid] {label}: {i + 1}/{len(batch)} poses, {time.perf_counter() - t0:.0f} s")
                sys.stderr.flush()
        if progress:
            sys.stderr.write("\n")

    run(poses, f"spacing {spacing_m} m, yaw step {yaw_step_deg} deg")
    step, ystep = spacing_m, yaw_step_deg
    for r in range(refine):
        results.sort(key=lambda t: t[0], reverse=True)
        centers = [space.vec_to_box(t[1]) for t in results[:top_k]]
        radius = np.array([step, step, step, ystep] + ([ystep] if space.with_pitch else []))
        step, ystep = step / 4.0, ystep / 4.0
        batch = []
        for c in centers:
            batch += grid_poses(space, step, ystep, center=c, radius=radius)
        run(batch, f"refinement {r + 1}: spacing {step:g} m, yaw step {ystep:g} deg")
    if not results:
        raise ConfigError(f"grid: the plate cuts the scene at every one of {len(poses)} grid poses; move "
                          "reflector.bounds off the scene's walls or use a finer --spacing")
    results.sort(key=lambda t: t[0], reverse=True)
    best_key, best_vec, best_rss = results[0]
    return {"pose": space.to_pose(best_vec), "stats": rss_stats(best_rss, thr), "rss": best_rss,
            "evaluations": len(results), "grid_evaluations": len(poses), "skipped_cut": skipped[0],
            "wall_s": time.perf_counter() - t0}
