"""site.json: what a scene bundle imported from a map records about where it is and where it came from.

    format, version           "reflectopt-site", 1
    source                    the input file's name, kind (osm | geojson) and sha256
    attribution, license      "© OpenStreetMap contributors", "ODbL-1.0" for OSM data (GeoJSON: its own
                              `attribution` member, if any)
    frame                     epsg (the UTM zone), origin_lat_deg, origin_lon_deg, origin_easting_m,
                              origin_northing_m: scene (x, y) = (easting, northing) - origin
    area                      the --bbox or --center/--radius asked for (null: the whole file)
    options                   level_height_m, default_height_m, ground_material
    counts                    buildings; by height_source (height, levels, default); by material;
                              repaired; skipped (invalid, unassembled, bad_heights, duplicate); shared_wall_edges; walls
    extent_m                  [xmin, ymin, xmax, ymax] of the buildings
    ground_m                  [xmin, ymin, xmax, ymax] of the ground (the site: geo-referenced positions
                              must lie on it)
    buildings                 id, osm_type, osm_id, name, height_m, min_height_m, height_source, material,
                              area_m2, holes, repaired
    walls                     id, building_id, x0_m, y0_m, x1_m, y1_m, z0_m, z1_m (outward normal on the
                              right of (x0, y0) -> (x1, y1))
"""

from __future__ import annotations

import json
from pathlib import Path

from optimizer.constants import SITE_FILE
from optimizer.errors import ConfigError
from optimizer.sites.walls import Wall

FORMAT = "reflectopt-site"
VERSION = 1
OSM_ATTRIBUTION = "© OpenStreetMap contributors"
OSM_LICENSE = "ODbL-1.0"


def _r(v: float, nd: int = 3) -> float:
    return round(float(v), nd)


def building_record(b) -> dict:
    return {"id": b.id, "osm_type": b.osm_type, "osm_id": b.osm_id, "name": b.name, "height_m": _r(b.top_m),
            "min_height_m": _r(b.bottom_m), "height_source": b.height_source, "material": b.material,
            "area_m2": _r(b.area_m2, 1), "holes": sum(len(p.interiors) for p in b.polygons),
            "repaired": b.repaired}


def wall_record(w: Wall) -> dict:
    return {"id": w.id, "building_id": w.building_id, "x0_m": _r(w.x0), "y0_m": _r(w.y0), "x1_m": _r(w.x1),
            "y1_m": _r(w.y1), "z0_m": _r(w.z0), "z1_m": _r(w.z1)}


def wall_of(rec: dict) -> Wall:
    return Wall(rec["id"], rec["building_id"], rec["x0_m"], rec["y0_m"], rec["x1_m"], rec["y1_m"], rec["z0_m"],
                rec["z1_m"])


def credit(site: dict | None) -> str | None:
    """The line that credits the map data of a site (ODbL asks for it where the data came from OSM), e.g.
    "Map data © OpenStreetMap contributors (ODbL-1.0)"; None without a site or an attribution."""
    if not site or not site.get("attribution"):
        return None
    return f"Map data {site['attribution']}" + (f" ({site['license']})" if site.get("license") else "")


def write_site(path: Path, site: dict) -> None:
    path.write_text(json.dumps({"format": FORMAT, "version": VERSION, **site}, indent=1, ensure_ascii=False)
                    + "\n", encoding="utf-8")


def read_site(folder, what: str = "DIR") -> dict:
    """The site.json of a scene folder; a ConfigError naming `what` when there is none or it is not one."""
    path = Path(folder) / SITE_FILE
    if not path.is_file():
        raise ConfigError(f"{what}: {folder} has no {SITE_FILE} (not a scene imported with `reflectopt scene "
                          "import`)")
    try:
        site = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{what}: {path} is not valid JSON ({err})") from None
    if not isinstance(site, dict) or site.get("format") != FORMAT or site.get("version") != VERSION:
        raise ConfigError(f"{what}: {path} is not a {FORMAT} version {VERSION} record")
    return site
