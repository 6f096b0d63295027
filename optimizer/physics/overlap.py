"""Plates that would overlap each other: the distance between two plates, and bounds that force an overlap.

Two plates overlap when they come closer than `PLATE_CLEARANCE_M` (they touch, cross or cut through each
other). The distance is the smallest distance from points along each plate's edges to the other plate
(edge points every `_EDGE_STEP_M`): two flat rectangles that cross or touch have an edge of one within half a
step of the other, so the test errs by at most half a step (5 mm), below the clearance.

A search never ray-traces a pose whose plates overlap: such a pose is *rejected* (the world keeps its previous
pose; starts and exploration skip it). Projecting it back would need a direction out of the overlap that the
gradient does not give.
"""

from __future__ import annotations

import numpy as np

from optimizer.constants import PLATE_CLEARANCE_M
from optimizer.physics.geometry import plate_corners, plate_frame, position
from optimizer.physics.reflectors import as_kind, kind_of
from optimizer.records import JointPose, PlatePose

_EDGE_STEP_M = 0.01  # [m] spacing of the edge points
FORCED_OVERLAP_SAMPLES = 256  # joint poses sampled in two plates' bounds (with the box corners)


def _edge_points(pose: PlatePose, size_m) -> np.ndarray:
    c = plate_corners(pose, size_m)
    pts = []
    for i in range(4):
        a, b = c[i], c[(i + 1) % 4]
        n = max(2, int(np.ceil(np.linalg.norm(b - a) / _EDGE_STEP_M)) + 1)
        pts.append(a + np.linspace(0.0, 1.0, n)[:, None] * (b - a))
    return np.concatenate(pts)


def _to_plate(points: np.ndarray, pose: PlatePose, size_m) -> np.ndarray:
    """Distances [m] from points [N, 3] to the (filled) rectangle of the plate."""
    u, v, n = plate_frame(pose.yaw_deg, pose.pitch_deg)
    d = points - position(pose)
    a, b, h = d @ u, d @ v, d @ n
    da = np.maximum(np.abs(a) - 0.5 * size_m[0], 0.0)
    db = np.maximum(np.abs(b) - 0.5 * size_m[1], 0.0)
    return np.sqrt(da * da + db * db + h * h)


def plate_distance(pa: PlatePose, size_a, pb: PlatePose, size_b) -> float:
    """Smallest distance [m] between two plates (0 where they cross; edge-point resolution, see the module)."""
    return float(min(_to_plate(_edge_points(pa, size_a), pb, size_b).min(),
                     _to_plate(_edge_points(pb, size_b), pa, size_a).min()))


def overlapping_pairs(pose: JointPose, plates) -> list[tuple[int, int]]:
    """Index pairs (i, j) of the plates of `pose` that overlap (closer than PLATE_CLEARANCE_M). plates: per
    plate its reflector kind (`optimizer.physics.reflectors`: its reach and distance test) or its size."""
    out = []
    kinds = [as_kind(p) for p in plates]
    poses = pose.plates
    for i in range(len(poses)):
        for j in range(i + 1, len(poses)):
            ci, cj = np.array(poses[i].position), np.array(poses[j].position)
            if np.linalg.norm(ci - cj) > kinds[i].reach_m() + kinds[j].reach_m() + PLATE_CLEARANCE_M:
                continue  # bounding spheres apart
            if kinds[i].distance_m(poses[i], kinds[j], poses[j]) < PLATE_CLEARANCE_M:
                out.append((i, j))
    return out


def forced_overlap(ra, rb, samples: int = FORCED_OVERLAP_SAMPLES, seed: int = 0) -> bool:
    """Whether the bounds of two plates (experiment `Reflector`s) force them to overlap: every one of
    `samples` joint poses (the corners of both boxes, then seeded uniform draws) overlaps. A pose box
    with room to spare has a non-overlapping pose among them; a sliver of room below the sampling's
    resolution counts as forced."""
    def box(r):  # box coordinates (x, y, z or along, off, z), yaw[, pitch] bounds of one plate's search box
        lo, hi = r.bounds.box_range()
        lo = lo + [r.yaw_deg.min] + ([r.pitch_deg.min] if r.pitch_deg is not None else [])
        hi = hi + [r.yaw_deg.max] + ([r.pitch_deg.max] if r.pitch_deg is not None else [])
        return np.array(lo, float), np.array(hi, float)

    def pose(r, v):  # a plate pose from box coordinates
        x, y = (v[0], v[1]) if r.bounds.frame is None else r.bounds.frame.to_scene(v[0], v[1])
        return PlatePose.from_seq([x, y] + list(v[2:]) + [0.0] * (5 - v.size))

    (lo_a, hi_a), (lo_b, hi_b) = box(ra), box(rb)
    kinds = [kind_of(ra), kind_of(rb)]
    reach = kinds[0].reach_m() + kinds[1].reach_m() + PLATE_CLEARANCE_M
    box_lo = [np.array(r.bounds.min, float) for r in (ra, rb)]  # the centre boxes' plan extents
    box_hi = [np.array(r.bounds.max, float) for r in (ra, rb)]
    gap = np.maximum(0.0, np.maximum(box_lo[1] - box_hi[0], box_lo[0] - box_hi[1]))  # between the centre boxes
    if np.linalg.norm(gap) > reach:
        return False
    lo, hi = np.concatenate([lo_a, lo_b]), np.concatenate([hi_a, hi_b])
    rng = np.random.default_rng([seed, 31])
    units = np.vstack([np.zeros(lo.size), np.ones(lo.size), rng.uniform(0.0, 1.0, (samples - 2, lo.size))])
    for u in units:
        v = lo + u * (hi - lo)
        joint = JointPose(plates=[pose(ra, v[:lo_a.size]), pose(rb, v[lo_a.size:])])
        if not overlapping_pairs(joint, kinds):
            return False
    return True
