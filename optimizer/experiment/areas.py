"""`targets.area`: target points sampled over polygons (a list of [x, y] each) at a height `z`, on a grid of
`spacing_m` anchored at the polygon's lower-left bound; a point on the boundary counts as inside. The scene
drops the points that lie inside buildings (`outside_buildings`, the scene's ray test
`RadioScene.enclosing_objects`) and the summary counts them (`targets_dropped`). Also `map_area`: the
rectangle the report's radio maps (and `objective.protect`'s default area) cover."""

from __future__ import annotations

import numpy as np

from optimizer.constants import RADIO_MAP_MARGIN_M


def polygon_problem(points) -> str | None:
    """Why `points` ([[x, y], ...]) is not an area polygon (fewer than 3 points, no area, crossing itself), or
    None."""
    from shapely.geometry import Polygon
    from shapely.validation import explain_validity

    if len(points) < 3:
        return f"a polygon needs at least 3 points [x, y], got {len(points)}"
    poly = Polygon([tuple(p) for p in points])
    if not poly.is_valid:
        why = explain_validity(poly).split("[")[0].strip().lower()
        return f"the polygon is not simple ({why}); give its corners in order, without crossing edges"
    if poly.area <= 0:
        return "the polygon encloses no area"
    return None


def grid_count(points, spacing_m: float) -> float:
    """An upper bound of the grid points over the polygon's bounding box (a float: a tiny spacing gives inf)."""
    p = np.asarray(points, float)
    span = p.max(axis=0) - p.min(axis=0)
    return float((span[0] / spacing_m + 1) * (span[1] / spacing_m + 1))


def sample(points, z: float, spacing_m: float) -> np.ndarray:
    """Grid points [M, 3] inside (or on) the polygon, row by row (y, then x), at height `z`."""
    from shapely import contains_xy, intersects_xy
    from shapely.geometry import Polygon

    poly = Polygon([tuple(p) for p in points])
    x0, y0, x1, y1 = poly.bounds
    xs = x0 + spacing_m * np.arange(int(np.floor((x1 - x0) / spacing_m + 1e-9)) + 1)
    ys = y0 + spacing_m * np.arange(int(np.floor((y1 - y0) / spacing_m + 1e-9)) + 1)
    gx, gy = np.meshgrid(xs, ys)
    gx, gy = gx.reshape(-1), gy.reshape(-1)
    keep = contains_xy(poly, gx, gy) | intersects_xy(poly.boundary, gx, gy)
    return np.column_stack([gx[keep], gy[keep], np.full(int(keep.sum()), float(z))])


def spans(exp) -> list[tuple[int, int]]:
    """[start, end) in `exp.target_points()` of each area's points (the areas come last)."""
    out, end = [], len(exp.target_points())
    for a in reversed(exp.targets.area or []):
        n = len(sample(a.polygon, a.z, a.spacing_m))
        out.append((end - n, end))
        end -= n
    return out[::-1]


def outside_buildings(exp, rs) -> tuple[np.ndarray, int, np.ndarray]:
    """The experiment's targets [N, 3] without the area points that lie inside scene objects (one ray launch),
    how many were dropped, and which were kept ([len(target_points)] bool). Explicit points and the region grid
    are kept as given (the driver warns about those inside buildings). ConfigError (exit 2) when an area keeps
    no point."""
    pts = np.array(exp.target_points(), float).reshape(-1, 3)
    keep = kept_mask(exp, rs)
    return pts[keep], int((~keep).sum()), keep


def kept_mask(exp, rs) -> np.ndarray:
    """[len(target_points)] bool: the targets the scene keeps (area points inside scene objects dropped)."""
    from optimizer.errors import ConfigError

    pts = np.array(exp.target_points(), float).reshape(-1, 3)
    where = spans(exp)
    if not where:
        return np.ones(len(pts), bool)
    first = where[0][0]
    inside = np.array([o is not None for o in rs.enclosing_objects(pts[first:])], bool)
    keep = np.concatenate([np.ones(first, bool), ~inside])
    for k, (lo, hi) in enumerate(where):
        if inside[lo - first:hi - first].all():
            raise ConfigError(f"targets.area[{k}]: all {hi - lo} of its points lie inside buildings of the scene; "
                              "draw the area over open ground, or give targets.points")
    return keep


def map_area(exp, targets_xyz: np.ndarray | None, scene_bbox=None):
    """The area the report's radio maps cover, (x0, x1, y0, y1) [m] (of an `Experiment`): targets, transmitters and the plate box plus a margin, clipped to the scene."""
    pts = [np.asarray(t.position[:2], float) for t in exp.transmitters]
    for r in exp.plates():
        b, half = r.bounds, 0.5 * max(r.size_m)
        pts += [np.array([b.min[0] - half, b.min[1] - half]), np.array([b.max[0] + half, b.max[1] + half])]
    if targets_xyz is not None and len(targets_xyz):
        pts += list(np.asarray(targets_xyz, float)[:, :2])
    p = np.array(pts)
    lo, hi = p.min(axis=0), p.max(axis=0)
    margin = max(RADIO_MAP_MARGIN_M, 0.05 * float(np.max(hi - lo)))
    lo, hi = lo - margin, hi + margin
    if scene_bbox is not None:
        slo, shi = np.asarray(scene_bbox[0], float)[:2], np.asarray(scene_bbox[1], float)[:2]
        if np.all(shi > slo):
            lo, hi = np.maximum(lo, np.minimum(slo, p.min(axis=0))), np.minimum(hi, np.maximum(shi, p.max(axis=0)))
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])
