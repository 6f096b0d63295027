"""Radio maps (Sionna RadioMapSolver) and the scene's floor plan, for the report's top views.

Every map is ray-traced with the truth's own settings where the RadioMapSolver has them (max_depth,
refraction, diffraction); it has no physical-optics plate model: plate paths in maps are geometric optics.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from optimizer.constants import (
    NO_PATH_FLOOR_DBM,
    RADIO_MAP_MAX_CELLS,
    RADIO_MAP_MIN_CELL_M,
    RADIO_MAP_SAMPLES_PER_TX,
)

MAX_FOOTPRINT_TRIANGLES = 200_000  # above this, only the wall cut is drawn

if TYPE_CHECKING:
    pass


def section_segments(tris: np.ndarray, h: float) -> np.ndarray:
    """Where triangles [T, 3, 3] cross the plane z = h: segments [S, 2, 2] (x, y) [m]."""
    if len(tris) == 0:
        return np.zeros((0, 2, 2))
    z = tris[:, :, 2] - h
    z = np.where(np.abs(z) < 1e-7, 1e-7, z)  # a vertex exactly on the plane counts as just above it
    segs = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        za, zb = z[:, a], z[:, b]
        cross = (za * zb) < 0
        t = np.where(cross, za / np.where(cross, za - zb, 1.0), 0.0)
        p = tris[:, a, :2] + t[:, None] * (tris[:, b, :2] - tris[:, a, :2])
        segs.append((cross, p))
    c0, c1, c2 = (s[0] for s in segs)
    pts = np.stack([s[1] for s in segs], axis=1)  # [T, 3 edges, 2]
    out = []
    for (i, j), mask in (((0, 1), c0 & c1), ((1, 2), c1 & c2), ((0, 2), c0 & c2)):
        if mask.any():
            out.append(np.stack([pts[mask, i], pts[mask, j]], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2, 2))


def scene_geometry(rs, h: float) -> tuple[np.ndarray, np.ndarray]:
    """(wall cut segments [S, 2, 2], footprint triangles [T, 3, 2]) of the objects that cross height h;
    objects entirely below or above it (floor, ceiling, ground) and the plate are left out."""
    segs, foot, n_tri = [], [], 0
    for _, v, f in rs.object_meshes():
        if len(v) == 0 or len(f) == 0 or not (v[:, 2].min() < h < v[:, 2].max()):
            continue
        tris = v[f]
        segs.append(section_segments(tris, h))
        n_tri += len(tris)
        xy = tris[:, :, :2]
        area = 0.5 * np.abs((xy[:, 1, 0] - xy[:, 0, 0]) * (xy[:, 2, 1] - xy[:, 0, 1])
                            - (xy[:, 2, 0] - xy[:, 0, 0]) * (xy[:, 1, 1] - xy[:, 0, 1]))
        foot.append(xy[area > 1e-6])
    sections = np.concatenate(segs) if segs else np.zeros((0, 2, 2))
    footprints = np.concatenate(foot) if foot and n_tri <= MAX_FOOTPRINT_TRIANGLES else np.zeros((0, 3, 2))
    return sections, footprints


def _to_dbm(watts) -> np.ndarray:
    w = np.asarray(watts, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = 10.0 * np.log10(w) + 30.0
    return np.maximum(np.nan_to_num(d, nan=NO_PATH_FLOOR_DBM, neginf=NO_PATH_FLOOR_DBM, posinf=NO_PATH_FLOOR_DBM),
                      NO_PATH_FLOOR_DBM)


def compute_radio_maps(rs, exp, pose, area, height: float, samples_per_tx: int = RADIO_MAP_SAMPLES_PER_TX) -> dict:
    """Baseline (plate parked) and winner (plate at `pose`) RSS maps [dBm] on a horizontal plane at
    `height`, same seed and cells; gain = winner - baseline [dB] (both floored at NO_PATH_FLOOR_DBM)."""
    import mitsuba as mi
    from sionna import rt

    x0, x1, y0, y1 = area
    span = max(x1 - x0, y1 - y0)
    cell = max(span / RADIO_MAP_MAX_CELLS, RADIO_MAP_MIN_CELL_M)
    nx = max(1, math.ceil((x1 - x0) / cell - 1e-9))
    ny = max(1, math.ceil((y1 - y0) / cell - 1e-9))
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    solver = rt.RadioMapSolver()
    s = exp.solver
    out = {}
    for key, p in (("baseline", None), ("winner", pose)):
        if key == "winner" and p is None:
            continue
        if p is None:
            rs.park_plate()
        else:
            rs.set_pose(p)
        rm = solver(rs.scene, center=mi.Point3f(float(cx), float(cy), float(height)),
                    orientation=mi.Point3f(0.0, 0.0, 0.0), size=mi.Point2f(float(nx * cell), float(ny * cell)),
                    cell_size=mi.Point2f(float(cell), float(cell)), samples_per_tx=int(samples_per_tx),
                    **s.radio_map_kwargs())
        rss = np.array(rm.rss, dtype=np.float64)  # [num_tx, ny, nx] [W]
        out[f"{key}_dbm"] = _to_dbm(rss.reshape(rss.shape[0], rss.shape[-2], rss.shape[-1]).sum(axis=0))
        if "x" not in out:
            cc = np.array(rm.cell_centers, dtype=np.float64)  # [ny, nx, 3]
            out["x"], out["y"] = cc[0, :, 0], cc[:, 0, 1]
    rs.park_plate()
    if "winner_dbm" in out:
        out["gain_db"] = out["winner_dbm"] - out["baseline_dbm"]
    out["height_m"] = np.float64(height)
    out["cell_m"] = np.float64(cell)
    out["samples_per_tx"] = np.int64(samples_per_tx)
    return out
