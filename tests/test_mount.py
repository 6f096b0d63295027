"""The wall a plate is mounted on: the frame of its tolerance box (site walls, the scene mesh, the mounting
box), `winner.mount` against hand arithmetic, `mounting.html`, and the report's one pose per world."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optimizer.experiment import load_experiment
from optimizer.physics import wall
from optimizer.records import JointPose, PlatePose
from worlds_helpers import EXAMPLES

# building_5's west face in Sionna's simple_street_canyon (its mesh's vertices): x = 31.518768 m, from
# y = -36.499641 m to the corner at y = -8.613335 m; the ground below the street corner at z = -0.030794 m
WALL_X, WALL_NORTH_Y, WALL_SOUTH_Y, GROUND_Z = 31.518768, -8.613335, -36.499641, -0.030794


@pytest.fixture(scope="module")
def street_scene():
    from optimizer.physics.scene import RadioScene

    exp = load_experiment(EXAMPLES / "street-corner.yaml")
    return exp, RadioScene(exp, device="cpu", threads=2)


def test_the_wall_is_found_in_the_mesh(street_scene):
    """street-corner's box is 1.2 m off building_5's west face; wide-facade's (same scene) 1.8 m off
    building_4's south face: both found as the scene object, with the frame parallel to the wall."""
    exp, rs = street_scene
    f = rs.wall_frames()[0]
    assert (f.source, f.wall_id, f.yaw_deg) == ("mesh", "building_5", 90.0)
    assert f.point[0] == pytest.approx(WALL_X, abs=1e-4) and f.normal == pytest.approx([-1.0, 0.0])
    assert sorted(f.point[1] - np.array(f.ends_m)) == pytest.approx([WALL_SOUTH_Y, WALL_NORTH_Y], abs=1e-4)
    wide = load_experiment(EXAMPLES / "wide-facade.yaml").plates()[0]
    g = wall.find_frame(wide, faces=rs.wall_faces())
    # of the wall line's two yaws (0, 180) the one nearer the yaw range's middle (0): the plate's own frame
    assert (g.source, g.wall_id, g.yaw_deg) == ("mesh", "building_4", 0.0)
    assert g.point[1] == pytest.approx(9.5716, abs=1e-3) and g.normal == pytest.approx([0.0, -1.0])


def test_site_walls_then_the_mounting_box_then_the_plate():
    """A known wall (the site importer's seam) wins over the mesh; without walls or faces the box's long
    horizontal axis; a box without one (a point) the plate at the middle of its yaw range."""
    exp = load_experiment(EXAMPLES / "street-corner.yaml")
    refl = exp.plates()[0]
    diag = wall.Wall("w7", (30.0, -20.0), (33.0, -9.0))  # 1.2 m-ish from the box centre, slanted
    f = wall.find_frame(refl, walls=[diag, wall.Wall("far", (100.0, 0.0), (101.0, 0.0))])
    assert (f.source, f.wall_id) == ("site", "w7")
    assert f.yaw_deg == pytest.approx(math.degrees(math.atan2(11.0, 3.0)))  # along the wall, nearer 97.5
    b = wall.find_frame(refl)  # x fixed at 30.32, y from -15 to -10.5: the long axis is y
    assert (b.source, b.yaw_deg) == ("bounds", 90.0)
    point = refl.model_copy(update={"bounds": refl.bounds.model_copy(update={"max": list(refl.bounds.min)})})
    p = wall.find_frame(point)
    assert (p.source, p.yaw_deg) == ("plate", 97.5)


