"""A plate mounted on a wall of a site imported from a map: the tolerance box in the frame of that site.json
wall, `winner.mount` with the bearing from true north and the plate centre's latitude and longitude, and the
map data's credit on the report and the mounting sheet. On the Helsinki block of tests/test_sites.py (its
fixtures) and the wall tests/test_site_geo.py mounts on."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

import test_site_geo
import test_sites
from optimizer.physics import wall
from optimizer.experiment.model import Reflector
from optimizer.records import JointPose, PlatePose, WallFrame
from optimizer.store.runstore import RunStore
from optimizer.sites.projection import LocalFrame

helsinki_pbf, helsinki, site_of = test_sites.helsinki_pbf, test_sites.helsinki, test_sites.site_of
WALL, _experiment, _load, _wall = test_site_geo.WALL, test_site_geo._experiment, test_site_geo._load, test_site_geo._wall
ALONG_M, STANDOFF_M, HEIGHT_M, TURN_DEG = 24.0, 2.15, 5.5, 10.0  # the hand-made pose on WALL


def _true_north_yaw_deg(frame: LocalFrame, x: float, y: float) -> float:
    """The yaw of a plate whose normal points to geographic north at (x, y), found without the product's
    convergence: a point 100 m due north on the WGS 84 ellipsoid (pyproj Geod), projected by pyproj."""
    from pyproj import Geod, Transformer

    (lat,), (lon,) = frame.to_geo([x], [y])
    lon1, lat1, _ = Geod(ellps="WGS84").fwd(lon, lat, 0.0, 100.0)
    to_utm = Transformer.from_crs(4326, frame.epsg, always_xy=True)
    (e0, n0), (e1, n1) = to_utm.transform(lon, lat), to_utm.transform(lon1, lat1)
    return math.degrees(math.atan2(-(e1 - e0), n1 - n0))  # normal (-sin yaw, cos yaw)


@pytest.mark.parametrize("lat, lon", [(60.17, 24.944), (60.17, 29.9), (-33.87, 151.21)])
def test_bearing_of_a_plate_facing_true_north_is_zero(lat, lon):
    """Helsinki is 2 deg west of zone 35's central meridian (27 E), 29.9 E near the zone's east edge, Sydney
    1.8 deg west of zone 56's (153 E) in the south: true north is 1.8, 2.5 and 1.0 deg off grid north there,
    so a bearing from the grid would be off by that much."""
    frame = LocalFrame.at(lat, lon)
    x, y = 250.0, -120.0
    north = _true_north_yaw_deg(frame, x, y)
    assert abs(north) > 0.9  # the grid is not true north here
    assert frame.north_yaw_deg(x, y) == pytest.approx(north, abs=0.01)
    facing = WallFrame(plate="plate-1", yaw_deg=north, source="plate")
    refl = Reflector(size_m=[1.0, 1.0], bounds={"min": [x, y, 3.0], "max": [x, y, 3.0]})
    for turn, bearing in ((0.0, 0.0), (-90.0, 90.0), (180.0, 180.0)):  # yaw turns counter-clockwise
        m = wall.mount_figures(PlatePose(x, y, 3.0, north + turn), facing, refl,
                               north_yaw_deg=frame.north_yaw_deg(x, y))
        assert m.bearing_deg == pytest.approx(bearing, abs=0.1)


@pytest.fixture(scope="module")
def on_wall(helsinki, tmp_path_factory):
    """(experiment, RadioScene, the `scene walls` row of WALL) for a box given by WALL."""
    from optimizer.physics.scene import RadioScene

    row = _wall(helsinki)
    form = {"wall": WALL, "along_m": [20.0, 28.0], "height_m": [4.0, 7.0], "standoff_m": STANDOFF_M}
    exp = _load(tmp_path_factory.mktemp("mount"), _experiment(helsinki, form))
    return exp, RadioScene(exp, device="cpu", threads=2), row


def _hand_pose(row) -> tuple[PlatePose, np.ndarray, np.ndarray]:
    """A plate ALONG_M from the wall's start, STANDOFF_M in front of its face, turned TURN_DEG from it."""
    a = np.array([row["start"]["x_m"], row["start"]["y_m"]])
    b = np.array([row["end"]["x_m"], row["end"]["y_m"]])
    u = (b - a) / np.linalg.norm(b - a)
    out = np.array([u[1], -u[0]])  # site.json: the outside is on the right of start -> end
    c = a + ALONG_M * u + STANDOFF_M * out
    yaw = math.degrees(math.atan2(-out[0], out[1])) + TURN_DEG
    return PlatePose(float(c[0]), float(c[1]), HEIGHT_M, yaw, 0.0), a, b


