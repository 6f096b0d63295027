"""Collateral loss (summary.collateral): the area a plate takes coverage from, from the report's radio maps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optimizer.constants import COLLATERAL_MARGIN_DB, NO_PATH_FLOOR_DBM
from optimizer.records import Summary
from optimizer.report.collateral import cells_in_footprints, collateral_loss, collateral_of_maps


def _grid(cell=0.5, n=40):
    c = (np.arange(n) + 0.5) * cell
    return c, c.copy()


def test_collateral_of_hand_made_maps():
    """A 4 m x 3 m shadow (no path) in a covered map: area, worst cell and centroid; a cell that crosses the
    threshold by less than the noise margin, an uncovered cell that drops, and a building cell do not count."""
    x, y = _grid()
    X, Y = np.meshgrid(x, y)
    b = np.full(X.shape, -60.0)
    w = b.copy()
    shadow = (X > 10) & (X < 14) & (Y > 5) & (Y < 8)
    w[shadow] = NO_PATH_FLOOR_DBM
    b[0, 0], w[0, 0] = -69.5, -70.5  # covered (-70), falls below it losing 1 dB: within the noise margin
    b[0, 1], w[0, 1] = -75.0, -120.0  # not covered without the plate: no loss of coverage
    b[1, 0], w[1, 0] = -65.0, -75.0  # counts: a 10 dB drop below the threshold
    bld = np.zeros(X.shape, bool)
    bld[12, 22] = True  # x = 11.25, y = 6.25: in the shadow and in a building
    rec, mask = collateral_loss(x, y, b, w, -70.0, cell_m=0.5, buildings=bld)
    assert shadow[12, 22]
    assert rec.cells == int(shadow.sum()) - 1 + 1  # the shadow less its building cell, plus cell [1, 0]
    assert rec.area_m2 == pytest.approx(4.0 * 3.0 - 0.25 + 0.25)
    assert rec.area_any_drop_m2 == pytest.approx(rec.area_m2 + 0.25)  # and the cell within the margin
    assert not mask[0, 0] and not mask[0, 1] and mask[1, 0] and not mask[12, 22]
    assert rec.worst_no_path and rec.worst_loss_db == pytest.approx(-60.0 - NO_PATH_FLOOR_DBM)
    assert 10 < rec.worst_xy_m[0] < 14 and 5 < rec.worst_xy_m[1] < 8
    expect = shadow & ~bld
    expect[1, 0] = True
    assert rec.centroid_xy_m == pytest.approx([X[expect].mean(), Y[expect].mean()])
    assert rec.margin_db == COLLATERAL_MARGIN_DB
    # nothing lost: zero area, no centroid, worst loss 0
    rec0, mask0 = collateral_loss(x, y, b, b, -70.0, cell_m=0.5)
    assert rec0.area_m2 == 0 and rec0.centroid_xy_m is None and rec0.worst_loss_db == 0.0


def test_the_constraint_verdict_on_the_maps():
    """objective.protect in summary.collateral: held when the protected points held and the maps' area is within
    max_area_m2 (margin = max_area_m2 - area); without max_area_m2 the points' verdict alone; none without protect."""
    from optimizer.records import ProtectResult
    from optimizer.report.collateral import with_constraint

    x, y = _grid()
    b = np.full((40, 40), -60.0)
    w = b.copy()
    w[:4, :6] = -80.0  # 24 cells of 0.25 m²: 6 m² lost
    rec, _ = collateral_loss(x, y, b, w, -70.0, cell_m=0.5)
    held = dict(held=True, margin_db=2.0, lost=0, lost_area_m2=0.0, points=10, constrained=10, max_loss_db=1.5)
    assert with_constraint(rec, None) == rec and rec.constraint_held is None
    ok = with_constraint(rec, ProtectResult(**held, max_area_m2=6.5))
    assert ok.constraint_held and ok.constraint_margin_m2 == pytest.approx(0.5)
    over = with_constraint(rec, ProtectResult(**held, max_area_m2=5.0))
    assert not over.constraint_held and over.constraint_margin_m2 == pytest.approx(-1.0)
    points = with_constraint(rec, ProtectResult(**{**held, "held": False, "lost": 1, "margin_db": -3.0}))
    assert points.constraint_held is False and points.constraint_margin_m2 is None


