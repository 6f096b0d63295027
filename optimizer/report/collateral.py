"""Collateral loss: the cells a plate takes coverage from (its shadow, the energy it sends elsewhere).

From the report's two radio maps (same seed and cells; baseline without the plate, winner with it): a cell
outside buildings is collateral when it is covered without the plate (>= threshold), falls below the
threshold with it, and loses more than `margin_db` (COLLATERAL_MARGIN_DB: the maps are Monte Carlo, a
smaller drop is within their sampling noise). Pure numpy: nothing here ray-traces.
"""

from __future__ import annotations

import numpy as np

from optimizer.constants import COLLATERAL_MARGIN_DB, HEATMAPS_DIR, NO_PATH_FLOOR_DBM, PNG_COLLATERAL
from optimizer.records.collateral import Collateral


def cells_in_footprints(x, y, footprints) -> np.ndarray:
    """[ny, nx] bool: cell centres (x [nx], y [ny]) inside any footprint triangle [T, 3, 2] (a building)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    inside = np.zeros((len(y), len(x)), bool)
    tris = np.asarray(footprints, float).reshape(-1, 3, 2)
    if len(tris) == 0:
        return inside
    px, py = np.meshgrid(x, y)
    lo, hi = tris.min(axis=1), tris.max(axis=1)
    for t, a, b in zip(tris, lo, hi):
        ix = (x >= a[0]) & (x <= b[0])
        iy = (y >= a[1]) & (y <= b[1])
        if not ix.any() or not iy.any():
            continue
        sub = np.ix_(iy, ix)
        qx, qy = px[sub], py[sub]
        s = []
        for k in range(3):
            (x0, y0), (x1, y1) = t[k], t[(k + 1) % 3]
            s.append((x1 - x0) * (qy - y0) - (y1 - y0) * (qx - x0))
        d0, d1, d2 = s
        hit = ((d0 >= 0) & (d1 >= 0) & (d2 >= 0)) | ((d0 <= 0) & (d1 <= 0) & (d2 <= 0))
        inside[sub] |= hit
    return inside


def collateral_mask(baseline_dbm, winner_dbm, threshold_dbm: float, *, margin_db: float = COLLATERAL_MARGIN_DB,
                    buildings=None) -> np.ndarray:
    """[ny, nx] bool: cells covered without the plate, below the threshold with it, that lose > margin_db."""
    b, w = np.asarray(baseline_dbm, float), np.asarray(winner_dbm, float)
    out = (b >= threshold_dbm) & (w < threshold_dbm) & (b - w > margin_db)
    return out & ~np.asarray(buildings, bool) if buildings is not None else out


def collateral_loss(x, y, baseline_dbm, winner_dbm, threshold_dbm: float, *, cell_m: float, height_m: float = 0.0,
                    samples_per_tx: int = 0, buildings=None,
                    margin_db: float = COLLATERAL_MARGIN_DB) -> tuple[Collateral, np.ndarray]:
    """The `summary.collateral` record and its cell mask [ny, nx] from two RSS maps [dBm] on cells x [nx],
    y [ny] (centres [m]) of `cell_m`; `buildings` [ny, nx]: cells left out (inside a building)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    b, w = np.asarray(baseline_dbm, float), np.asarray(winner_dbm, float)
    outside = ~np.asarray(buildings, bool) if buildings is not None else np.ones(b.shape, bool)
    mask = collateral_mask(b, w, threshold_dbm, margin_db=margin_db, buildings=~outside)
    covered = (b >= threshold_dbm) & outside
    any_drop = collateral_mask(b, w, threshold_dbm, margin_db=0.0, buildings=~outside)
    area = float(cell_m) ** 2
    loss = np.where(covered, b - np.maximum(w, NO_PATH_FLOOR_DBM), -np.inf)
    worst = worst_xy = None
    no_path = False
    if covered.any():
        iy, ix = np.unravel_index(int(np.argmax(loss)), loss.shape)
        worst = float(loss[iy, ix])
        worst_xy = [float(x[ix]), float(y[iy])]
        no_path = bool(w[iy, ix] <= NO_PATH_FLOOR_DBM)
    centroid = None
    if mask.any():
        iy, ix = np.nonzero(mask)
        centroid = [float(x[ix].mean()), float(y[iy].mean())]
    rec = Collateral(area_m2=float(mask.sum()) * area, cells=int(mask.sum()),
                     area_any_drop_m2=float(any_drop.sum()) * area, covered_area_m2=float(covered.sum()) * area,
                     worst_loss_db=worst, worst_no_path=no_path, worst_xy_m=worst_xy, centroid_xy_m=centroid,
                     threshold_dbm=float(threshold_dbm), margin_db=float(margin_db), cell_m=float(cell_m),
                     height_m=float(height_m), samples_per_tx=int(samples_per_tx),
                     map=f"{HEATMAPS_DIR}/{PNG_COLLATERAL}")
    return rec, mask


def with_constraint(rec: Collateral | None, protect) -> Collateral | None:
    """`rec` with `objective.protect`'s verdict (`protect`: summary.objective.protect, a ProtectResult or None):
    held on the protected points and, with max_area_m2, the maps' collateral area within it."""
    if rec is None or protect is None:
        return rec
    margin = None if protect.max_area_m2 is None else float(protect.max_area_m2 - rec.area_m2)
    return rec.model_copy(update={"constraint_held": bool(protect.held and (margin is None or margin >= 0)),
                                  "constraint_margin_m2": margin})


def collateral_of_maps(maps: dict, threshold_dbm: float) -> tuple[Collateral, np.ndarray, np.ndarray] | None:
    """(record, collateral mask, building mask) from a radio_maps.npz dict; None without a winner map."""
    if "winner_dbm" not in maps or "baseline_dbm" not in maps:
        return None
    x, y = maps["x"], maps["y"]
    cell = float(maps["cell_m"]) if "cell_m" in maps else float(abs(x[1] - x[0]) if len(x) > 1 else 1.0)
    buildings = cells_in_footprints(x, y, maps.get("footprints", np.zeros((0, 3, 2))))
    rec, mask = collateral_loss(x, y, maps["baseline_dbm"], maps["winner_dbm"], threshold_dbm, cell_m=cell,
                                height_m=float(maps.get("height_m", 0.0)),
                                samples_per_tx=int(maps.get("samples_per_tx", 0)), buildings=buildings)
    return rec, mask, buildings
