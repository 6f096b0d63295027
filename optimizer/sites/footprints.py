"""Footprints: what a map says a building stands on, projected into the site's frame and repaired.

A footprint is a shapely (Multi)Polygon, holes (courtyards) kept. In the scene frame it is repaired with
`shapely.make_valid` when invalid (self-touching or crossing rings, a bow tie): the polygonal parts of the
result are kept and the building is counted as "repaired"; a footprint with nothing polygonal left, or
smaller than MIN_AREA_M2, is skipped and counted as "invalid". Rings are oriented (exterior counter-
clockwise, holes clockwise), so the solid is on the left of every edge and its outward normal on the right.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MIN_AREA_M2 = 1.0  # [m^2] a footprint smaller than this is not a building (a mapping slip): skipped
DUPLICATE_IOU = 0.9  # two footprints overlapping this much (intersection over union) are one building


@dataclass
class Footprint:
    """One building as read from a map: geometry in (lon, lat) degrees."""

    id: str  # "way/123", "relation/45" (OSM), or the GeoJSON feature's id
    osm_type: str | None
    osm_id: int | None
    tags: dict
    geometry: object  # shapely geometry, (lon, lat)


@dataclass
class Building:
    """A building of the site: footprint in scene metres, oriented, valid; heights above the ground."""

    id: str
    osm_type: str | None
    osm_id: int | None
    polygons: list  # shapely Polygons (scene x, y), oriented
    bottom_m: float
    top_m: float
    height_source: str
    material: str
    repaired: bool = False
    name: str | None = None
    walls: list = field(default_factory=list)  # optimizer.sites.walls.Wall, filled by walls.exposed_walls

    @property
    def area_m2(self) -> float:
        return float(sum(p.area for p in self.polygons))


def scene_polygons(geometry_lonlat, frame) -> tuple[list | None, bool]:
    """(oriented polygons in scene metres, repaired?) or (None, False) when nothing valid is left."""
    import shapely
    from shapely.geometry.polygon import orient

    geom = shapely.transform(geometry_lonlat, frame.lonlat_to_scene_xy)
    repaired = False
    if not geom.is_valid:
        geom, repaired = shapely.make_valid(geom), True
    parts = [g for g in getattr(geom, "geoms", [geom]) if g.geom_type in ("Polygon", "MultiPolygon")]
    polygons = [p for g in parts for p in getattr(g, "geoms", [g]) if not p.is_empty]
    polygons = [orient(p, 1.0) for p in polygons if p.area >= MIN_AREA_M2]
    return (polygons or None), repaired


def drop_duplicates(buildings: list[Building]) -> tuple[list[Building], int]:
    """One building per footprint: OSM sometimes maps a building twice (a tagged way that is also the outer
    ring of a tagged multipolygon relation). Of two footprints overlapping by DUPLICATE_IOU or more, the
    relation (the object that describes the whole building, as pyrosm keeps it) or else the first stays."""
    from shapely import STRtree
    from shapely.geometry import MultiPolygon

    shapes = [MultiPolygon(b.polygons) for b in buildings]
    tree = STRtree(shapes)
    dropped: set[int] = set()
    for i, a in enumerate(shapes):
        for j in map(int, tree.query(a)):
            if j <= i or i in dropped or j in dropped:
                continue
            inter = a.intersection(shapes[j]).area
            if inter / max(a.union(shapes[j]).area, 1e-9) >= DUPLICATE_IOU:
                keep_j = buildings[j].osm_type == "relation" and buildings[i].osm_type != "relation"
                dropped.add(i if keep_j else j)
    return [b for k, b in enumerate(buildings) if k not in dropped], len(dropped)
