"""`targets.area`: target points sampled over polygons (a list of [x, y] each) at a height `z`, on a grid of
`spacing_m` anchored at the polygon's lower-left bound; a point on the boundary counts as inside. The scene
drops the points that lie inside buildings (`outside_buildings`, the scene's ray test
`RadioScene.enclosing_objects`) and the summary counts them (`targets_dropped`)."""

from __future__ import annotations

import numpy as np


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
