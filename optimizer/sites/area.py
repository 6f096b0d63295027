"""Which part of a map a site takes: a latitude/longitude box (`--bbox S,W,N,E`), a circle (`--center LAT,LON
--radius M`) or, with neither, every building in the file. A building belongs to the site when a point inside
its footprint (shapely's `representative_point`) lies in the area: buildings are never cut at the edge (a cut
would be a wall that does not exist).

Limits (bad input beyond them, nothing written): an area of at most MAX_AREA_KM2 and at most MAX_BUILDINGS
buildings: a site is a neighbourhood for a ray tracer, not a city.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from optimizer.errors import ConfigError
from optimizer.sites.projection import LocalFrame, check_lat_lon

MAX_AREA_KM2 = 25.0  # [km^2] e.g. 5 km x 5 km
MAX_BUILDINGS = 20_000


def _numbers(text: str, n: int, flag: str, form: str) -> list[float]:
    parts = str(text).split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != n or not all(math.isfinite(v) for v in values):
        raise ConfigError(f"{flag}: expected {form} ({n} finite numbers separated by commas), got {text!r}")
    return values


@dataclass(frozen=True)
class Area:
    """bbox (S, W, N, E) [deg], or a circle: center (lat, lon) [deg] and radius [m]; `kind` says which."""

    kind: str  # "bbox" | "circle"
    bbox_deg: tuple[float, float, float, float] | None = None
    center_deg: tuple[float, float] | None = None
    radius_m: float | None = None

    @classmethod
    def from_args(cls, bbox: str | None, center: str | None, radius: str | float | None) -> Area | None:
        if bbox is not None and (center is not None or radius is not None):
            raise ConfigError("--bbox: give either --bbox S,W,N,E or --center LAT,LON --radius M, not both")
        if bbox is not None:
            s, w, n, e = _numbers(bbox, 4, "--bbox", "S,W,N,E")
            check_lat_lon(s, w, "--bbox")
            check_lat_lon(n, e, "--bbox")
            if not (s < n):
                raise ConfigError(f"--bbox: south {s} must be less than north {n} (the order is S,W,N,E)")
            if not (w < e):
                raise ConfigError(f"--bbox: west {w} must be less than east {e} (the order is S,W,N,E; a box "
                                  "across the antimeridian is not supported)")
            area = cls("bbox", bbox_deg=(s, w, n, e))
        elif center is not None or radius is not None:
            if center is None or radius is None:
                raise ConfigError("--center: --center LAT,LON and --radius M go together")
            lat, lon = check_lat_lon(*_numbers(center, 2, "--center", "LAT,LON"), "--center")
            (r,) = _numbers(str(radius), 1, "--radius", "M")
            if not r > 0:
                raise ConfigError(f"--radius: must be > 0 m, got {radius}")
            area = cls("circle", center_deg=(lat, lon), radius_m=r)
        else:
            return None
        area.check_size()
        return area

    def origin_deg(self) -> tuple[float, float]:
        """The site's origin: the box's centre (in degrees) or the circle's centre."""
        if self.kind == "circle":
            return self.center_deg
        s, w, n, e = self.bbox_deg
        return 0.5 * (s + n), 0.5 * (w + e)

    def area_km2(self) -> float:
        if self.kind == "circle":
            return math.pi * self.radius_m**2 / 1e6
        s, w, n, e = self.bbox_deg
        frame = LocalFrame.at(*self.origin_deg())
        xs, ys = frame.to_scene([s, s, n, n], [w, e, e, w])
        # the shoelace formula on the projected corners (UTM's scale error is < 0.1 %)
        return 0.5 * abs(sum(xs[i] * ys[(i + 1) % 4] - xs[(i + 1) % 4] * ys[i] for i in range(4))) / 1e6

    def check_size(self) -> None:
        km2 = self.area_km2()
        if km2 > MAX_AREA_KM2:
            flag = "--radius" if self.kind == "circle" else "--bbox"
            raise ConfigError(f"{flag}: the area is {km2:.1f} km^2, over the limit of {MAX_AREA_KM2:g} km^2; "
                              "import a smaller neighbourhood")

    def contains(self, frame: LocalFrame, lat_deg: float, lon_deg: float) -> bool:
        if self.kind == "circle":
            x, y = frame.to_scene(lat_deg, lon_deg)
            cx, cy = frame.to_scene(*self.center_deg)
            return math.hypot(float(x - cx), float(y - cy)) <= self.radius_m
        s, w, n, e = self.bbox_deg
        return s <= lat_deg <= n and w <= lon_deg <= e

    def flag(self) -> str:
        return "--radius" if self.kind == "circle" else "--bbox"

    def record(self) -> dict:
        if self.kind == "circle":
            return {"kind": "circle", "center_lat_deg": self.center_deg[0], "center_lon_deg": self.center_deg[1],
                    "radius_m": self.radius_m}
        s, w, n, e = self.bbox_deg
        return {"kind": "bbox", "south_deg": s, "west_deg": w, "north_deg": n, "east_deg": e}
