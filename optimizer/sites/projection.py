"""The site's local metric frame: the UTM zone of the site's origin (pyproj), shifted so the origin is (0, 0).

Scene coordinates are metres east (x) and north (y) of the origin along the UTM grid, z up from the ground.
UTM northings are ~6.7e6 m: they are subtracted in float64 before anything is stored as float32 (a float32
northing rounds to 0.5 m). Grid north differs from true north by the meridian convergence (about 1 deg at
the edge of a zone): bearings are therefore measured on the ellipsoid (`bearing_deg`), not from the grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from optimizer.errors import ConfigError

WGS84_EPSG = 4326


def check_lat_lon(lat_deg: float, lon_deg: float, what: str) -> tuple[float, float]:
    """Finite, latitude within +-90, longitude within +-180; else a ConfigError naming `what`."""
    lat, lon = float(lat_deg), float(lon_deg)
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise ConfigError(f"{what}: latitude {lat_deg} is out of range (-90..90 degrees)")
    if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise ConfigError(f"{what}: longitude {lon_deg} is out of range (-180..180 degrees)")
    return lat, lon


def utm_epsg(lat_deg: float, lon_deg: float) -> int:
    """The EPSG code of the WGS 84 UTM zone that holds the point (pyproj's database: the standard 6-degree
    zones; the Norway and Svalbard exceptions of the military grid are not applied, which costs nothing
    inside a site)."""
    from pyproj.aoi import AreaOfInterest
    from pyproj.database import query_utm_crs_info

    found = query_utm_crs_info(datum_name="WGS 84",
                               area_of_interest=AreaOfInterest(lon_deg, lat_deg, lon_deg, lat_deg))
    if not found:  # the poles (UPS): no UTM zone
        raise ConfigError(f"latitude {lat_deg}: no UTM zone covers it (UTM spans 80 S .. 84 N)")
    return int(found[0].code)


@dataclass(frozen=True)
class LocalFrame:
    """UTM zone `epsg` with its origin at (origin_lat_deg, origin_lon_deg) = scene (0, 0)."""

    epsg: int
    origin_lat_deg: float
    origin_lon_deg: float

    @classmethod
    def at(cls, lat_deg: float, lon_deg: float) -> LocalFrame:
        lat, lon = check_lat_lon(lat_deg, lon_deg, "origin")
        return cls(utm_epsg(lat, lon), lat, lon)

    @cached_property
    def _forward(self):
        from pyproj import Transformer

        return Transformer.from_crs(WGS84_EPSG, self.epsg, always_xy=True)

    @cached_property
    def _inverse(self):
        from pyproj import Transformer

        return Transformer.from_crs(self.epsg, WGS84_EPSG, always_xy=True)

    @cached_property
    def _proj(self):
        from pyproj import Proj

        return Proj(f"EPSG:{self.epsg}")

    @cached_property
    def _geod(self):
        from pyproj import Geod

        return Geod(ellps="WGS84")

    @cached_property
    def origin_en_m(self) -> tuple[float, float]:
        e, n = self._forward.transform(self.origin_lon_deg, self.origin_lat_deg)
        return float(e), float(n)

    def to_scene(self, lat_deg, lon_deg) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) [m] of geographic points (float64)."""
        e, n = self._forward.transform(np.asarray(lon_deg, float), np.asarray(lat_deg, float))
        e0, n0 = self.origin_en_m
        return np.asarray(e, float) - e0, np.asarray(n, float) - n0

    def to_geo(self, x_m, y_m) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lon) [deg] of scene points."""
        e0, n0 = self.origin_en_m
        lon, lat = self._inverse.transform(np.asarray(x_m, float) + e0, np.asarray(y_m, float) + n0)
        return np.asarray(lat, float), np.asarray(lon, float)

    def lonlat_to_scene_xy(self, coords) -> np.ndarray:
        """An (n, 2) array of (lon, lat) -> (n, 2) of (x, y): shapely.transform's callback."""
        c = np.asarray(coords, float)
        x, y = self.to_scene(c[:, 1], c[:, 0])
        return np.column_stack([x, y])

    def scene_to_lonlat(self, coords) -> np.ndarray:
        """An (n, 2) or (n, 3) array of scene (x, y[, z]) -> (lon, lat[, z]): the inverse callback (z, the
        height above the flat ground, is kept)."""
        c = np.array(coords, float)
        lat, lon = self.to_geo(c[:, 0], c[:, 1])
        c[:, 0], c[:, 1] = lon, lat
        return c

    def bearing_deg(self, x_m: float, y_m: float, dx: float, dy: float) -> float:
        """True bearing [deg, 0 = north, clockwise] of the scene direction (dx, dy) at scene point (x, y),
        measured on the WGS 84 ellipsoid between the point and a point 1 m along the direction."""
        norm = math.hypot(dx, dy)
        (lat0, lat1), (lon0, lon1) = self.to_geo([x_m, x_m + dx / norm], [y_m, y_m + dy / norm])
        az, _, _ = self._geod.inv(lon0, lat0, lon1, lat1)
        return float(az % 360.0)

    def north_yaw_deg(self, x_m: float, y_m: float) -> float:
        """The yaw [deg] of a plate whose normal points to true (geographic) north at scene point (x, y): the
        UTM grid convergence there (pyproj `get_factors().meridian_convergence`, the true bearing of grid
        north, counted counter-clockwise like a yaw; about -1.8 deg in Helsinki, west of zone 35's meridian)."""
        (lat,), (lon,) = self.to_geo([x_m], [y_m])
        return float(self._proj.get_factors(float(lon), float(lat)).meridian_convergence)

    def record(self) -> dict:
        e0, n0 = self.origin_en_m
        return {"epsg": self.epsg, "origin_lat_deg": self.origin_lat_deg, "origin_lon_deg": self.origin_lon_deg,
                "origin_easting_m": e0, "origin_northing_m": n0}

    @classmethod
    def from_record(cls, rec: dict) -> LocalFrame:
        return cls(int(rec["epsg"]), float(rec["origin_lat_deg"]), float(rec["origin_lon_deg"]))
