"""Throughput (issue 13): the batched surrogate and ray tests give what the one-at-a-time forms gave, a pose
already mounted is not rewritten, and `calibrate`'s concurrent-world measurement and its recommendation."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from optimizer.physics import backend
from optimizer.physics.geometry import plate_corners, wavelength_m
from optimizer.physics.tolerance import corner_offsets, half_widths
from optimizer.records import JointPose, PlatePose
from optimizer.search import throughput
from worlds_helpers import REPO, street, write_yaml

TOL = {"position_m": 0.05, "yaw_deg": 1.0, "pitch_deg": 1.0}


@pytest.fixture(scope="module")
def scene():
    from optimizer.physics.scene import RadioScene

    exp = street(**{"solver.max_depth": 2, "solver.samples_per_src": 20000, "reflector.tolerance": TOL})
    return exp, RadioScene(exp, device="cpu", threads=2)


@pytest.mark.parametrize("aperture", [False, True])
def test_batched_surrogate_equals_one_pose_at_a_time(aperture):
    """`evaluate_many` over 12 poses (two Tx, the 32 tolerance corners, occlusion, a focus mask) gives each pose
    the objective and per-target power `evaluate` gives it alone, to 1e-3 dB (float32 sums in another order)."""
    backend.init("cpu", threads=2)
    from optimizer.physics.surrogate import PlateSurrogate

    tx = np.array([[-45.0, 0.0, 10.0], [0.0, 0.0, 10.0]])
    tg = np.array([[24.0, -20.0, 1.5], [22.0, -30.0, 1.5], [27.0, -25.0, 1.5], [25.0, -28.0, 1.5]])
    s = PlateSurrogate(tx, [30.0, 20.0], tg, [[2.0, 1.0]], wavelength_m(3.5e9), aperture=aperture)
    rng = np.random.default_rng(4)
    poses = np.column_stack([rng.uniform(20, 28, 12), rng.uniform(6, 9, 12), rng.uniform(3, 7, 12),
                             rng.uniform(100, 170, 12), rng.uniform(-10, 10, 12)])
    occl = 20.0 * (rng.random((12, 2, 4)) < 0.3)
    off = corner_offsets(half_widths(street(**{"reflector.tolerance": TOL}).reflector.tolerance))
    focus = np.array([True, True, False, True])
    kw = dict(focus=focus, temperature_db=1.5, offsets=off)
    many = s.evaluate_many(poses, 0.8, occlusion_db=occl, **kw)
    one = [s.evaluate(p, 0.8, occlusion_db=o, grad=False, **kw) for p, o in zip(poses, occl)]
    ref_obj = np.array([r["objective"] for r in one])
    assert np.ptp(ref_obj) > 1.0  # the poses differ: a mix-up of lanes would show
    assert np.max(np.abs(many["objective"] - ref_obj)) < 1e-3
    assert np.max(np.abs(many["power_dbm"] - np.stack([r["power_dbm"] for r in one]))) < 1e-3


def test_ray_tests_ignore_the_plate_without_moving_it(scene):
    """`visible` (the plate-free scene) equals parking the plate and testing the whole scene, on 4000 random
    segments of which the mounted plate blocks some; the plate stays where it was."""
    exp, rs = scene
    pose = PlatePose(24.0, 8.0, 5.0, 135.0)
    rs.set_pose(pose)
    c = np.array([24.0, 8.0, 5.0])
    rng = np.random.default_rng(2)
    o = c + rng.uniform(-15, 15, (4000, 3))
    e = 2 * c - o + rng.uniform(-1, 1, (4000, 3))  # through the plate's neighbourhood
    o[:, 2], e[:, 2] = np.clip(o[:, 2], 0.5, 20), np.clip(e[:, 2], 0.5, 20)
    with_plate = rs.segments_clear(o, e)
    calls = []
    orig = rs.write_plate_vertices
    rs.write_plate_vertices = lambda *args: (calls.append(args), orig(*args))
    try:
        got = rs.visible(o, e)
    finally:
        del rs.write_plate_vertices
    assert calls == []  # not parked and restored: nothing rebuilt
    rs.park_plate()
    want = rs.segments_clear(o, e)
    rs.set_pose(pose)
    assert (want & ~with_plate).sum() >= 20  # the plate blocks these: the test would see it counted
    assert np.array_equal(got, want)


def test_a_mounted_pose_is_not_rewritten_but_a_foreign_write_is_undone(scene):
    """set_pose of the pose already mounted writes nothing; after a direct vertex write (the sionna mode's)
    set_pose writes the pose again; park then set_pose restores it."""
    exp, rs = scene
    a = JointPose.of(PlatePose(23.0, 8.0, 5.0, 120.0))
    want = plate_corners(a.first, exp.reflector.size_m)
    rs.set_pose(a)
    calls = []
    orig = rs.write_plate_vertices
    rs.write_plate_vertices = lambda *args: (calls.append(args), orig(*args))
    try:
        rs.set_pose(a)
        assert calls == []
        orig(0, rs._mi.Float(plate_corners(PlatePose(0, 0, 50, 0), exp.reflector.size_m).ravel().astype(np.float32)))
        rs.set_pose(a)
        assert len(calls) == 1
        assert np.allclose(rs.plate_vertices(), want, atol=1e-4)
        rs.park_plate()
        assert rs.plate_vertices()[:, 2].max() < -1000
        rs.set_pose(a)
        assert np.allclose(rs.plate_vertices(), want, atol=1e-4)
    finally:
        del rs.write_plate_vertices


def test_recommendation_is_the_last_count_still_growing_ten_percent():
    assert throughput.world_counts("cpu", 2) == [1, 2]
    assert throughput.world_counts("cpu", 16, cpu_per_world=2) == [1, 2, 4, 8]
    assert throughput.world_counts("cuda", 2) == [1, 2, 4, 8, 16]
    counts = [1, 2, 4, 8, 16]
    assert throughput.recommend(counts, [9.3, 15.0, 19.7, 21.0, 22.4]) == 4  # +61 %, +31 %, then +7 %
    assert throughput.recommend(counts, [10, 20, 40, 80, 160]) == 16
    assert throughput.recommend(counts, [10, 10.5, 30, 60, 120]) == 1  # stops at the first shortfall
    assert throughput.recommend([1, 4], [10.0, 12.0]) == 1  # 1.2x over two doublings: +9.5 % each
    assert throughput.recommend([1, 4], [10.0, 12.2]) == 4


def test_calibrate_measures_concurrent_worlds_and_prints_values(tmp_path):
    """One and two concurrent world processes on the CPU, each after the same warm-up: a table of
    world-steps/s and the chart's values block (perGpu stays 4 without a GPU)."""
    exp = street(**{"solver.samples_per_src": 5000, "solver.max_depth": 1, "search.inner_steps": 1})
    f = write_yaml(tmp_path / "e.yaml", exp)
    proc = subprocess.run([sys.executable, "-m", "optimizer.cli", "calibrate", str(f), "--device", "cpu",
                           "--steps", "2", "--worlds", "1,2"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    rows = [line.split() for line in out.splitlines() if line.startswith("#") and line.split()[1:2] in (["1"], ["2"])]
    assert [r[1] for r in rows] == ["1", "2"] and all(float(r[2]) > 0 for r in rows)
    assert "largest count still growing >= 10 % per doubling:" in out
    assert out.rstrip().endswith("worlds:\n  perGpu: 4\n  cpuPerWorld: 1")


def test_calibrate_rejects_bad_world_counts(tmp_path):
    f = write_yaml(tmp_path / "e.yaml", street())
    proc = subprocess.run([sys.executable, "-m", "optimizer.cli", "calibrate", str(f), "--worlds", "1,x"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--worlds" in proc.stderr
