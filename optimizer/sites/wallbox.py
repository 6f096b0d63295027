"""A plate's mounting box given by wall: where the scene has a site.json, a reflector's `bounds` may be

    bounds: {wall: "way/123#4", along_m: [a, b], height_m: [lo, hi], standoff_m: s}

(a wall id as `reflectopt scene walls` lists it; metres along the wall from its start point, heights of the
plate centre above the ground, and the distance of the plate centre in front of the wall face). It becomes
the `{min, max}` box it stands for when the file is loaded, before validation, like the geo-referenced
positions (`optimizer.sites.positions`), so everything downstream sees the box it always did; the wall's id
is kept as the plate's `mounted_on_wall`, so its tolerance box and `winner.mount` are in that wall's frame
(`optimizer.physics.wall`). A `{min, max}` box may name its wall the same way (`mounted_on_wall`, checked
against site.json). A plate
whose `yaw_deg` is not given gets the half-space in front of the wall: yaws within 90 degrees either side
of the plate lying flat on the wall facing out (the middle of the range).

On a wall parallel to x or y the box is the axis-aligned `{min, max}` a person would write. On any other
wall the axis-aligned box of the stretch would also hold points nearer to and farther from the wall than
`s` (up to (b - a) |sin 2θ| / 2 off the stretch for a wall at θ to the x axis), so the box is kept in the
wall's frame (`bounds.frame`, `optimizer.experiment.box`: along a..b, off s..s, from the wall's start
point), with `min`/`max` its plan extent; the search moves in that frame (`optimizer.search.space`), so
every pose it tries is on the stretch at the stand-off.

Bad input (ConfigError, exit 2, one line each naming the key): the wall form (or `mounted_on_wall`) on a
scene without site.json; an unknown wall id (also in `mounted_on_wall`, or one that is not the bounds' wall); `along_m` outside the wall; `height_m` outside the wall's height range; a stand-off
that is not above 0; keys missing or unknown; a number that is not finite.
"""

from __future__ import annotations

import math

from optimizer.errors import ConfigError
from optimizer.sites.positions import number, site_of
from optimizer.sites.walls import Wall

KEYS = ("wall", "along_m", "height_m", "standoff_m")
FORM = "a mounting box given by wall ({wall, along_m, height_m, standoff_m})", "{min: [x, y, z], max: [x, y, z]}"
NAMED_FORM = "a wall named by mounted_on_wall", "no mounted_on_wall (the wall is then found in the scene mesh)"
ON_WALL_TOL_M = 1e-3  # [m] along_m / height_m may pass the wall's ends by this much (site.json rounds to 1 mm)
DIGITS = 6  # the box's coordinates are rounded to 1 um (float noise of the arithmetic off)
ANGLE_DIGITS = 9  # the frame's direction [deg] (1e-9 deg moves a point 70 m along by 1e-9 m)


def _plates(data: dict):
    """(key path, plate mapping) of every plate whose bounds are a wall form or that names its wall."""
    plates = []
    if isinstance(data.get("reflector"), dict):
        plates.append(("reflector", data["reflector"]))
    if isinstance(data.get("reflectors"), list):
        plates += [(f"reflectors[{i}]", r) for i, r in enumerate(data["reflectors"]) if isinstance(r, dict)]
    for path, plate in plates:
        b = plate.get("bounds")
        if (isinstance(b, dict) and any(k in b for k in KEYS)) or plate.get("mounted_on_wall") is not None:
            yield path, plate


def _is_wall_form(bounds) -> bool:
    return isinstance(bounds, dict) and any(k in bounds for k in KEYS)


def _pair(value, where: str, key: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"{where}.{key}: {value!r} is not a pair [from, to] in metres")
    lo, hi = (number(v, f"{where}.{key}", key) for v in value)
    if lo > hi:
        raise ConfigError(f"{where}.{key}: {lo:g} is above {hi:g}; swap them")
    return lo, hi


def yaw_facing_deg(nx: float, ny: float) -> float:
    """The plate yaw [deg, (-180, 180]] whose normal is the scene direction (nx, ny): at yaw 0 the normal is
    +y and yaw turns it counter-clockwise (`optimizer.physics.geometry.plate_frame`)."""
    yaw = math.degrees(math.atan2(-nx, ny))
    return 180.0 if yaw <= -180.0 else yaw