def test_frame_and_winner_mount_from_the_site_json_wall(on_wall):
    """The box given by WALL is in that wall's frame (not the mesh's); winner.mount of a hand-made pose
    against hand arithmetic from the wall's end points: 24 m from the start (the nearer end of a 69.45 m
    wall), 2.15 m off it, 10 deg to it, its normal bearing the wall's normal bearing (pyproj Geod, `scene
    walls`) less 10 deg, 5.5 m above the flat ground; the centre's lat/lon goes back to the pose within 1 cm."""
    from optimizer.physics import tolerance
    from optimizer.search.conclude import mount_figures_of

    exp, rs, row = on_wall
    assert exp.reflector.mounted_on_wall == WALL
    assert len(rs.site_walls) == site_of(test_sites.Path(exp.scene))["counts"]["walls"]
    (f,) = tolerance.frames(rs, exp)
    assert (f.source, f.wall_id) == ("site", WALL)
    assert wall.frame_label(f).startswith(f"site.json wall {WALL!r}")
    pose, a, b = _hand_pose(row)
    (m,) = mount_figures_of(rs, exp, JointPose.single(pose), [f])
    length = float(np.linalg.norm(b - a))
    assert length == pytest.approx(row["length_m"], abs=1e-3) and ALONG_M < length / 2
    assert m.wall_id == WALL and m.along_m == pytest.approx(ALONG_M) and m.from_end == pytest.approx(
        np.round(a, 2).tolist())
    assert m.standoff_m == pytest.approx(STANDOFF_M) and m.angle_to_wall_deg == TURN_DEG
    assert m.height_m == pytest.approx(HEIGHT_M) and m.ground == "mesh"
    assert abs((m.bearing_deg - (row["normal_bearing_deg"] - TURN_DEG) + 180) % 360 - 180) <= 0.26
    frame = LocalFrame.from_record(site_of(test_sites.Path(exp.scene))["frame"])
    x, y = frame.to_scene(m.lat_deg, m.lon_deg)
    assert math.hypot(float(x) - pose.x, float(y) - pose.y) < 0.01
    assert 60.16 < m.lat_deg < 60.18 and 24.93 < m.lon_deg < 24.95


def test_a_box_by_coordinates_takes_the_site_wall_behind_it(on_wall, helsinki, tmp_path, capsys):
    """The same box written by hand (min, max and its frame): the nearest site.json wall behind it (before the mesh); a wall
    named by mounted_on_wall is taken as named; one not in site.json, or on a scene without one, is bad input
    (one line naming the key, exit 2, nothing written)."""
    from optimizer.cli.main import main

    exp, rs, _ = on_wall
    b = exp.reflector.bounds
    hand = _experiment(helsinki, b.model_dump(mode="json", exclude_none=True),  # with its frame: the wall is oblique
                       yaw_deg={"min": exp.reflector.yaw_deg.min, "max": exp.reflector.yaw_deg.max})
    by_hand = _load(tmp_path, hand, "hand.yaml")
    assert by_hand.reflector.mounted_on_wall is None and by_hand.sha256() != exp.sha256()
    f = wall.find_frame(by_hand.reflector, rs.site_walls, rs.wall_faces())
    assert (f.source, f.wall_id) == ("site", WALL)
    named = _load(tmp_path, {**hand, "reflector": {**hand["reflector"], "mounted_on_wall": WALL}}, "named.yaml")
    assert named.sha256() == exp.sha256()  # the same plate on the same wall
    for scene, wall_id in ((helsinki, "way/1#99"), (test_site_geo.L_CORRIDOR, WALL)):
        bad = {**hand, "scene": str(scene), "reflector": {**hand["reflector"], "mounted_on_wall": wall_id}}
        if scene != helsinki:
            bad["transmitters"] = [{"name": "ap1", "position": [0.0, 0.0, 2.0]}]
            bad["targets"] = {"points": [[1.0, 1.0, 1.5]]}
        f = tmp_path / "bad.yaml"
        f.write_text(yaml.safe_dump(bad))
        capsys.readouterr()
        assert main(["run", str(f), "--output", str(tmp_path / "out")]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"reflectopt: error: {f}: reflector.mounted_on_wall: "), lines
        assert not (tmp_path / "out").exists()


def test_report_and_mounting_sheet_credit_osm(on_wall, tmp_path):
    """report.html, report.md and mounting.html say '© OpenStreetMap contributors' for an OSM site, and the
    sheet gives the plate centre's latitude and longitude."""
    from optimizer.constants import MOUNTING_HTML, REPORT_HTML, REPORT_MD
    from optimizer.report.build import write_report
    from optimizer.search.conclude import mount_figures_of
    from records_helpers import synthetic_run

    exp, rs, row = on_wall
    assert site_of(test_sites.Path(exp.scene))["attribution"] == "© OpenStreetMap contributors"
    pose, _, _ = _hand_pose(row)
    run = tmp_path / "run"
    synthetic_run(run, exp, winner_pose=pose, worlds=2, steps=3)
    s = RunStore(str(run)).read_summary()

    (m,) = mount_figures_of(rs, exp, JointPose.single(pose), rs.wall_frames())
    s = s.model_copy(update={"winner": s.winner.model_copy(update={
        "mount": m, "plates": [s.winner.plates[0].model_copy(update={"mount": m})]})})
    write_report(run, exp=exp, radio_maps=False, summary=s)
    credit = "Map data © OpenStreetMap contributors (ODbL-1.0)"
    for name in (MOUNTING_HTML, REPORT_HTML, REPORT_MD):
        assert credit in (run / name).read_text(encoding="utf-8"), name
    sheet = (run / MOUNTING_HTML).read_text(encoding="utf-8")
    assert f"{m.lat_deg:.7f}, {m.lon_deg:.7f}" in sheet and WALL in sheet
