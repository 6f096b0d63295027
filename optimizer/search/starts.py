"""Starting poses: explicit, uniform (scrambled Sobol) and informed (ray-tested visibility + specular yaw).

On wide searches most of the pose space has no useful gradient, so where worlds start matters.
Informed starts put the plate centre where the transmitter and the targets that need it are visible
(detached ray tests against the scene), facing the specular orientation toward those targets; each
candidate's score is weighted by the transmitter's pattern gain toward it (`antenna_weights`: a plate behind
a sector antenna is a poor start).
No start is a pose whose plates overlap or, with the scene given, cut through it (`PoseSpace.rejections`):
such draws and candidates are skipped; an explicit `search.initial_poses` entry that is rejected is an error.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from optimizer.constants import INFORMED_CANDIDATES_PER_WORLD
from optimizer.errors import ConfigError
from optimizer.physics.geometry import image_method, specular_yaw_pitch, wavelength_m
from optimizer.records import JointPose
from optimizer.search.space import PoseSpace

if TYPE_CHECKING:
    from optimizer.experiment import Experiment

UNIFORM_DRAWS_PER_START = 4  # Sobol draws per uniform start: the rejected ones (overlap, scene cut) are skipped


def fit_yaw(space, yaw: float) -> float:
    """A yaw inside the range of `space` (a PoseSpace: its first plate, or one PlateAxes); the plate is
    two-sided, so yaw and yaw + 180 deg are the same plate."""
    lo, hi = space.lo[3], space.hi[3]
    if space.yaw_periodic:
        return lo + (yaw - lo) % 360.0
    best, best_d = None, None
    for k in range(-3, 4):
        cand = yaw + 180.0 * k
        d = 0.0 if lo <= cand <= hi else min(abs(cand - lo), abs(cand - hi))
        if best_d is None or d < best_d:
            best, best_d = min(max(cand, lo), hi), d
    return best


def informed_candidates(exp: Experiment, radio_scene, n_candidates: int, seed: int, focus=None, plate=None):
    """Score `n_candidates` Sobol centres of `plate` (a `Reflector`; default the first); returns (unit poses
    [M, D] of that plate's box, scores [M])."""
    plate = exp.plates()[0] if plate is None else plate
    space = PoseSpace([plate])
    units = space.sobol(n_candidates, seed)
    vecs = space.from_unit(units)
    targets = radio_scene.targets if focus is None else radio_scene.targets[np.asarray(focus, bool)]
    tx = np.array([t.position for t in exp.transmitters], float)
    centres = vecs[:, :3]
    m = centres.shape[0]
    vis_tx = np.stack([radio_scene.visible(np.repeat(tx[t:t + 1], m, 0), centres) for t in range(len(tx))], 1)
    vis_tg = radio_scene.visible(np.repeat(centres, len(targets), 0), np.tile(targets, (m, 1))).reshape(m, -1)
    lam = wavelength_m(exp.centre_frequency_hz())  # a band: its centre (only `exists` is read)
    weight = antenna_weights(exp, tx, centres)  # [M, T]: a plate behind a sector antenna is a poor start
    scores = np.zeros(m)
    for i in range(m):
        if not vis_tx[i].any():
            continue
        t_idx = int(np.argmax(vis_tx[i] * weight[i]))
        seen = vis_tg[i]
        aim = targets[seen].mean(axis=0) if seen.any() else targets.mean(axis=0)
        yaw, pitch = specular_yaw_pitch(centres[i], tx[t_idx], aim, space.with_pitch)
        vecs[i, 3] = fit_yaw(space, yaw)
        if space.with_pitch:
            vecs[i, 4] = min(max(pitch, space.lo[4]), space.hi[4])
        hits = image_method(space.to_pose(vecs[i]).first, plate.size_m, tx[t_idx], targets, lam)["exists"]
        scores[i] = (seen.sum() + 2.0 * (hits & seen).sum() + 0.5) * weight[i, t_idx]
    k = exp.plates().index(plate)
    cuts = radio_scene.plate_cuts([space.to_pose(v).first for v in vecs], [k] * m) \
        if hasattr(radio_scene, "plate_cuts") else [None] * m
    scores[[c is not None for c in cuts]] = -np.inf  # cuts the scene: never a start
    return space.to_unit(vecs), scores


def antenna_weights(exp: Experiment, tx: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """[M, T] each transmitter's pattern gain toward each candidate plate centre, over its best among them
    (linear, in (0, 1]; all 1 for isotropic transmitters)."""
    from optimizer.physics import antenna

    out = np.ones((centres.shape[0], tx.shape[0]))
    for t, spec in enumerate(antenna.transmitter_specs(exp)):
        if spec.pattern != "iso":
            g = 10.0 ** (antenna.gain_db(spec, centres - tx[t]) / 10.0)
            out[:, t] = g / max(float(g.max()), antenna.GAIN_FLOOR)
    return out


def _pick_diverse(units, scores, n, min_dist):
    order = np.argsort(-scores, kind="stable")
    picked = []
    for dist in (min_dist, min_dist / 2, min_dist / 4, 0.0):
        for i in order:
            if len(picked) >= n:
                return picked
            if i in picked or scores[i] <= 0 and dist > 0 or not np.isfinite(scores[i]):
                continue
            if all(np.linalg.norm(units[i, :3] - units[j, :3]) >= dist for j in picked):
                picked.append(int(i))
    return picked[:n]


def initial_poses(exp: Experiment, radio_scene=None, n: int | None = None, focus=None) -> list[tuple[JointPose, str]]:
    """`n` starting poses (default: search.worlds) as (pose, kind), reproducible from search.seed."""
    s = exp.search
    n = s.worlds if n is None else n
    space = PoseSpace.of(exp, radio_scene)  # rejects poses whose plates overlap or (with a scene) cut it
    out: list[tuple[JointPose, str]] = []
    for i, p in enumerate(s.initial_poses[:n]):
        vec = space.project(np.array(p[: space.dim], float))
        why = space.rejection(space.to_unit(vec))
        if why is not None:
            raise ConfigError(f"search.initial_poses[{i}]: {space.to_pose(vec)} is rejected: {why}; move it clear "
                              "(another plate, a wall, the ground)")
        out.append((space.to_pose(vec), "explicit"))
    rest = n - len(out)
    if rest <= 0:
        return out
    n_inf = {"informed": rest, "uniform": 0, "mixed": int(math.ceil(rest / 2))}[s.starts]
    if radio_scene is None:
        n_inf = 0
    if n_inf and len(space.plates) > 1:
        out += joint_informed(exp, radio_scene, n_inf, focus)
    elif n_inf:
        units, scores = informed_candidates(exp, radio_scene, max(64, INFORMED_CANDIDATES_PER_WORLD * n_inf),
                                            s.seed + 1, focus)
        for i in _pick_diverse(units, scores, n_inf, 0.15):
            out.append((space.to_pose(space.from_unit(units[i])), "informed"))
    rest = n - len(out)
    if rest <= 0:
        return out
    draws = [space.project_unit(u) for u in space.sobol(UNIFORM_DRAWS_PER_START * rest, s.seed)]
    uniform = [u for u, why in zip(draws, space.rejections(draws)) if why is None]  # overlap, scene cut
    if not uniform:
        raise ConfigError(f"{_bounds_key(exp)}: every one of {len(draws)} uniform poses drawn in the mounting "
                          f"box is rejected ({space.rejection(draws[0])}); move the box clear")
    for k in range(rest):  # (too few mountable draws: the first ones again; such worlds merge)
        out.append((space.to_pose(space.from_unit(uniform[k % len(uniform)])), "uniform"))
    return out


def _bounds_key(exp) -> str:
    return "reflector.bounds" if exp.reflectors is None else "reflectors[*].bounds"


def target_groups(targets: np.ndarray, k: int) -> np.ndarray:
    """[N] a group 0..k-1 per target: k-means (farthest-point start, 20 rounds; deterministic)."""
    cent = [targets[0]]
    for _ in range(1, k):
        d = np.min([np.linalg.norm(targets - c, axis=1) for c in cent], axis=0)
        cent.append(targets[int(np.argmax(d))])
    cent = np.array(cent, float)
    for _ in range(20):
        lab = np.argmin(np.linalg.norm(targets[:, None, :] - cent[None], axis=2), axis=1)
        cent = np.array([targets[lab == g].mean(axis=0) if np.any(lab == g) else cent[g] for g in range(k)])
    return np.argmin(np.linalg.norm(targets[:, None, :] - cent[None], axis=2), axis=1)


def joint_informed(exp: Experiment, radio_scene, n: int, focus=None) -> list[tuple[JointPose, str]]:
    """`n` informed joint starts of several plates. Before any plate is placed, the targets the other plates
    serve worst are those far from the others' aims: the focus targets are split into one group per plate
    (k-means on their positions) and plate k aims at group (k + world) mod K (worlds rotate the assignment);
    each plate's candidates are scored as in `informed_candidates`. Joint poses whose plates overlap are
    rejected (the next candidates are tried)."""
    s = exp.search
    plates = exp.plates()
    space = PoseSpace.of(exp, radio_scene)
    tg = radio_scene.targets
    sel = np.flatnonzero(np.asarray(focus, bool)) if focus is not None and np.any(focus) else np.arange(len(tg))
    groups = target_groups(tg[sel], min(len(plates), len(sel)))
    n_groups = int(groups.max()) + 1
    per = []  # per plate, per group: picked unit poses of that plate, best first
    for k, r in enumerate(plates):
        row = []
        for g in range(n_groups):
            mask = np.zeros(len(tg), bool)
            mask[sel[groups == g]] = True
            units, scores = informed_candidates(exp, radio_scene, max(64, INFORMED_CANDIDATES_PER_WORLD * n),
                                                s.seed + 1 + 7919 * k + 104729 * g, mask, plate=r)
            row.append([units[i] for i in _pick_diverse(units, scores, n, 0.15)])
        per.append(row)
    out: list[tuple[JointPose, str]] = []
    for w in range(4 * n):
        if len(out) >= n:
            break
        rank = w // n_groups
        parts = []
        for k in range(len(plates)):
            cands = per[k][(k + w) % n_groups]
            parts.append(cands[rank % len(cands)])
        unit = space.project_unit(np.concatenate(parts))
        if space.rejected(unit):  # overlap, scene cut
            continue
        out.append((space.unit_pose(unit), "informed"))
    return out
