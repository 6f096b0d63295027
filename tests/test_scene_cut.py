"""Plates that cut through scene geometry: the ray test against a hand-built scene (one wall in the plane
y = 0, the ground z = 0) with analytic thresholds, and what the product does with such poses (the search
rejects them, the tolerance box fails, `evaluate` refuses, `grid` skips, the pre-flight errs or warns).

A 2 m x 1 m plate centred d = 0.5 m in front of the wall, turned by yaw from parallel, reaches the wall's
plane with one end when its half-width 1 m x |sin(yaw)| exceeds d: at yaw = asin(0.5) = 30 deg for a thin
plate; its thickness t (1 cm) adds t/2 x cos(yaw) at that end, so the threshold is asin(d / R) - atan(t / 2 /
1 m) with R = hypot(1 m, t / 2): 29.71 deg."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from worlds_helpers import REPO, write_yaml

from optimizer.errors import ConfigError
from optimizer.experiment import parse_experiment
from optimizer.records import JointPose, PlatePose

D_M = 0.5  # [m] the plate centre's distance from the wall
HALF_WIDTH_M = 1.0
THICKNESS_M = 0.01  # the default reflector.thickness_m
THRESHOLD_DEG = math.degrees(math.asin(D_M / math.hypot(HALF_WIDTH_M, THICKNESS_M / 2))
                             - math.atan(THICKNESS_M / 2 / HALF_WIDTH_M))  # 29.71 deg
ZERO_TOL = {"position_m": 0.0, "yaw_deg": 0.0, "pitch_deg": 0.0}


def _rectangle_ply(path, corners):
    lines = ["ply", "format ascii 1.0", "element vertex 4", "property float x", "property float y",
             "property float z", "element face 2", "property list uchar int vertex_indices", "end_header"]
    lines += [" ".join(f"{v:g}" for v in c) for c in corners] + ["3 0 1 2", "3 0 2 3"]
    path.write_text("\n".join(lines) + "\n")


def wall_scene(folder):
    """A 40 m x 10 m wall in the plane y = 0 (z 0..10 m) and a 40 m x 40 m ground at z = 0."""
    (folder / "meshes").mkdir(parents=True, exist_ok=True)
    _rectangle_ply(folder / "meshes" / "wall.ply", [[-20, 0, 0], [20, 0, 0], [20, 0, 10], [-20, 0, 10]])
    _rectangle_ply(folder / "meshes" / "ground.ply", [[-20, -20, 0], [20, -20, 0], [20, 20, 0], [-20, 20, 0]])
    shapes = "".join(f'    <shape type="ply" id="mesh-{n}">\n        <string name="filename" value="meshes/{n}.ply"/>\n'
                     '        <ref id="concrete" name="bsdf"/>\n    </shape>\n' for n in ("wall", "ground"))
    (folder / "scene.xml").write_text('<scene version="2.1.0">\n    <bsdf type="itu-radio-material" id="concrete">\n'
                                      '        <string name="type" value="concrete"/>\n    </bsdf>\n'
                                      f"{shapes}</scene>\n")
    return folder


def wall_data(folder, yaw=(0.0, 60.0), y=D_M, tolerance=None, **reflector):
    return {
        "name": "cut", "scene": str(folder), "frequency_hz": 3.5e9,
        "transmitters": [{"name": "tx", "position": [0.0, 10.0, 5.0], "power_dbm": 30}],
        "reflector": {"size_m": [2 * HALF_WIDTH_M, 1.0], "bounds": {"min": [-2.0, y, 3.0], "max": [2.0, y, 4.0]},
                      "yaw_deg": {"min": yaw[0], "max": yaw[1]}, "tolerance": tolerance or ZERO_TOL, **reflector},
        "targets": {"points": [[5.0, 10.0, 1.5], [-5.0, 10.0, 1.5]]},
        "objective": {"coverage_threshold_dbm": -90},
        "solver": {"max_depth": 1, "samples_per_src": 1000, "diffraction": False},
        "search": {"worlds": 4, "steps": 2, "seed": 0}, "output": str(folder.parent / "results"),
    }


@pytest.fixture(scope="module")
def wall(tmp_path_factory):
    from optimizer.physics.scene import RadioScene

    folder = wall_scene(tmp_path_factory.mktemp("wall") / "scene")
    exp = parse_experiment(wall_data(folder), "test")
    return folder, exp, RadioScene(exp, device="cpu", threads=1)


def test_plate_parallel_to_the_wall_does_not_cut_and_the_yaw_threshold_is_trigonometric(wall):
    _, _, rs = wall
    assert rs.cuts_scene(PlatePose(0.0, D_M, 3.5, 0.0)) is None  # parallel, 0.5 m off
    assert rs.cuts_scene(PlatePose(0.0, -D_M, 3.5, 0.0)) is None  # behind it, too
    for sign in (1.0, -1.0):  # either end of the plate swings to the wall
        assert rs.cuts_scene(PlatePose(0.0, D_M, 3.5, sign * (THRESHOLD_DEG - 1.0))) is None
        assert rs.cuts_scene(PlatePose(0.0, D_M, 3.5, sign * (THRESHOLD_DEG + 1.0))) == "wall"
    # twice as far off: the threshold is asin(1.0 / 1.0) = 90 deg: never cut; half as far: about asin(0.25)
    assert rs.cuts_scene(PlatePose(0.0, 2 * D_M, 3.5, 89.0)) is None
    quarter = math.degrees(math.asin(0.25))
    assert rs.cuts_scene(PlatePose(0.0, 0.25, 3.5, quarter - 1.0)) is None
    assert rs.cuts_scene(PlatePose(0.0, 0.25, 3.5, quarter + 1.0)) == "wall"
    # pitch tilts the 1 m height: its lower edge reaches the wall when 0.5 m x sin(pitch) > 0.25 m: 30 deg
    assert rs.cuts_scene(PlatePose(0.0, 0.25, 3.5, 0.0, 29.0)) is None
    assert rs.cuts_scene(PlatePose(0.0, 0.25, 3.5, 0.0, 31.0)) == "wall"


def test_plate_through_the_ground_and_within_its_thickness_of_the_wall_cuts(wall):
    _, exp, rs = wall
    assert rs.cuts_scene(PlatePose(0.0, 5.0, 0.45, 0.0)) == "ground"  # 1 m tall, centre 0.45 m up
    assert rs.cuts_scene(PlatePose(0.0, 5.0, 0.55, 0.0)) is None
    assert exp.reflector.thickness_m == THICKNESS_M
    half_t = 0.5 * THICKNESS_M  # 5 mm: a plate flat on the wall is in it
    assert rs.cuts_scene(PlatePose(0.0, 0.8 * half_t, 3.5, 0.0)) == "wall"
    assert rs.cuts_scene(PlatePose(0.0, 1.5 * half_t, 3.5, 0.0)) is None


def test_several_plates_in_one_launch_name_the_plate(wall):
    _, _, rs = wall
    ok, cut = PlatePose(0.0, D_M, 3.5, 0.0), PlatePose(0.0, D_M, 3.5, THRESHOLD_DEG + 1.0)
    poses = [JointPose(plates=[ok, ok]), JointPose(plates=[ok, cut]), JointPose(plates=[cut, cut])]
    assert rs.plate_cuts([ok, cut], [0, 0]) == [None, "wall"]
    from optimizer.physics.scene import RadioScene

    data = wall_data(rs.scene_xml.parent)
    plate = data.pop("reflector")
    data["reflectors"] = [dict(plate, name="a"), dict(plate, name="b", bounds={"min": [8.0, D_M, 3.0],
                                                                                  "max": [9.0, D_M, 4.0]})]
    rs2 = RadioScene(parse_experiment(data, "t"), device="cpu", threads=1)
    assert rs2.scene_cuts(poses) == [None, (1, "wall"), (0, "wall")]


def test_search_rejects_a_step_that_would_cut_and_starts_never_cut(wall):
    from optimizer.search.starts import initial_poses
    from optimizer.search.world import World

    _, exp, rs = wall
    span = exp.reflector.yaw_deg.max - exp.reflector.yaw_deg.min
    start = PlatePose(0.0, D_M, 3.5, THRESHOLD_DEG - 2.0)  # 28 deg
    w = World(exp, 0, start, radio_scene=rs, baseline_rss=np.array([-120.0, -120.0]))
    yaw_axis = 3
    grad = np.zeros(w.space.dim)
    grad[yaw_axis] = 1.0
    before = w.unit.copy()
    # an Adam step of 27 deg, halved to 13.5, 6.75, 3.4: every one lands past 30 deg: rejected, pose kept
    w.adam_ascent(grad, 27.0 / span)
    assert np.array_equal(w.unit, before) and w.t == 0 and rs.cuts_scene(w.pose) is None
    # a step of 6 deg: 34 and 31 cut, its half-half 1.5 deg (29.5) does not: taken
    w.adam_ascent(grad, 6.0 / span)
    assert w.pose.first.yaw_deg == pytest.approx(start.yaw_deg + 1.5, abs=1e-6)
    assert rs.cuts_scene(w.pose) is None
    for _ in range(2):  # whole steps (exploration, Adam, truth): every pose traced is mountable
        assert rs.cuts_scene(w.step().pose) is None
    # starts: uniform draws in yaw 0..60 would put half past 30 deg; none is a start
    starts = initial_poses(exp, rs, 8)
    assert len(starts) == 8 and all(p.first.yaw_deg < THRESHOLD_DEG for p, _ in starts)
    unchecked = initial_poses(exp, None, 8)  # without the scene: the same draws, some cutting
    assert any(p.first.yaw_deg > THRESHOLD_DEG for p, _ in unchecked)
    # a reused world's start: explore's candidates skip the cutting half of the box
    from optimizer.search import reuse
    from optimizer.search.space import PoseSpace

    space = PoseSpace.of(exp, rs)
    for seed in range(4):
        pose = reuse.explore_start(space, np.zeros((1, space.dim)), np.random.default_rng(seed))
        assert pose.first.yaw_deg < THRESHOLD_DEG
    parent = JointPose.of(PlatePose(0.0, D_M, 3.5, THRESHOLD_DEG - 1.0))  # exploit: up to 8 x 2 % of 60 deg
    for seed in range(8):
        pose, _ = reuse.exploit_start(space, reuse.tolerances(exp), parent, [], np.random.default_rng(seed))
        assert rs.cuts_scene(pose) is None
    with pytest.raises(ConfigError, match=r"search.initial_poses\[0\].*cuts 'wall'"):
        initial_poses(parse_experiment(dict(wall_data(rs.scene_xml.parent), search={
            "worlds": 2, "steps": 2, "initial_poses": [[0.0, D_M, 3.5, 45.0]]}), "t"), rs, 2)


class _Truth:
    """The real scene's ray test; a truth that covers everywhere (counting what it is asked to trace)."""

    def __init__(self, rs):
        self.rs, self.traced = rs, []

    def scene_cuts(self, poses):
        return self.rs.scene_cuts(poses)

    def rss_dbm(self, pose, samples_per_src=None):
        self.traced.append(JointPose.of(pose))
        return np.full(2, -60.0)


