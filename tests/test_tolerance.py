"""Installable winners: the mounting-tolerance box, its truth check and margin, the surrogate's worst case,
the two-solve truth with diffraction, and mountable example boxes."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from optimizer.experiment import with_overrides
from optimizer.physics import tolerance
from optimizer.physics.geometry import plate_corners, plate_frame
from optimizer.physics.metrics import has_path, rss_stats
from optimizer.records import JointPose, PlatePose
from worlds_helpers import EXAMPLES, REPO, street, write_yaml

TOL = {"position_m": 0.05, "yaw_deg": 1.0, "pitch_deg": 1.0}
# geometric optics: its hard edge makes the coverage cliff these tests need (physical optics smooths it)
SMALL = {"solver.max_depth": 2, "solver.samples_per_src": 20000, "reflector.tolerance": TOL, "solver.plate_model": "go"}
KNIFE_EDGE = PlatePose(20.020321621441624, 7.503463045836917, 5.0, 141.65831723470706)  # nominal optimum, street


@pytest.fixture(scope="module")
def scene():
    from optimizer.physics.scene import RadioScene

    exp = street(**SMALL)
    return exp, RadioScene(exp, device="cpu", threads=2)


def test_box_has_every_corner_and_seeded_interior():
    half = tolerance.half_widths(street(**SMALL).reflector.tolerance)
    off = tolerance.box_offsets(half, interior=8, seed=3)
    assert off.shape == (2 ** 5 + 8, 5)
    corners = {tuple(np.sign(o)) for o in off[:32]}
    assert len(corners) == 32 and all(np.allclose(np.abs(o), half) for o in off[:32])
    assert np.all(np.abs(off[32:]) <= half) and not np.allclose(off[32:], 0)
    assert np.array_equal(off, tolerance.box_offsets(half, interior=8, seed=3))  # reproducible
    half[4] = 0.0  # no pitch tolerance: 2^4 corners
    assert tolerance.box_offsets(half, interior=0).shape == (16, 5)
    assert tolerance.box_offsets(np.zeros(5)).shape == (0, 5)


def test_offsets_are_in_the_mounting_frame():
    """Along the wall, off the wall, up = +z in the wall frame given; yaw and pitch on the plate. With the
    frame at the plate's own yaw (a plate parallel to its wall): the plate's width axis and normal."""
    p = PlatePose(1.0, 2.0, 3.0, 30.0)
    u, _, n = plate_frame(30.0, 0.0)
    moved = tolerance.offset_pose(p, np.array([0.1, 0.2, 0.3, 1.5, -2.0]), 30.0)
    d = np.array(moved.position) - np.array(p.position)
    np.testing.assert_allclose(d, 0.1 * u + 0.2 * n + [0, 0, 0.3], atol=1e-12)
    assert moved.yaw_deg == pytest.approx(31.5) and moved.pitch_deg == pytest.approx(-2.0)


def test_wall_frame_offset_of_a_plate_turned_45_degrees_from_its_wall():
    """Hand arithmetic: a wall along +x (frame yaw 0), the plate turned 45 deg from it. +5 cm along the wall
    moves the centre by (0.05, 0, 0), along the wall, not along the plate ((0.0354, 0.0354, 0)); +5 cm off
    the wall by (0, 0.05, 0); yaw and pitch offsets stay on the plate."""
    p = PlatePose(10.0, 2.0, 4.0, 45.0, 3.0)
    along = tolerance.offset_pose(p, [0.05, 0.0, 0.0, 0.0, 0.0], 0.0)
    assert (along.x, along.y, along.z) == pytest.approx((10.05, 2.0, 4.0), abs=1e-12)
    off = tolerance.offset_pose(p, [0.0, 0.05, 0.0, 1.0, -1.0], 0.0)
    assert (off.x, off.y, off.z) == pytest.approx((10.0, 2.05, 4.0), abs=1e-12)
    assert (off.yaw_deg, off.pitch_deg) == pytest.approx((46.0, 2.0))
    # a wall along +y (frame yaw 90; the plate again 45 deg from it): along the wall is +y, off it is -x
    up = tolerance.offset_pose(p, [0.05, 0.05, 0.05, 0.0, 0.0], 90.0)
    assert (up.x, up.y, up.z) == pytest.approx((9.95, 2.05, 4.05), abs=1e-12)
    # the plate's own frame would have moved it along its width axis instead
    assert (along.x, along.y) != pytest.approx((10.0 + 0.05 * math.sqrt(0.5), 2.0 + 0.05 * math.sqrt(0.5)))


def test_box_follows_the_wall_not_the_plate_in_a_check():
    """`check` on a truth without scene geometry takes the frame from the mounting box's long axis: the
    street box runs along x, so every box pose of a plate at yaw 140 moves its centre along x (and y, off
    the wall) by exactly +-5 cm, not along the plate's width axis (which would move x by 5 cm x |cos 140 +-
    sin 140|)."""
    exp = street(**SMALL)

    class Probe:
        targets = np.zeros((1, 3))
        poses: list = []

        def rss_dbm(self, pose, samples_per_src=None):
            self.poses.append(pose)
            return np.array([-50.0])

    rs = Probe()
    frame = tolerance.frames(rs, exp)[0]
    assert frame.source == "bounds" and frame.yaw_deg == 180.0  # of 0 and 180, nearer the yaw range (90-180)
    pose = JointPose.single(PlatePose(24.0, 8.0, 5.0, 140.0))
    tolerance.check(rs, pose, exp, interior=0)
    d = np.array([p.first.position for p in rs.poses[1:]]) - np.array(pose.first.position)
    np.testing.assert_allclose(np.abs(d), 0.05, atol=1e-12)


def test_bad_tolerance_is_one_line_and_a_large_one_warns(tmp_path):
    for bad in (-0.05, ".nan", ".inf", "'a lot'"):
        f = tmp_path / "e.yaml"
        text = write_yaml(f, street()).read_text().replace("position_m: 0.0", f"position_m: {bad}")
        f.write_text(text)
        r = subprocess.run([sys.executable, "-m", "optimizer.cli", "evaluate", str(f), "--pose", "24,8,5,140"],
                           capture_output=True, text=True, cwd=REPO, timeout=120)
        assert r.returncode == 2, (bad, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "reflector.tolerance.position_m" in lines[0] and "Traceback" not in r.stderr
    from optimizer.experiment import parse_experiment

    data = street().model_dump(mode="json")
    data["reflector"]["tolerance"] = {"position_m": 0.8, "yaw_deg": 12, "pitch_deg": 0}
    warnings = parse_experiment(data).reflector.tolerance.warnings()
    assert len(warnings) == 2 and "position_m" in warnings[0] and "yaw_deg" in warnings[1]


def test_surrogate_worst_case_is_the_soft_min_over_corner_poses():
    """The batched worst case equals, per target, the soft-min of the model evaluated at each corner pose on
    its own: between the hard min and the min + T log K."""
    from optimizer.physics import backend

    backend.init("cpu", threads=2)
    from optimizer.physics.surrogate import PlateSurrogate

    exp = street(**SMALL)
    targets = np.array(exp.target_points())
    sur = PlateSurrogate([exp.transmitters[0].position], [30.0], targets, [exp.reflector.size_m], 0.0857)
    pose = PlatePose(23.7, 8.26, 5.0, 139.2)
    offs = tolerance.corner_offsets(tolerance.half_widths(exp.reflector.tolerance))
    kw = dict(edge_factor=0.3, grad=False, temperature_db=1.0)
    moves = tolerance.world_offsets(offs, 100.0)
    batched = sur.evaluate(np.array(pose.as_list()), offsets=moves, corner_temperature_db=0.5, **kw)["power_dbm"]
    frame_yaw = 100.0  # a wall the plate is turned 39 deg away from
    each = np.array([sur.evaluate(np.array(tolerance.offset_pose(pose, o, frame_yaw).as_list()), **kw)["power_dbm"]
                     for o in offs])
    hard = each.min(axis=0)
    assert np.all(batched >= hard - 1e-3) and np.all(batched <= hard + 0.5 * math.log(len(offs)) + 1e-3)
    # and its gradient exists (the worst case is what the world climbs)
    g = sur.evaluate(np.array(pose.as_list()), offsets=moves, edge_factor=0.3, temperature_db=1.0)["grad"]
    assert np.linalg.norm(g) > 0


def test_check_reports_the_truth_at_every_box_pose(scene):
    """The check's worst case is the truth at its worst pose, re-evaluated on its own; `holds` is whether
    every pose covers every target."""
    exp, rs = scene
    pose = JointPose.single(KNIFE_EDGE)
    chk, raw = tolerance.check(rs, pose, exp)
    assert chk.poses_checked == 41 and len(raw["rss"]) == 40
    thr = exp.objective.coverage_threshold_dbm
    per_pose = [rss_stats(r, thr) for r in raw["rss"]]
    assert chk.worst_coverage == min([chk.nominal.coverage] + [s.coverage for s in per_pose])
    assert chk.holds == bool(raw["covered"].all() and chk.nominal.coverage == 1.0)
    assert not chk.holds  # this nominal optimum sits on a coverage cliff
    frame_yaw = tolerance.frames(rs, exp)[0].yaw_deg
    worst_pose = JointPose.single(tolerance.offset_pose(KNIFE_EDGE, np.array(chk.failing_offsets[0]), frame_yaw))
    again = rs.rss_dbm(worst_pose)
    assert not np.all(has_path(again) & (again >= thr))  # the listed offset really loses coverage


def test_margin_is_where_coverage_starts_to_hold(scene):
    """Bisection on truth: coverage holds over the box scaled by the margin (every corner, checked
    independently) and fails over the whole requested box."""
    exp, rs = scene
    pose = JointPose.single(KNIFE_EDGE)
    chk, _ = tolerance.check(rs, pose, exp, interior=0)
    scale, spent = tolerance.margin(rs, exp, chk)
    assert 0.0 < scale < 1.0 and spent > 0
    thr = exp.objective.coverage_threshold_dbm
    half = tolerance.half_widths(exp.reflector.tolerance) * scale
    for off in tolerance.corner_offsets(half):
        r = rs.rss_dbm(JointPose.single(tolerance.offset_pose(KNIFE_EDGE, off, tolerance.frames(rs, exp)[0].yaw_deg)))
        assert np.all(has_path(r) & (r >= thr))
    lines = tolerance.suggestions(rs, exp, chk, scale)
    assert any("mounting tolerance" in line for line in lines)
    # where the pose itself does not meet the objective (here: the truth without a plate as its nominal), no
    # tolerance or plate size is suggested, only that
    thr = exp.objective.coverage_threshold_dbm
    bare = rss_stats(rs.baseline_dbm(), thr)
    assert bare.coverage < 1.0
    lines = tolerance.suggestions(rs, exp, chk.model_copy(update={"nominal": bare}), scale)
    assert len(lines) == 1 and lines[0].startswith("the pose itself does not meet the objective")


def test_world_checks_its_best_over_the_tolerance_at_its_end(scene):
    from optimizer.search.world import World

    exp, rs = scene
    exp = with_overrides(exp, "test", {"search.steps": 2,
                                       "search.robust_phase": "every_world"})  # (halving: the driver checks after)
    w = World(exp, 0, PlatePose(23.7, 8.26, 5.0, 139.2), radio_scene=rs)
    w.step()
    assert w.tolerance is None
    before = w.evaluations
    w.step()
    assert w.tolerance is not None and w.tolerance.pose is not None
    assert w.evaluations >= before + 1 + w.tolerance.poses_checked
    st = w.get_state()
    assert st.tolerance == w.tolerance and len(st.candidates) >= 1


def test_diffraction_truth_keeps_every_specular_chain():
    """With diffraction on, a single Sionna solve loses plate paths erratically (measured); the truth
    unites the specular chains of a solve without diffraction with the diffracted paths: never less power
    than without diffraction, and a diffracted path where nothing else reaches."""
    from optimizer.physics.scene import RadioScene

    exp = street(**{"solver.max_depth": 2, "solver.samples_per_src": 20000, "solver.diffraction": True})
    rs = RadioScene(exp, device="cpu", threads=2)
    pose = PlatePose(23.7, 8.26, 5.0, 139.2)
    with_d = rs.rss_dbm(pose)
    base_d = rs.rss_dbm(None)
    rs.exp = with_overrides(exp, "test", {"solver.diffraction": False})  # the same scene, another solver
    without = rs.rss_dbm(pose)
    base = rs.rss_dbm(None)
    assert np.all(with_d >= without - 1e-6)
    assert np.all(~has_path(base)) and np.any(has_path(base_d))  # the side street: only diffraction reaches it


@pytest.mark.parametrize("name", ["street-corner", "indoor-corridor", "wide-facade", "two-plates"])
def test_example_boxes_are_mountable(name, capsys):
    """Every shipped mounting box (of every plate) is on a wall or just off one: at every corner of the box and
    both yaw bounds the plate cuts no scene geometry, and a wall lies within 2 m behind or in front of it; the
    run's pre-flight finds no cutting pose among its samples of the box (no warning)."""
    from optimizer.experiment import load_experiment
    from optimizer.physics.scene import RadioScene
    from optimizer.search.driver import BOX_CUT_SAMPLES, box_samples, check_boxes_clear
    from optimizer.search.space import PoseSpace

    exp = load_experiment(EXAMPLES / f"{name}.yaml")
    rs = RadioScene(exp, device="cpu", threads=2)
    for k, r in enumerate(exp.plates()):
        _mountable(rs, r, name)
        poses = box_samples(PoseSpace([r]), BOX_CUT_SAMPLES, exp.search.seed)
        assert len(poses) == BOX_CUT_SAMPLES
        assert rs.plate_cuts([p.first for p in poses], [k] * len(poses)) == [None] * len(poses), (name, r.name)
    capsys.readouterr()
    check_boxes_clear(exp, rs)
    assert capsys.readouterr().err == ""


