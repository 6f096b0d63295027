"""The facade listing behind `reflectopt scene walls DIR [--near LAT,LON | --near Xm,Ym] [--json]`.

Each facade (an exposed wall piece, `optimizer.sites.walls`) with its building, length, height range,
outward normal as a true bearing (degrees clockwise from north, on the ellipsoid) and its end points in
scene metres and in latitude/longitude. `--near` sorts by the horizontal distance from a point to the
facade and adds that distance; the point is latitude,longitude in degrees, or scene metres written with
a unit (`--near 120m,-35.5m`).
"""

from __future__ import annotations

import math

from optimizer.errors import ConfigError
from optimizer.sites.projection import LocalFrame, check_lat_lon
from optimizer.sites.record import read_site, wall_of


def parse_near(text: str, frame: LocalFrame) -> tuple[float, float]:
    """Scene (x, y) of `--near`: LAT,LON [deg] or Xm,Ym [m]."""
    parts = [p.strip() for p in str(text).split(",")]
    metres = len(parts) == 2 and all(p.lower().endswith("m") for p in parts)
    try:
        a, b = (float(p[:-1] if metres else p) for p in parts)
    except ValueError:
        a = b = math.nan
    if len(parts) != 2 or not (math.isfinite(a) and math.isfinite(b)):
        raise ConfigError(f"--near: expected LAT,LON (degrees) or Xm,Ym (scene metres, e.g. 120m,-35m), "
                          f"got {text!r}")
    if metres:
        return a, b
    lat, lon = check_lat_lon(a, b, "--near")
    x, y = frame.to_scene(lat, lon)
    return float(x), float(y)


def _distance(px, py, w) -> float:
    dx, dy = w.x1 - w.x0, w.y1 - w.y0
    t = max(0.0, min(1.0, ((px - w.x0) * dx + (py - w.y0) * dy) / max(dx * dx + dy * dy, 1e-12)))
    return math.hypot(w.x0 + t * dx - px, w.y0 + t * dy - py)


def facades(folder, near: str | None = None, limit: int | None = None) -> list[dict]:
    site = read_site(folder)
    frame = LocalFrame.from_record(site["frame"])
    walls = [wall_of(r) for r in site["walls"]]
    point = parse_near(near, frame) if near is not None else None
    if point is not None:
        walls.sort(key=lambda w: _distance(*point, w))
    if limit is not None:
        walls = walls[:limit]
    rows = []
    for w in walls:
        (lat0, lat1), (lon0, lon1) = frame.to_geo([w.x0, w.x1], [w.y0, w.y1])
        nx, ny = w.normal
        row = {"id": w.id, "building_id": w.building_id, "length_m": round(w.length_m, 3),
               "z0_m": w.z0, "z1_m": w.z1,
               "normal_bearing_deg": round(frame.bearing_deg(0.5 * (w.x0 + w.x1), 0.5 * (w.y0 + w.y1), nx, ny), 2),
               "start": {"x_m": w.x0, "y_m": w.y0, "lat_deg": round(float(lat0), 8), "lon_deg": round(float(lon0), 8)},
               "end": {"x_m": w.x1, "y_m": w.y1, "lat_deg": round(float(lat1), 8), "lon_deg": round(float(lon1), 8)}}
        if point is not None:
            row["distance_m"] = round(_distance(*point, w), 3)
        rows.append(row)
    return rows