def test_tolerance_box_that_cuts_fails_untraced_and_the_margin_is_where_it_reaches_the_wall(wall):
    from optimizer.physics import tolerance

    folder, _, rs = wall
    exp = parse_experiment(wall_data(folder, tolerance={"position_m": 0.0, "yaw_deg": 1.0, "pitch_deg": 0.0}), "t")
    truth = _Truth(rs)
    ok, _ = tolerance.check(truth, JointPose.of(PlatePose(0.0, D_M, 3.5, THRESHOLD_DEG - 2.0)), exp)
    assert ok.holds and ok.cut_by is None and len(truth.traced) == 1 + 2 + 8
    truth.traced.clear()
    near = JointPose.of(PlatePose(0.0, D_M, 3.5, 29.5))  # its +1 deg corner is at 30.5 deg
    chk, raw = tolerance.check(truth, near, exp)
    assert not chk.holds and chk.cut_by == "plate 'plate-1' cuts 'wall'" and chk.plates[0].cut_by == "wall"
    assert chk.cut_offset[3] > THRESHOLD_DEG - 29.5 and chk.failing_offsets[0] == chk.cut_offset
    assert all(p.first.yaw_deg < THRESHOLD_DEG for p in truth.traced)  # a cutting pose is never traced
    assert len(raw["cut_offsets"]) >= 1 and len(truth.traced) == 1 + 2 + 8 - len(raw["cut_offsets"])
    assert any("cuts 'wall'" in line for line in tolerance.suggestions(rs, exp, chk, 0.5))
    truth.traced.clear()
    fast, _ = tolerance.check(truth, near, exp, fail_fast=True, nominal_rss=np.full(2, -60.0))
    assert not fast.holds and not fast.complete and truth.traced == []  # fail-fast: nothing traced
    # the box holds up to +-(threshold - 29.5 deg) = +-0.21 deg: the bisection's 1/32 resolution
    scale, _ = tolerance.margin(truth, exp, chk)
    edge = THRESHOLD_DEG - near.first.yaw_deg
    assert edge - 1.0 / 32 <= scale <= edge