def _mountable(rs, r, name):
    b = r.bounds
    for x in {b.min[0], b.max[0]}:
        for y in {b.min[1], b.max[1]}:
            for z in {b.min[2], b.max[2]}:
                for yaw in (r.yaw_deg.min, r.yaw_deg.max):
                    c = plate_corners(PlatePose(x, y, z, yaw), r.size_m)
                    edges = [(c[i], c[(i + 1) % 4]) for i in range(4)] + [(c[0], c[2]), (c[1], c[3])]
                    o, e = np.array([a for a, _ in edges]), np.array([q for _, q in edges])
                    assert rs.visible(o, e).all(), (name, x, y, z, yaw)
                mid = 0.5 * (r.yaw_deg.min + r.yaw_deg.max)
                near = []
                for yaw in np.arange(mid - 90.0, mid + 90.0, 5.0):  # look for the wall around the plate
                    _, _, n = plate_frame(yaw, 0.0)
                    centre = np.array([x, y, z])
                    near.append(not rs.visible(centre[None], (centre + 2.0 * n)[None])[0]
                                or not rs.visible(centre[None], (centre - 2.0 * n)[None])[0])
                assert any(near), (name, x, y, z)


def test_evaluate_prints_convergence_and_tolerance(tmp_path):
    f = write_yaml(tmp_path / "e.yaml", street(**{"solver.max_depth": 1, "solver.samples_per_src": 5000,
                                                   "reflector.tolerance": TOL}))
    r = subprocess.run([sys.executable, "-m", "optimizer.cli", "evaluate", str(f),
                        f"--pose={KNIFE_EDGE.cli_value()}", "--convergence", "--tolerance"],
                       capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for key in ("max_depth + 1", "max_depth + 2", "4 x samples", "mounting tolerance ±5 cm", "poses checked",
                "margin"):
        assert key in out, key
