"""`reflectopt scene import`: a map file -> a scene bundle (scene.xml, meshes/, footprints.geojson, site.json).

Everything is read and checked before anything is written; the bundle is assembled in a temporary folder
beside `--out` and moved into place at the end, so bad input leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from optimizer.errors import ConfigError
from optimizer.sites import geojson, osm, tags
from optimizer.sites.area import MAX_BUILDINGS, Area
from optimizer.sites.footprints import Building, drop_duplicates, scene_polygons
from optimizer.sites.meshes import ground_rectangle, write_scene
from optimizer.sites.projection import LocalFrame
from optimizer.sites.record import OSM_ATTRIBUTION, OSM_LICENSE, building_record, wall_record, write_site
from optimizer.sites.walls import exposed_walls

FOOTPRINTS_FILE = "footprints.geojson"
# ground materials offered (Sionna's ITU tables): the three grounds are defined for 1-10 GHz; above that,
# a paved ground (asphalt_concrete: 1-40 GHz, concrete: 1-100 GHz)
GROUND_MATERIALS = ("medium_dry_ground", "very_dry_ground", "wet_ground", "asphalt_concrete", "concrete")
MAX_LEVEL_HEIGHT_M = 20.0
MAX_HEIGHT_M = 1000.0


def _positive(value, flag: str, upper: float) -> float:
    v = float(value)
    if not (math.isfinite(v) and 0 < v <= upper):
        raise ConfigError(f"{flag}: must be a number in (0, {upper:g}] m, got {value}")
    return v


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read(path: Path):
    """(footprints, unassembled, kind, attribution, license)."""
    if not path.is_file():
        raise ConfigError(f"FILE: {path}: no such file")
    if path.stat().st_size == 0:
        raise ConfigError(f"FILE: {path} is empty")
    if osm.is_osm(path):
        footprints, unassembled = osm.read_osm(path)
        return footprints, unassembled, "osm", OSM_ATTRIBUTION, OSM_LICENSE
    if geojson.is_geojson(path):
        footprints, attribution = geojson.read_geojson(path)
        return footprints, [], "geojson", attribution, None
    raise ConfigError(f"FILE: {path}: unknown format; expected .osm.pbf, .osm or .geojson")


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out: {out} exists and is not an empty folder; choose a new folder")


def import_site(file, out, bbox: str | None = None, center: str | None = None, radius=None,
                level_height_m: float = tags.LEVEL_HEIGHT_M, default_height_m: float = tags.DEFAULT_HEIGHT_M,
                ground_material: str = tags.GROUND_MATERIAL) -> dict:
    """Import the buildings of `file` inside the area into a new scene bundle `out`; returns site.json."""
    path, out = Path(file), Path(out)
    area = Area.from_args(bbox, center, radius)
    level_height_m = _positive(level_height_m, "--level-height", MAX_LEVEL_HEIGHT_M)
    default_height_m = _positive(default_height_m, "--default-height", MAX_HEIGHT_M)
    if ground_material not in GROUND_MATERIALS:
        raise ConfigError(f"--ground: {ground_material!r} is not one of {', '.join(GROUND_MATERIALS)}")
    _check_out(out)
    footprints, unassembled, kind, attribution, license_ = _read(path)
    if not footprints:
        raise ConfigError(f"FILE: {path} has no buildings (no polygon tagged building)")
    w, s, e, n = _bounds([fp.geometry for fp in footprints])
    if not (-90 <= s <= n <= 90 and -180 <= w <= e <= 180):
        raise ConfigError(f"FILE: {path}: coordinates out of range (latitude {s}..{n}, longitude {w}..{e}); "
                          "GeoJSON is longitude, latitude in degrees (RFC 7946)")
    flag = area.flag() if area else "FILE"
    if area is None:  # the whole file, within the same limit
        Area("bbox", bbox_deg=(s, w, n, e)).check_size()
    frame = LocalFrame.at(*(area.origin_deg() if area else (0.5 * (s + n), 0.5 * (w + e))))
    chosen = []
    for fp in footprints:
        p = fp.geometry.representative_point()
        if area is None or area.contains(frame, p.y, p.x):
            chosen.append(fp)
    if not chosen:
        raise ConfigError(f"{flag}: no buildings in the area (the file's buildings span latitude {s:.6f}.."
                          f"{n:.6f}, longitude {w:.6f}..{e:.6f})")
    if len(chosen) > MAX_BUILDINGS:
        raise ConfigError(f"{flag}: {len(chosen)} buildings in the area, over the limit of {MAX_BUILDINGS}; "
                          "import a smaller neighbourhood")
    skipped = Counter(invalid=0, unassembled=0, bad_heights=0, duplicate=0)
    skipped["unassembled"] = sum(1 for _, lat, lon in unassembled if area is None or area.contains(frame, lat, lon))
    buildings = []
    for fp in chosen:
        polygons, repaired = scene_polygons(fp.geometry, frame)
        if polygons is None:
            skipped["invalid"] += 1
            continue
        h = tags.heights(fp.tags, level_height_m, default_height_m)
        if not (h.top_m > h.bottom_m):
            skipped["bad_heights"] += 1
            continue
        name = fp.tags.get("name")
        buildings.append(Building(fp.id, fp.osm_type, fp.osm_id, polygons, h.bottom_m, h.top_m, h.source,
                                  tags.material(fp.tags), repaired, str(name) if name else None))
    buildings, skipped["duplicate"] = drop_duplicates(buildings)
    if not buildings:
        raise ConfigError(f"{flag}: no valid buildings in the area ({dict(skipped)} skipped)")
    shared = exposed_walls(buildings)
    xs = [v for b in buildings for p in b.polygons for v in (p.bounds[0], p.bounds[2])]
    ys = [v for b in buildings for p in b.polygons for v in (p.bounds[1], p.bounds[3])]
    extent = (min(xs), min(ys), max(xs), max(ys))
    site = {
        "source": {"file": path.name, "kind": kind, "sha256": _sha256(path)},
        "attribution": attribution, "license": license_,
        "frame": frame.record(),
        "area": area.record() if area else None,
        "options": {"level_height_m": level_height_m, "default_height_m": default_height_m,
                    "ground_material": ground_material},
        "counts": {"buildings": len(buildings),
                   "height_source": {k: sum(b.height_source == k for b in buildings)
                                     for k in ("height", "levels", "default")},
                   "material": dict(sorted(Counter(b.material for b in buildings).items())),
                   "repaired": sum(b.repaired for b in buildings), "skipped": dict(skipped),
                   "shared_wall_edges": shared, "walls": sum(len(b.walls) for b in buildings)},
        "extent_m": [round(v, 3) for v in extent],
        "ground_m": [round(v, 3) for v in ground_rectangle(extent)],
        "buildings": [building_record(b) for b in buildings],
        "walls": [wall_record(w) for b in buildings for w in b.walls],
    }
    _write(out, buildings, frame, site, extent, ground_material, path)
    return site


def _bounds(geoms) -> tuple[float, float, float, float]:
    import shapely

    return tuple(float(v) for v in shapely.total_bounds(geoms))


def _write(out: Path, buildings, frame, site, extent, ground_material, path) -> None:
    from optimizer.constants import SITE_FILE

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        note = (f"reflectopt scene import of {path.name}: {len(buildings)} buildings, EPSG:{frame.epsg}, origin "
                f"{frame.origin_lat_deg:.7f}, {frame.origin_lon_deg:.7f}"
                + (f"; {site['attribution']}" if site["attribution"] else ""))
        write_scene(tmp, buildings, extent, ground_material, note)
        geojson.write_footprints(tmp / FOOTPRINTS_FILE, buildings, frame)
        write_site(tmp / SITE_FILE, site)
        os.chmod(tmp, 0o755)
        if out.exists():
            out.rmdir()  # empty (checked before)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
