"""The worst-case polish (optimizer.search.robust): from a nominal optimum on a coverage cliff it moves the pose
to where the whole tolerance box holds, against the analytic robust optimum of a stand-in truth; within its
stated budget; and the early-stopping check it confirms moves with."""

import math

import numpy as np
import pytest

from optimizer.physics import tolerance
from optimizer.objectives import default
from optimizer.physics.metrics import rss_stats
from optimizer.records import JointPose
from optimizer.records import PlatePose as Pose
from worlds_helpers import street

CLIFF_X, PEAK_X = 24.0, 24.2  # [m] target 0 loses coverage beyond CLIFF_X; both peak at PEAK_X
TOL = {"position_m": 0.05, "yaw_deg": 1.0, "pitch_deg": 1.0}


class _CliffTruth:
    """A stand-in for the ray tracer: two targets whose RSS is a concave quadratic of the plate's x, best at
    PEAK_X, where target 0 drops below the threshold (-90 dBm) beyond x = CLIFF_X: the nominal optimum among
    covering poses sits on the cliff. Yaw and y do not matter."""

    device = "cpu"
    targets = np.zeros((2, 3))

    def __init__(self):
        self.calls = 0

    def rss_dbm(self, pose=None, **kw):
        self.calls += 1
        if pose is None:
            return np.full(2, -120.0)
        x = JointPose.of(pose).plates[0].x
        rss = np.full(2, -60.0 - (x - PEAK_X) ** 2)
        if x > CLIFF_X:
            rss[0] = -120.0
        return rss

    def visible(self, a, b):
        return np.ones(len(np.atleast_2d(a)), bool)


def _exp(boxes=5.0, phase="every_world"):
    return street(**{"reflector.tolerance": TOL, "search.robust_polish_boxes": boxes, "search.steps": 2,
                     "search.robust_phase": phase})


def _half_extent_x(frame_yaw_deg: float) -> float:
    """The box's half-width in x: along-the-wall and off-the-wall offsets both move x in a wall frame of this
    yaw (the box is in the wall's frame, whatever the plate's yaw)."""
    a = math.radians(frame_yaw_deg)
    return TOL["position_m"] * (abs(math.cos(a)) + abs(math.sin(a)))


def test_from_the_cliff_edge_to_the_robust_optimum_within_one_tolerance():
    """Start 1 cm inside the cliff (the box crosses it: the check fails). The polish ends at a pose whose box
    holds, with its x within one tolerance (ROBUST_MIN_TOL) below the analytic robust optimum
    x* = CLIFF_X - e (e: the box's half-extent in x in the wall frame: the street box's long axis is x, so
    e = 5 cm at any yaw), and never beyond it."""
    from optimizer.constants import ROBUST_MIN_TOL
    from optimizer.search import robust
    from optimizer.search.space import PoseSpace

    exp = _exp()
    truth = _CliffTruth()
    space = PoseSpace.of(exp, truth)
    start = JointPose.of(Pose(CLIFF_X - 0.01, 8.0, 5.0, 175.0))
    chk, raw = tolerance.check(truth, start, exp, fail_fast=True)
    assert not chk.holds and chk.nominal.all_covered
    before = truth.calls
    limit = robust.budget(exp)
    new, spent = robust.worst_case_polish(truth, exp, space, chk, raw, limit)
    assert spent == truth.calls - before and 0 < spent <= limit
    assert new.holds and new.complete
    p = new.pose.first
    frame_yaw = 180.0  # the box runs along x (0 or 180: the one nearer the yaw range 90-180)
    assert tolerance.frames(truth, exp)[0].yaw_deg == frame_yaw
    x_star = CLIFF_X - _half_extent_x(frame_yaw)
    assert x_star - ROBUST_MIN_TOL * TOL["position_m"] - 1e-6 <= p.x <= x_star + 1e-9, (p.x, x_star)
    # the worst case is the box's far side from the peak: independent of the search's own bookkeeping
    expected = -60.0 - (PEAK_X - (p.x - _half_extent_x(frame_yaw))) ** 2
    assert new.worst_min_rss_dbm == pytest.approx(expected, abs=1e-9)


def test_a_world_ends_on_the_polished_pose_and_counts_its_evaluations():
    """`World.finish` runs the polish after its check: the world's result holds, and every truth evaluation
    (the start, the check, the polish) is in `world.evaluations`; with robust_polish_boxes 0 it is off."""
    from optimizer.search.world import World

    for boxes, holds in ((5.0, True), (0.0, False)):
        truth = _CliffTruth()
        exp = _exp(boxes)
        w = World(exp, 0, Pose(CLIFF_X - 0.01, 8.0, 5.0, 175.0), radio_scene=truth, baseline_rss=truth.rss_dbm(None))
        w.truth(w.unit)
        w.finish()
        assert w.tolerance.holds is holds
        assert w.evaluations == truth.calls - 1  # all but the baseline


def test_the_polish_never_leaves_a_pose_that_already_holds_for_a_worse_one():
    """From a pose whose box holds, the result's worst case is at least the start's (moves are confirmed on
    the whole box)."""
    from optimizer.search import robust
    from optimizer.search.space import PoseSpace

    exp = _exp(3.0)
    truth = _CliffTruth()
    chk, raw = tolerance.check(truth, JointPose.of(Pose(23.5, 8.0, 5.0, 175.0)), exp, fail_fast=True)
    assert chk.holds
    new, _ = robust.worst_case_polish(truth, exp, PoseSpace.of(exp, truth), chk, raw, robust.budget(exp))
    assert new.worst_min_rss_dbm >= chk.worst_min_rss_dbm and new.holds


def test_check_stops_at_the_first_pose_no_better_than_stop_at_score():
    """`stop_at_score`: nothing beyond the nominal pose is traced when the nominal is already no better; else
    the check stops at the first box pose at or below it (and says it is incomplete)."""
    exp = _exp()
    truth = _CliffTruth()
    pose = JointPose.of(Pose(23.5, 8.0, 5.0, 175.0))
    nominal = default().score(rss_stats(truth.rss_dbm(pose), exp.objective.coverage_threshold_dbm))
    truth.calls = 0
    chk, raw = tolerance.check(truth, pose, exp, stop_at_score=nominal + 1.0)
    assert truth.calls == 1 and not chk.complete and raw["rss"].shape[0] == 0
    full, full_raw = tolerance.check(truth, pose, exp)
    scores = [default().score(rss_stats(r, exp.objective.coverage_threshold_dbm)) for r in full_raw["rss"]]
    floor = float(np.min(scores))  # the box's worst pose: the nominal one is above it
    first = next(i for i, s in enumerate(scores) if s <= floor)
    truth.calls = 0
    part, part_raw = tolerance.check(truth, pose, exp, stop_at_score=floor)
    assert truth.calls == first + 2 and not part.complete  # the nominal pose, then up to the first at or below
    np.testing.assert_array_equal(part_raw["offsets"], full_raw["offsets"][: first + 1])
