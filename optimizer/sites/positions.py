"""Geo-referenced positions in an experiment: where the scene was imported from a map (it has site.json), a
transmitter's `position` or a target point may be given as `{lat, lon, height_m}` (degrees, and metres
above the ground) instead of scene [x, y, z]. They are turned into scene coordinates with the site's frame
when the file is loaded, before validation, so everything downstream sees metres.

Bad input (ConfigError, exit 2, one line each naming the key): such a position on a scene without
site.json (a built-in scene, a hand-made one); a position outside the site's ground; a latitude or
longitude out of range, a height below 0, an unknown key, a number that is not finite.

A transmitter's antenna may likewise be aimed by `bearing_deg` (from true north, clockwise) instead of
`azimuth_deg` (counter-clockwise from the scene's +x): it is turned into the azimuth at the transmitter's own
position with the projection's grid convergence there (`LocalFrame.north_yaw_deg`).
"""

from __future__ import annotations

import math

from optimizer.constants import BUILTIN_SCENE_PREFIX
from optimizer.errors import ConfigError

KEYS = ("lat", "lon", "height_m")


def _geo_slots(data: dict):
    """(key path, container, index) of every position that is a mapping (a geo-referenced position)."""
    txs = data.get("transmitters")
    if isinstance(txs, list):
        for i, tx in enumerate(txs):
            if isinstance(tx, dict) and isinstance(tx.get("position"), dict):
                yield f"transmitters[{i}].position", tx, "position"
    targets = data.get("targets")
    points = targets.get("points") if isinstance(targets, dict) else None
    if isinstance(points, list):
        for j, p in enumerate(points):
            if isinstance(p, dict):
                yield f"targets.points[{j}]", points, j


def number(value, where: str, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if isinstance(value, bool) or not math.isfinite(v):
        raise ConfigError(f"{where}: {what}={value!r} must be a finite number")
    return v


GEO_POSITION = "a {lat, lon, height_m} position", "[x, y, z] in metres"  # (what needs the site, the fix)


def site_of(scene: str | None, sha256: str | None, where: str, form: tuple[str, str] = GEO_POSITION) -> dict:
    """The site.json of the experiment's scene; a ConfigError naming `where` when it has none (`form`: what
    was given that needs one, and what to give instead)."""
    from optimizer.sites.record import read_site

    what, fix = form
    problem = (f"{where}: {what} needs a scene imported from a map (`reflectopt scene import`, with site.json); "
               f"{scene} has none: give {fix}")
    if not isinstance(scene, str):
        raise ConfigError(f"{where}: {what} needs the experiment's scene")
    if scene.startswith(BUILTIN_SCENE_PREFIX):
        raise ConfigError(problem)
    from optimizer.store import assets

    folder = assets.resolve_scene(scene, sha256)
    try:
        return read_site(folder, where)
    except ConfigError:
        raise ConfigError(problem) from None


def _bearing_slots(data: dict):
    """(key path, transmitter, antenna) of every transmitter antenna aimed by `bearing_deg`."""
    txs = data.get("transmitters")
    for i, tx in enumerate(txs if isinstance(txs, list) else []):
        ant = tx.get("antenna") if isinstance(tx, dict) else None
        if isinstance(ant, dict) and "bearing_deg" in ant:
            yield f"transmitters[{i}].antenna", tx, ant


GEO_BEARING = "bearing_deg (from true north)", "azimuth_deg (counter-clockwise from the scene's +x)"


def resolve_geo_positions(data, source: str, scene: str | None) -> None:
    """Replace every {lat, lon, height_m} position of the raw experiment `data` (in place) by [x, y, z], and
    every transmitter antenna's `bearing_deg` by its `azimuth_deg`; `scene` is the experiment's scene as
    resolved (local path, archive or s3:// bundle)."""
    if not isinstance(data, dict):
        return
    slots = list(_geo_slots(data))
    bearings = list(_bearing_slots(data))
    if not slots and not bearings:
        return
    from optimizer.sites.projection import LocalFrame, check_lat_lon

    site, frame = None, None
    for path, container, key in slots:
        where = f"{source}: {path}"
        value = container[key]
        unknown = sorted(set(map(str, value)) - set(KEYS))
        if unknown or any(k not in value for k in KEYS):
            raise ConfigError(f"{where}: a geo-referenced position has exactly the keys lat, lon, height_m "
                              f"(degrees, degrees, metres above the ground); got {sorted(map(str, value))}")
        lat = number(value["lat"], where, "lat")
        lon = number(value["lon"], where, "lon")
        height = number(value["height_m"], where, "height_m")
        check_lat_lon(lat, lon, where)
        if height < 0:
            raise ConfigError(f"{where}: height_m={height:g} is below the ground; give metres above it (>= 0)")
        if site is None:
            site = site_of(scene, data.get("scene_sha256"), where)
            frame = LocalFrame.from_record(site["frame"])
        x, y = (float(v) for v in frame.to_scene(lat, lon))
        x0, y0, x1, y1 = site["ground_m"]
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            raise ConfigError(f"{where}: {lat}, {lon} lies outside the site (its ground spans x {x0:g}..{x1:g} m, "
                              f"y {y0:g}..{y1:g} m around {site['frame']['origin_lat_deg']:.6f}, "
                              f"{site['frame']['origin_lon_deg']:.6f}); give a point on the site")
        container[key] = [x, y, height]  # flat ground at z = 0: height above the ground is z
    for path, tx, ant in bearings:
        where = f"{source}: {path}.bearing_deg"
        bearing = number(ant["bearing_deg"], where, "bearing_deg")
        if "azimuth_deg" in ant or "look_at" in ant:
            raise ConfigError(f"{where}: given together with azimuth_deg/look_at; keep one")
        if site is None:
            site = site_of(scene, data.get("scene_sha256"), where, GEO_BEARING)
            frame = LocalFrame.from_record(site["frame"])
        pos = tx.get("position")
        if not (isinstance(pos, list) and len(pos) == 3):
            continue  # the position's own check names it
        x, y = number(pos[0], where, "position x"), number(pos[1], where, "position y")
        azimuth = (90.0 + frame.north_yaw_deg(x, y) - bearing + 180.0) % 360.0 - 180.0  # north is +y turned
        del ant["bearing_deg"]
        ant["azimuth_deg"] = azimuth
