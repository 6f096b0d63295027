"""Walls: the vertical faces of the buildings, with the parts that touch a neighbour left out.

Touching buildings (terraced houses, a city block) share a wall in OSM: the same nodes on both footprints.
Extruding both would put two coincident faces, back to back, inside the block, where a ray tracer finds
spurious transmissions and self-intersections. So a building's wall is split along its edge wherever a
neighbour's footprint covers it (within SHARED_TOL_M), and over each such piece only the heights the
neighbour does not occupy are kept: a shared wall disappears up to the lower roof, and the taller
building's wall above it stays (it is a facade). "Covers" is tested just outside the wall (OUTSIDE_M): the
same rule removes walls buried inside an overlapping neighbour. What is kept are the facades that `reflectopt scene walls` lists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SHARED_TOL_M = 0.05  # [m] an edge this close to a neighbour's footprint is against it
# [m] a wall is against a neighbour where the line this far outside it lies in the neighbour's footprint
# (within SHARED_TOL_M): a neighbour on the same side (an overlapping duplicate) does not remove it
OUTSIDE_M = 0.1
MIN_PIECE_M = 0.1  # [m] shorter pieces (a neighbour's corner touching the edge) are not shared walls
MIN_WALL_M = 0.01  # [m] a wall piece shorter or lower than this (a sliver between two cuts) is left out


@dataclass(frozen=True)
class Wall:
    """A vertical rectangle from (x0, y0) to (x1, y1) [m], z0..z1 [m]; outward normal on the right."""

    id: str
    building_id: str
    x0: float
    y0: float
    x1: float
    y1: float
    z0: float
    z1: float

    @property
    def length_m(self) -> float:
        return math.hypot(self.x1 - self.x0, self.y1 - self.y0)

    @property
    def normal(self) -> tuple[float, float]:
        dx, dy = self.x1 - self.x0, self.y1 - self.y0
        n = math.hypot(dx, dy)
        return dy / n, -dx / n


def _edges(polygon):
    for ring in (polygon.exterior, *polygon.interiors):
        c = list(ring.coords)
        for a, b in zip(c[:-1], c[1:]):
            if a != b:
                yield a, b


def _subtract(lo: float, hi: float, cuts) -> list[tuple[float, float]]:
    """[lo, hi] minus the union of the intervals `cuts`."""
    out, at = [], lo
    for c0, c1 in sorted(cuts):
        if c1 <= at:
            continue
        if c0 > at:
            out.append((at, min(c0, hi)))
        at = max(at, c1)
        if at >= hi:
            break
    if at < hi:
        out.append((at, hi))
    return [(a, b) for a, b in out if b - a > 1e-6]


def _covered(outside, p, length, others) -> list[tuple[float, float, float, float]]:
    """(t0, t1, z0, z1): stretches [0..length] of the line just outside an edge (from p' = p + offset)
    that lie in a neighbour, and its heights."""
    out = []
    for other, region in others:
        piece = outside.intersection(region)
        for g in getattr(piece, "geoms", [piece]):
            if g.is_empty or g.geom_type != "LineString" or g.length < MIN_PIECE_M:
                continue
            ts = [math.hypot(x - p[0], y - p[1]) for x, y in g.coords]
            out.append((max(0.0, min(ts)), min(length, max(ts)), other.bottom_m, other.top_m))
    return out


def exposed_walls(buildings) -> int:
    """Fill each building's `walls`; returns how many shared stretches were removed or shortened."""
    from shapely import STRtree
    from shapely.geometry import LineString

    regions = [(b, p.buffer(SHARED_TOL_M, join_style="mitre")) for b in buildings for p in b.polygons]
    tree = STRtree([r for _, r in regions])
    shared = 0
    for b in buildings:
        b.walls = []
        for polygon in b.polygons:
            for p, q in _edges(polygon):
                length = math.hypot(q[0] - p[0], q[1] - p[1])
                ux, uy = (q[0] - p[0]) / length, (q[1] - p[1]) / length
                po = (p[0] + uy * OUTSIDE_M, p[1] - ux * OUTSIDE_M)  # the outward normal is (uy, -ux)
                outside = LineString([po, (q[0] + uy * OUTSIDE_M, q[1] - ux * OUTSIDE_M)])
                near = [regions[i] for i in tree.query(outside) if regions[i][0] is not b]
                cover = _covered(outside, po, length, near)
                shared += len(cover) > 0
                cuts = sorted({0.0, length, *(t for c in cover for t in c[:2])})
                pieces = []  # (t0, t1, z0, z1), merged along the edge where the heights agree
                for t0, t1 in zip(cuts[:-1], cuts[1:]):
                    mid = 0.5 * (t0 + t1)
                    zs = _subtract(b.bottom_m, b.top_m, [(c[2], c[3]) for c in cover if c[0] <= mid <= c[1]])
                    for z0, z1 in zs:
                        last = pieces[-1] if pieces else None
                        if last and last[1] == t0 and (last[2], last[3]) == (z0, z1):
                            pieces[-1] = (last[0], t1, z0, z1)
                        else:
                            pieces.append((t0, t1, z0, z1))
                for t0, t1, z0, z1 in pieces:
                    if t1 - t0 < MIN_WALL_M or z1 - z0 < MIN_WALL_M:
                        continue
                    b.walls.append(Wall(f"{b.id}#{len(b.walls) + 1}", b.id, p[0] + ux * t0, p[1] + uy * t0,
                                        p[0] + ux * t1, p[1] + uy * t1, z0, z1))
    return shared