def test_cells_in_footprints():
    x, y = _grid(1.0, 10)
    sq = np.array([[[2, 2], [6, 2], [6, 5]], [[2, 2], [6, 5], [2, 5]]], float)  # a 4 m x 3 m building
    inside = cells_in_footprints(x, y, sq)
    assert inside.sum() == 12
    assert inside[2, 2] and not inside[5, 2] and not inside[2, 6]


def test_old_summary_loads_without_collateral():
    """summary.collateral is optional: a summary written before it still validates."""
    fields = Summary.model_fields
    assert "collateral" in fields and not fields["collateral"].is_required()


def _trapezoid_shadow(X, Y, tx, plate_x, half_w, top_z, h):
    """Cells of the plane z = h in the geometric shadow of a vertical plate (x = plate_x, |y| <= half_w, from
    below h up to top_z < tx z) lit from `tx` = (0, 0, zt): the trapezoid between the plate's cut and the
    projection of its top edge. Returns (in-shadow test of points, analytic area [m^2], lit boundary [m])."""
    zt = tx[2]
    s_far = (zt - h) / (zt - top_z)  # scale from tx through the top edge down to the plane
    x_far, w_far = plate_x * s_far, half_w * s_far

    def inside(px, py, shrink=0.0):
        s = np.clip(px / plate_x, 1.0, None)
        return (px >= plate_x + shrink) & (px <= x_far - shrink) & (np.abs(py) <= half_w * s - shrink)

    area = (2 * half_w + 2 * w_far) / 2 * (x_far - plate_x)
    side = math.hypot(x_far - plate_x, w_far - half_w)
    return inside, area, 2 * side + 2 * w_far


def test_collateral_is_the_analytic_shadow_of_a_plate(tmp_path):
    """Sionna's radio maps of a plate that blocks the line of sight (empty scene, LOS only): the collateral
    area is the plate's analytic shadow on the map plane within half a cell along its lit edges (cells the
    shadow edge crosses keep part of their rays); every cell whose square lies wholly in the shadow counts,
    none wholly outside it."""
    from optimizer.experiment import parse_experiment
    from optimizer.physics.scene import RadioScene
    from optimizer.records import JointPose, PlatePose
    from optimizer.report.radio_maps import compute_radio_maps

    scene = tmp_path / "s"
    scene.mkdir()
    (scene / "scene.xml").write_text('<scene version="2.1.0"></scene>\n')
    tx, plate, size, h = (0.0, 0.0, 6.0), (5.0, 0.0, 2.5), (2.0, 3.0), 1.5
    exp = parse_experiment({
        "name": "shadow", "scene": str(scene), "frequency_hz": 3.5e9,
        "transmitters": [{"name": "tx", "position": list(tx), "power_dbm": 0.0}],
        "reflector": {"size_m": list(size), "bounds": {"min": list(plate), "max": list(plate)},
                      "yaw_deg": {"min": 90, "max": 90}, "tolerance": {"position_m": 0, "yaw_deg": 0, "pitch_deg": 0}},
        "targets": {"points": [[10.0, 0.0, h]]}, "objective": {"coverage_threshold_dbm": -90},
        "solver": {"max_depth": 1, "samples_per_src": 10000, "diffraction": False, "refraction": False}}, "t")
    rs = RadioScene(exp, device="cpu", threads=2)
    maps = compute_radio_maps(rs, exp, JointPose(plates=[PlatePose(*plate, 90.0)]), (-2.0, 14.0, -6.0, 6.0), h,
                              1_000_000)
    rec, mask, _ = collateral_of_maps(maps, -90.0)
    assert (maps["baseline_dbm"] > -90).all()  # everything covered without the plate
    cell = rec.cell_m
    inside, area, lit_edge_m = _trapezoid_shadow(*np.meshgrid(maps["x"], maps["y"]), tx, plate[0], size[0] / 2,
                                                 plate[2] + size[1] / 2, h)
    assert area == pytest.approx(20.3125)
    assert abs(rec.area_m2 - area) <= 0.5 * cell * lit_edge_m, (rec.area_m2, area)
    X, Y = np.meshgrid(maps["x"], maps["y"])
    half_diag = cell / math.sqrt(2.0)
    assert mask[inside(X, Y, shrink=half_diag)].all()
    assert not mask[~inside(X, Y, shrink=-half_diag)].any()
    assert 5.0 < rec.centroid_xy_m[0] < 11.25 and abs(rec.centroid_xy_m[1]) < 0.3
