"""Freed budget reused: what a pruned or merged world's slot starts next (`search.reuse`).

The run's budget is `worlds x steps` world-steps (one truth evaluation each in the default mode). A world
the pruner stops, or one stopped as a duplicate of a better one (`search.merge`), leaves the rest of its
steps unspent; as soon as REUSE_STEPS_FRACTION of a world's steps are free, a new world starts in them:

* `exploit`: near one of the best poses seen so far, in the manner of Ray Tune's PBT: the parent's best
  pose perturbed by 2, 4 or 8 times the mounting tolerance per axis (2 % of the box where the tolerance is
  off), never within the tolerance of a running world (it would merge at once);
* `explore`: the point of the box farthest from every pose any world has evaluated (of EXPLORE_CANDIDATES
  seeded uniform candidates, distance on the unit cube over the free axes);
* `mixed` (default): exploit, explore, exploit, ...

Neither starts at a pose the space rejects (plates that overlap or cut the scene, `PoseSpace.rejections`).

Everything here is plain numpy on records, so the Tune searcher (`tune.searcher.WorldSearcher`) stays a thin shell
and the rules are tested without Ray.
"""

from __future__ import annotations

import math

import numpy as np

from optimizer.records import JointPose

REUSE_STEPS_FRACTION = 0.5  # a reused world runs this share of `search.steps` (at least 2 rungs' worth)
EXPLORE_CANDIDATES = 512  # uniform candidates an explore slot picks its start from
EXPLOIT_SCALES = (2.0, 4.0, 8.0)  # perturbation of an exploit start, in units of the mounting tolerance
EXPLOIT_PARENTS = 3  # exploit starts cycle over the best this many worlds
FALLBACK_SCALE = 0.02  # ... of the box per axis, where the tolerance is off
MOUNT_MIN_M, MOUNT_MIN_DEG = 0.01, 0.1  # two poses closer than this are the same mount even at tolerance 0


def per_plate(tol, n: int) -> list:
    """A `reflector.tolerance`, or a list of them (one per plate), as a list of n."""
    return list(tol) if isinstance(tol, (list, tuple)) else [tol] * n


def tolerances(exp) -> list:
    """Every plate's mounting tolerance (`reflector.tolerance`, or each `reflectors[k].tolerance`)."""
    return [r.tolerance for r in exp.plates()]


def same_mount(a: JointPose, b: JointPose, tol) -> bool:
    """Two poses a person could not tell apart at the mounting tolerance (at least 1 cm / 0.1 deg): every
    plate within its tolerance (`tol`: one for all plates, or a list) on every axis (yaw modulo 180 deg: the
    plate is two-sided)."""
    for p, q, t in zip(a.plates, b.plates, per_plate(tol, len(a.plates))):
        dp, da = max(t.position_m, MOUNT_MIN_M), max(t.yaw_deg, MOUNT_MIN_DEG)
        dpitch = max(t.pitch_deg, MOUNT_MIN_DEG)
        if (max(abs(p.x - q.x), abs(p.y - q.y), abs(p.z - q.z)) > dp
                or abs((p.yaw_deg - q.yaw_deg + 90.0) % 180.0 - 90.0) > da or abs(p.pitch_deg - q.pitch_deg) > dpitch):
            return False
    return True


def reuse_steps(steps: int, grace_steps: int | None) -> int:
    """Steps a reused world is given: half a world's, at least two pruning rungs' worth, at most `steps`."""
    floor = 2 * grace_steps if grace_steps else 2
    return int(min(steps, max(floor, math.ceil(REUSE_STEPS_FRACTION * steps))))


def kind_for(mode: str, n_reused: int) -> str:
    """The kind of the n-th reused slot (0-based) under `search.reuse`."""
    if mode == "mixed":
        return "exploit" if n_reused % 2 == 0 else "explore"
    return mode


def exploit_start(space, tol, parent_pose: JointPose, avoid: list[JointPose], rng: np.random.Generator,
                  tries: int = 16) -> tuple[JointPose, float]:
    """A start near `parent_pose`: each free axis moved by scale x tolerance x U(-1, 1), the scale drawn
    from EXPLOIT_SCALES, never the same mount as a pose in `avoid` (tries, then the last draw) and never a
    pose `space` rejects (overlap, scene cut; all draws rejected: the parent's pose itself)."""
    base = space.to_unit(space.to_vec(parent_pose))
    step = space.tolerance_unit(tol, FALLBACK_SCALE)
    draws = []
    for _ in range(tries):
        scale = float(rng.choice(EXPLOIT_SCALES))
        draws.append((space.project_unit(base + scale * step * rng.uniform(-1.0, 1.0, space.dim)), scale))
    mountable = [(space.unit_pose(u), sc) for (u, sc), why in zip(draws, space.rejections([u for u, _ in draws]))
                 if why is None]  # a rejected draw (overlap, scene cut) is never a start
    for pose, scale in mountable:
        if not any(same_mount(pose, other, tol) for other in [parent_pose, *avoid]):
            return pose, scale
    return mountable[-1] if mountable else (parent_pose, EXPLOIT_SCALES[0])


def explore_start(space, visited_unit: np.ndarray, rng: np.random.Generator) -> JointPose | None:
    """The farthest of EXPLORE_CANDIDATES uniform points from every visited unit-cube pose (free axes), of
    those `space` does not reject; None when it rejects them all."""
    cands = np.array([space.project_unit(u) for u in rng.uniform(0.0, 1.0, (EXPLORE_CANDIDATES, space.dim))])
    ok = [i for i, why in enumerate(space.rejections(cands)) if why is None]  # overlap, scene cut: skipped
    if not ok:
        return None
    cands = cands[ok]
    free = space.free.astype(float)
    visited = np.asarray(visited_unit, float).reshape(-1, space.dim)
    if len(visited) == 0:
        return space.unit_pose(cands[0])
    d = np.sqrt((((cands[:, None, :] - visited[None, :, :]) * free) ** 2).sum(-1)).min(axis=1)
    return space.unit_pose(cands[int(np.argmax(d))])