def test_winner_mount_on_the_street_example_by_hand(street_scene):
    """winner.mount of a plate on building_5 turned 45 deg from it, against hand arithmetic from the pose
    and the wall: stand-off 31.518768 - 30.32 = 1.198768 -> 1.20 m; along from the nearer (north) end
    -8.613335 - -12.0 = 3.386665 -> 3.39 m; height 4.5 - -0.030794 = 4.530794 -> 4.53 m; angle |135 - 90| =
    45.0; pitch 3.2 -> 3.0 (0.5 deg); with +y as north, the normal away from the wall (-0.707, -0.707)
    bears 225.0 deg."""
    from optimizer.search.conclude import mount_figures_of

    exp, rs = street_scene
    pose = JointPose.single(PlatePose(30.32, -12.0, 4.5, 135.0, 3.2))
    m = mount_figures_of(rs, exp, pose, rs.wall_frames())[0]
    assert m.wall_id == "building_5" and m.frame.source == "mesh"
    assert m.standoff_m == pytest.approx(1.20) and m.along_m == pytest.approx(3.39)
    assert m.from_end == pytest.approx([31.52, -8.61])
    assert m.height_m == pytest.approx(4.53) and m.ground == "mesh"
    assert m.angle_to_wall_deg == 45.0 and m.pitch_deg == 3.0 and m.bearing_deg is None
    assert m.tolerance == {"position_m": 0.05, "yaw_deg": 1.0, "pitch_deg": 1.0}
    assert m.rounding == {"m": 0.01, "deg": 0.5}
    geo = wall.mount_figures(pose.first, rs.wall_frames()[0], exp.plates()[0], GROUND_Z, north_yaw_deg=0.0)
    assert geo.bearing_deg == 225.0
    # the other way round (yaw 45: its +normal points into the wall) the side away from the wall is the same
    back = wall.mount_figures(PlatePose(30.32, -12.0, 4.5, 315.0, 3.2), rs.wall_frames()[0], exp.plates()[0],
                              GROUND_Z, north_yaw_deg=0.0)
    assert back.bearing_deg == 225.0 and back.angle_to_wall_deg == 45.0


def test_mounting_page_is_written_and_linked(tmp_path):
    """write_report writes mounting.html (the drawing inline, the figures, the tolerance, the plate) and
    report.html links it."""
    from optimizer.constants import MOUNTING_HTML, REPORT_HTML
    from optimizer.report.build import write_report
    from records_helpers import synthetic_run

    exp = load_experiment(EXAMPLES / "indoor-corridor.yaml")
    run = tmp_path / "run"
    s = synthetic_run(run, exp)
    write_report(run, exp=exp, radio_maps=False)
    page = (run / MOUNTING_HTML).read_text()
    assert "data:image/png;base64," in page and "1.60 m" in page and "45.0°" in page and "1.00 m" in page
    assert "±5 cm" in page and "1.5 m × 1 m metal" in page and s.winner.mount.wall_id in page
    report = (run / REPORT_HTML).read_text()
    assert f"href='{MOUNTING_HTML}'" in report and "How to mount it" in report
    assert "frame of the tolerance box" in report and "wall &#x27;walls&#x27; (scene mesh), yaw 90.0°" in report


def test_worlds_table_shows_the_pose_the_result_stands_for():
    """Where the worst-case polish moved a world's pose, its row shows the polished pose (the one its check
    and, for the winner, the winner's pose are of) and how far the polish moved it."""
    from optimizer.records import RssStats, ToleranceCheck, WorldOutcome
    from optimizer.report.text import _world_rows
    from records_helpers import minimal_summary

    s = minimal_summary(-60.0)
    stats = RssStats(min_rss_dbm=-61.0, p5_rss_dbm=-61.0, mean_rss_dbm=-55.0, coverage=1.0, no_path=0)
    best = JointPose.single(PlatePose(1.0, 2.0, 3.0, 40.0))
    polished = JointPose.single(PlatePose(1.6, 2.8, 3.0, 41.5))
    chk = ToleranceCheck(position_m=0.05, yaw_deg=1, pitch_deg=1, poses_checked=41, nominal=stats, worst=stats,
                         nominal_min_rss_dbm=-61.0, worst_min_rss_dbm=-64.0, worst_coverage=1.0, holds=True,
                         pose=polished)
    o = WorldOutcome(world=0, status="completed", best_pose=best, final_pose=best, best=stats.model_copy(
        update={"min_rss_dbm": -58.0}), steps=3, evaluations=3, restarts=0, tolerance=chk)
    row = _world_rows(s.model_copy(update={"worlds": [o]}))[0]
    assert "x 1.600 m" in row[7] and "yaw 41.50°" in row[7] and row[5] == "-61.0"
    assert row[8].startswith("100 cm, 1.5° from x 1.000 m")
