"""The radio maps of a run on a scene imported from a map as a GeoTIFF: `heatmaps/radio_maps.tif`.

One float32 band per map (baseline_dbm, and where there is a winner winner_dbm and gain_db; each band's
description says which), in the site's projected CRS (site.json's EPSG: the UTM zone the scene was built
in), georeferenced by the affine transform of the map's cell grid: the scene's (x, y) is (easting, northing)
less the frame's origin (`LocalFrame`), so a cell's centre at scene (x, y) lies at (x + origin easting,
y + origin northing). Rows run north to south as GIS tools expect. A cell no path reaches holds
NO_PATH_FLOOR_DBM (as in radio_maps.npz); tags carry the map's height, the cell size and the map data's credit.

Written with rasterio (GDAL), only where it is importable: without it there is no .tif and the report says
so once (`write_radio_maps_geotiff` raises, the report's step turns that into one warning line).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optimizer.constants import NO_PATH_FLOOR_DBM, RADIO_MAPS_GEOTIFF

BANDS = ("baseline_dbm", "winner_dbm", "gain_db")  # in this order, those the maps have
CELL_TOL_M = 1e-3  # [m] the cell centres must lie this near an even grid at the map's cell size (Sionna gives
# them in float32: about 1e-5 m of rounding on a map 100 m from the origin)


def grid_transform(x, y, cell_m: float, origin_en_m: tuple[float, float]):
    """(rasterio Affine of the north-up grid, whether the rows must be flipped) for cell centres x [nx] and
    y [ny] [m, scene] at `cell_m` spacing; `origin_en_m`: the scene origin's (easting, northing) [m]."""
    from affine import Affine  # rasterio's transform type

    def first(c, name):  # the first centre of the even grid nearest the centres c (float32 noise averaged)
        c = np.sort(np.asarray(c, float))
        start = float(np.mean(c - cell_m * np.arange(c.size)))
        if np.abs(c - (start + cell_m * np.arange(c.size))).max() > CELL_TOL_M:
            raise ValueError(f"radio map cell centres along {name} are not {cell_m:g} m apart")
        return start, start + cell_m * (c.size - 1)

    (x0, _), (_, y1) = first(x, "x"), first(y, "y")
    flip = np.size(y) > 1 and y[-1] > y[0]  # rows from south to north: the GeoTIFF's first row is the north one
    west = origin_en_m[0] + x0 - 0.5 * cell_m
    north = origin_en_m[1] + y1 + 0.5 * cell_m
    return Affine(cell_m, 0.0, west, 0.0, -cell_m, north), flip


def write_radio_maps_geotiff(heat_dir, maps: dict, site: dict) -> list[Path]:
    """Write `RADIO_MAPS_GEOTIFF` into `heat_dir` from the report's maps (x, y, cell_m, baseline_dbm, ...);
    returns [the file], or [] where there is no map. ImportError where rasterio is missing."""
    if "baseline_dbm" not in maps:
        return []
    import rasterio

    from optimizer.sites.projection import LocalFrame
    from optimizer.sites.record import credit

    frame = LocalFrame.from_record(site["frame"])
    transform, flip = grid_transform(maps["x"], maps["y"], float(maps["cell_m"]), frame.origin_en_m)
    bands = [k for k in BANDS if k in maps]
    data = np.stack([np.asarray(maps[k], np.float32) for k in bands])
    if flip:
        data = data[:, ::-1, :]
    path = Path(heat_dir) / RADIO_MAPS_GEOTIFF
    tmp = path.with_name(f".{path.name}.tmp")
    with rasterio.open(tmp, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=len(bands),
                       dtype="float32", crs=f"EPSG:{int(frame.epsg)}", transform=transform) as dst:
        dst.write(data)
        for i, k in enumerate(bands, start=1):
            dst.set_band_description(i, k)
        dst.update_tags(height_m=f"{float(maps.get('height_m', np.nan)):g}", cell_m=f"{float(maps['cell_m']):g}",
                        no_path_dbm=f"{NO_PATH_FLOOR_DBM:g}", scene_frame="scene x, y [m] = easting, northing "
                        f"- ({frame.origin_en_m[0]:.3f}, {frame.origin_en_m[1]:.3f})", credit=credit(site) or "")
    tmp.replace(path)
    return [path]