def wall_box(wall: Wall, along_m: tuple[float, float], height_m: tuple[float, float],
             standoff_m: float) -> tuple[dict, dict]:
    """(the bounds of the plate centre [m], {min, max} of the yaw [deg] in front of the wall): the wall's
    stretch `along_m` from its start, `standoff_m` in front of its face; `{min, max}` where that is exact
    (a wall parallel to x or y, or a stretch of no length), else also its `frame` (see the module)."""
    length = wall.length_m
    ux, uy = (wall.x1 - wall.x0) / length, (wall.y1 - wall.y0) / length
    nx, ny = wall.normal
    ends = [(wall.x0 + t * ux + standoff_m * nx, wall.y0 + t * uy + standoff_m * ny) for t in along_m]
    lo = [round(min(p[k] for p in ends), DIGITS) for k in (0, 1)] + [height_m[0]]
    hi = [round(max(p[k] for p in ends), DIGITS) for k in (0, 1)] + [height_m[1]]
    mid = round(yaw_facing_deg(nx, ny), DIGITS)
    bounds = {"min": lo, "max": hi}
    if (along_m[1] - along_m[0]) * abs(ux * uy) > 0.5 * 10.0 ** -DIGITS:  # the axis-aligned box is not exact
        bounds["frame"] = {"origin_m": [wall.x0, wall.y0],
                           "along_deg": round(math.degrees(math.atan2(uy, ux)), ANGLE_DIGITS),
                           "along_m": [along_m[0], along_m[1]], "off_m": [standoff_m, standoff_m]}
    return bounds, {"min": round(mid - 90.0, DIGITS), "max": round(mid + 90.0, DIGITS)}


def resolve_wall_bounds(data, source: str, scene: str | None) -> None:
    """Replace every wall-given `bounds` of the raw experiment `data` (in place) by {min, max}, and give a
    plate without `yaw_deg` the half-space in front of its wall; `scene` as resolved (see positions)."""
    if not isinstance(data, dict):
        return
    site, walls = None, None
    for path, plate in _plates(data):
        where = f"{source}: {path}.bounds"
        b = plate.get("bounds")
        named = plate.get("mounted_on_wall")
        if site is None:
            site = site_of(scene, data.get("scene_sha256"), where if _is_wall_form(b) else
                           f"{source}: {path}.mounted_on_wall", FORM if _is_wall_form(b) else NAMED_FORM)
            from optimizer.sites.record import wall_of

            walls = {r["id"]: wall_of(r) for r in site["walls"]}
        if not _is_wall_form(b):  # a {min, max} box beside the wall it is on
            if str(named) not in walls:
                raise ConfigError(f"{source}: {path}.mounted_on_wall: {named!r} is not a wall of the scene's "
                                  f"site.json; list them with `reflectopt scene walls {scene} --near LAT,LON`")
            continue
        if sorted(map(str, b)) != sorted(KEYS):
            raise ConfigError(f"{where}: a mounting box given by wall has exactly the keys {', '.join(KEYS)} "
                              f"(or give min and max); got {sorted(map(str, b))}")
        wall = walls.get(str(b["wall"]))
        if wall is None:
            raise ConfigError(f"{where}.wall: {b['wall']!r} is not a wall of the scene's site.json; list them "
                              f"with `reflectopt scene walls {scene} --near LAT,LON`")
        along = _pair(b["along_m"], where, "along_m")
        if along[0] < -ON_WALL_TOL_M or along[1] > wall.length_m + ON_WALL_TOL_M:
            raise ConfigError(f"{where}.along_m: [{along[0]:g}, {along[1]:g}] lies outside the wall {wall.id!r}, "
                              f"which is {wall.length_m:.3f} m long (metres from its start point); give values "
                              f"within 0..{wall.length_m:.3f}")
        along = (max(0.0, along[0]), min(wall.length_m, along[1]))
        height = _pair(b["height_m"], where, "height_m")
        if height[0] < wall.z0 - ON_WALL_TOL_M or height[1] > wall.z1 + ON_WALL_TOL_M:
            raise ConfigError(f"{where}.height_m: [{height[0]:g}, {height[1]:g}] lies outside the wall "
                              f"{wall.id!r}, which spans {wall.z0:g}..{wall.z1:g} m above the ground")
        standoff = number(b["standoff_m"], f"{where}.standoff_m", "standoff_m")
        if standoff <= 0:
            raise ConfigError(f"{where}.standoff_m: {standoff:g} puts the plate centre in the wall; give the "
                              "distance in front of its face in metres (> 0)")
        if named is not None and str(named) != wall.id:
            raise ConfigError(f"{source}: {path}.mounted_on_wall: {named!r} is not the wall of its bounds "
                              f"({wall.id!r}); leave mounted_on_wall out")
        box, yaws = wall_box(wall, along, height, standoff)
        plate["bounds"] = box
        plate["mounted_on_wall"] = wall.id  # kept: the tolerance box and winner.mount take this wall's frame
        plate.setdefault("yaw_deg", yaws)
