"""Building footprints from an OpenStreetMap file (.osm.pbf or .osm XML) with pyosmium.

osmium assembles areas: a closed way tagged `building`, or a `type=multipolygon` relation tagged `building`
(outer and inner rings: courtyards stay holes). A building whose nodes are not all in the file (cut at an
extract's edge) or whose way does not close cannot be assembled: it is skipped and counted ("unassembled"),
never closed by guessing.
"""

from __future__ import annotations

from pathlib import Path

from optimizer.errors import ConfigError
from optimizer.sites.footprints import Footprint

OSM_SUFFIXES = (".osm.pbf", ".pbf", ".osm", ".osm.xml", ".xml")
BUILDING_KEY = "building"
NOT_A_BUILDING = ("no",)


def is_osm(path: Path) -> bool:
    return path.name.lower().endswith(OSM_SUFFIXES)


def read_osm(path: Path) -> tuple[list[Footprint], list[tuple[str, float, float]]]:
    """(footprints, unassembled): `unassembled` holds (id, lat, lon) of a node that the file has of each
    building way that could not be assembled (for counting the ones inside the site's area)."""
    import osmium
    import shapely.wkb

    wkb = osmium.geom.WKBFactory()
    footprints: list[Footprint] = []
    tagged_ways: dict[int, tuple[float, float] | None] = {}
    assembled_ways: set[int] = set()
    try:
        processor = osmium.FileProcessor(str(path)).with_locations().with_areas()
        for obj in processor:
            if obj.tags.get(BUILDING_KEY, "no") in NOT_A_BUILDING:
                continue
            if isinstance(obj, osmium.osm.Way):
                tagged_ways[obj.id] = next(((n.lat, n.lon) for n in obj.nodes if n.location.valid()), None)
                continue
            if not isinstance(obj, osmium.osm.Area):
                continue
            osm_type = "way" if obj.from_way() else "relation"
            try:
                geom = shapely.wkb.loads(wkb.create_multipolygon(obj), hex=True)
            except (RuntimeError, shapely.errors.ShapelyError):
                continue  # an area osmium could not build: counted below (ways) or left out (relations)
            if osm_type == "way":
                assembled_ways.add(obj.orig_id())
            footprints.append(Footprint(f"{osm_type}/{obj.orig_id()}", osm_type, int(obj.orig_id()),
                                        dict(obj.tags), geom))
    except RuntimeError as err:
        raise ConfigError(f"FILE: {path} is not a readable OSM file ({str(err).strip() or type(err).__name__})") from None
    unassembled = [(f"way/{wid}", loc[0], loc[1]) for wid, loc in tagged_ways.items()
                  if wid not in assembled_ways and loc is not None]
    return footprints, unassembled
