"""GeoJSON (RFC 7946: WGS 84 longitude, latitude) in and out.

In: a FeatureCollection of Polygon / MultiPolygon features, the building's tags as the feature's properties
(`height`, `building:levels`, `min_height`, `building:material`, ... as on OSM). A feature's id is its `id`,
else its property `@id` or `osm_id`, else its position in the file (`feature/N`); an id of the form
"way/123" or "relation/45" is taken as the OSM object it names. Other geometries are skipped.
Out: the site's footprints, as imported (after repair), one feature per building, written as a standard file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from optimizer.errors import ConfigError
from optimizer.sites.footprints import Footprint

GEOJSON_SUFFIXES = (".geojson", ".json")
MAX_BYTES = 512 * 1024**2  # a GeoJSON bigger than this is not one neighbourhood
_OSM_ID = re.compile(r"^(way|relation)/(\d+)$")


def is_geojson(path: Path) -> bool:
    return path.name.lower().endswith(GEOJSON_SUFFIXES)


def read_geojson(path: Path) -> tuple[list[Footprint], str | None]:
    """(footprints, the collection's `attribution` member if it has one)."""
    import shapely.geometry

    if path.stat().st_size > MAX_BYTES:
        raise ConfigError(f"FILE: {path} is over {MAX_BYTES // 1024**2} MiB: import a smaller extract")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"FILE: {path} is not valid GeoJSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(
            doc.get("features"), list):
        raise ConfigError(f"FILE: {path} is not a GeoJSON FeatureCollection (type and features)")
    out = []
    for i, feat in enumerate(doc["features"]):
        geom = feat.get("geometry") if isinstance(feat, dict) else None
        if not isinstance(geom, dict) or geom.get("type") not in ("Polygon", "MultiPolygon"):
            continue
        props = feat.get("properties") or {}
        if not isinstance(props, dict):
            props = {}
        try:
            shape = shapely.geometry.shape(geom)
        except (ValueError, TypeError, AttributeError, IndexError) as err:
            raise ConfigError(f"FILE: {path}: feature {i}: geometry is not a polygon ({err})") from None
        fid = str(feat.get("id") or props.get("@id") or props.get("osm_id") or f"feature/{i}")
        m = _OSM_ID.match(fid)
        out.append(Footprint(fid, m.group(1) if m else None, int(m.group(2)) if m else None, props, shape))
    attribution = doc.get("attribution")
    return out, (str(attribution) if attribution else None)


def write_footprints(path: Path, buildings, frame) -> None:
    """The buildings' footprints in WGS 84, with heights, height source and material as properties."""
    import numpy as np
    import shapely
    from shapely.geometry import MultiPolygon, mapping

    def to_lonlat(coords):
        lat, lon = frame.to_geo(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    feats = []
    for b in buildings:
        geom = shapely.transform(MultiPolygon(b.polygons), to_lonlat)
        feats.append({"type": "Feature", "id": b.id, "geometry": mapping(geom),
                      "properties": {"height": b.top_m, "min_height": b.bottom_m, "height_source": b.height_source,
                                     "material": b.material, "repaired": b.repaired}})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}), encoding="utf-8")