def test_preflight_errs_when_every_sampled_pose_cuts_and_warns_with_the_share(wall, capsys):
    from optimizer.search.driver import BOX_CUT_SAMPLES, check_boxes_clear

    folder, exp, rs = wall
    check_boxes_clear(exp, rs)  # yaw 0..60: the half past 30 deg cuts
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "warning: reflector.bounds" in err[0] and "'wall'" in err[0]
    cut = int(err[0].split(" at ")[1].split(" of ")[0])
    assert abs(cut / BOX_CUT_SAMPLES - 0.5) < 0.1  # P(yaw > 30 deg) for yaw ~ U(0, 60): 1/2
    check_boxes_clear(parse_experiment(wall_data(folder, yaw=(0.0, 25.0)), "t"), rs)
    assert capsys.readouterr().err == ""
    with pytest.raises(ConfigError) as e:
        check_boxes_clear(parse_experiment(wall_data(folder, yaw=(35.0, 90.0)), "t"), rs)
    line = str(e.value)
    assert len(line.splitlines()) == 1 and line.startswith("reflector.bounds:") and "'wall'" in line
    assert "at least half the plate's width (1 m)" in line


def test_cli_evaluate_refuses_a_cutting_pose_and_run_exits_2_writing_nothing(wall):
    folder, _, _ = wall
    f = write_yaml(folder.parent / "e.yaml", wall_data(folder))
    r = subprocess.run([sys.executable, "-m", "optimizer.cli", "evaluate", str(f), "--pose=0,0.5,3.5,45"],
                       capture_output=True, text=True, cwd=REPO, timeout=600)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert len(lines) == 1 and "--pose" in lines[0] and "cuts through 'wall'" in lines[0], lines
    bad = write_yaml(folder.parent / "bad.yaml", wall_data(folder, yaw=(35.0, 90.0)))
    r = subprocess.run([sys.executable, "-m", "optimizer.cli", "run", str(bad)], capture_output=True, text=True,
                       cwd=REPO, timeout=600)
    lines = [ln for ln in r.stderr.strip().splitlines() if "error" in ln]
    assert r.returncode == 2 and len(lines) == 1 and "reflector.bounds" in lines[0] and "'wall'" in lines[0]
    assert "Traceback" not in r.stderr and not (folder.parent / "results" / "cut").exists()


def test_grid_skips_cutting_poses(wall):
    from optimizer.search.grid import grid_search

    folder, _, rs = wall
    exp = parse_experiment(dict(wall_data(folder), reflector=dict(
        wall_data(folder)["reflector"], bounds={"min": [0.0, D_M, 3.5], "max": [0.0, D_M, 3.5]})), "t")
    truth = _Truth(rs)
    res = grid_search(exp, truth, 1.0, 15.0, progress=False)  # yaw 0, 15 | 30, 45, 60 past the threshold
    assert res["skipped_cut"] == 3 and [p.first.yaw_deg for p in truth.traced] == [0.0, 15.0]
    assert res["evaluations"] == 2 and res["pose"].first.yaw_deg in (0.0, 15.0)
