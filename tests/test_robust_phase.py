"""The robust phase (optimizer.search.robust_phase, `search.robust_phase: halving`): on a stand-in truth whose
box worst cases are known in closed form, it stops a candidate whose nominal bound is below the best
confirmed worst case without tracing it, refutes one whose box falls below that bar at its first poses,
and ends on the same winner as checking and polishing every candidate; a check in the model's order finds
the same worst case as the box's own order; `every_world` leaves the worlds' own checks as they were."""

import numpy as np
import pytest

from optimizer.physics import tolerance
from optimizer.objectives import default
from optimizer.physics.metrics import rss_stats
from optimizer.records import JointPose
from optimizer.records import PlatePose as Pose
from optimizer.search import robust_phase
from worlds_helpers import street

TOL = {"position_m": 0.05, "yaw_deg": 1.0, "pitch_deg": 1.0}
YAW = 175.0
# (centre x [m], peak [dBm], curvature [dB/m^2]) of each candidate's hill: A is the best nominal, but B's
# flat hill has the best worst case over the box; C's nominal is below B's worst case (stopped untraced);
# D's nominal is above it, its steep hill's box below (refuted after a pose or two)
HILLS = {"A": (21.0, -60.0, 400.0), "B": (23.0, -60.3, 10.0), "C": (25.0, -61.5, 10.0), "D": (27.0, -60.2, 400.0)}


class _HillsTruth:
    """A stand-in for the ray tracer: two targets, both at the highest of the hills at the plate's x."""

    device = "cpu"
    targets = np.array([[24.0, -32.0, 1.5], [25.0, -32.0, 1.5]])

    def __init__(self):
        self.calls = 0
        self.samples = []  # the sample count of each call (None: the run's)

    def rss_dbm(self, pose=None, samples_per_src=None, **kw):
        self.calls += 1
        self.samples.append(samples_per_src)
        if pose is None:
            return np.full(2, -120.0)
        x = JointPose.of(pose).plates[0].x
        return np.full(2, max(h - s * (x - c) ** 2 for c, h, s in HILLS.values()))

    def visible(self, a, b):
        return np.ones(len(np.atleast_2d(a)), bool)


def _exp(phase="halving"):
    return street(**{"reflector.tolerance": TOL, "search.robust_polish_boxes": 3.0, "search.robust_phase": phase})


def _pose(name):
    return JointPose.of(Pose(HILLS[name][0], 8.0, 5.0, YAW))


def _candidates(truth, exp):
    thr = exp.objective.coverage_threshold_dbm
    return [robust_phase.Candidate(i, _pose(n), rss_stats(truth.rss_dbm(_pose(n)), thr)) for i, n in enumerate(HILLS)]


def test_halving_stops_what_cannot_win_and_keeps_what_can():
    """Against checking and polishing every candidate in full (today's `every_world`): the same winner with
    the same worst case; C costs nothing, D at most its nominal and two box poses; fewer evaluations."""
    from optimizer.search import robust
    from optimizer.search.space import PoseSpace

    exp, truth = _exp(), _HillsTruth()
    cands = _candidates(truth, exp)
    assert [c.world for c in sorted(cands, key=lambda c: c.bound, reverse=True)] == [0, 3, 1, 2]
    # every candidate in full: the best polished worst case (independent of the phase's bookkeeping)
    full, spent_all = [], 0
    for c in cands:
        before = truth.calls
        chk, raw = tolerance.check(truth, c.pose, exp, fail_fast=True)
        polished, _ = robust.worst_case_polish(truth, exp, PoseSpace.of(exp, truth), chk, raw, robust.budget(exp))
        spent_all += truth.calls - before
        full.append(polished)
    best_full = max(range(len(full)), key=lambda i: (full[i].holds, default().score(full[i].worst)))
    assert best_full == 1  # B, by construction
    # closed form: B's box worst is its hill at the box's farthest x (the box in the wall's frame: along and
    # off the wall both move x in a frame of this yaw)
    a = np.radians(tolerance.frames(truth, exp)[0].yaw_deg)
    e = TOL["position_m"] * (abs(np.cos(a)) + abs(np.sin(a)))
    assert full[1].worst_min_rss_dbm <= -60.3 - 10.0 * e ** 2 + 1e-9

    truth.calls = 0
    phase = robust_phase.Phase(exp, np.full(2, -120.0), lambda s: truth, lambda s: exp, parallel=False)
    phase.run(sorted(cands, key=lambda c: c.bound, reverse=True))
    assert phase.leader.cand.world == 1
    assert phase.leader.chk.worst_min_rss_dbm == pytest.approx(full[1].worst_min_rss_dbm, abs=1e-9)
    assert phase.leader.chk.complete and phase.leader.chk.holds
    assert 2 not in phase.spent  # C: stopped by its nominal bound, never traced
    assert phase.spent[3] <= 3 and phase.stats.refuted_after == [phase.spent[3] - 1]  # D: its nominal, then
    # refuted at its first box poses
    assert phase.stats.polished == 2 and phase.stats.stopped == 2 and phase.stats.checked == 3
    assert phase.stats.evaluations == truth.calls == sum(phase.spent.values()) < spent_all
    # cheap screening, full confirmation: the polish's screens at a quarter of the samples, the answer's box
    # at the run's count
    quarter = round(0.25 * exp.solver.samples_per_src)
    assert quarter in truth.samples and set(truth.samples) <= {None, quarter}
    assert phase.leader.chk.samples_per_src == exp.solver.samples_per_src


def test_a_bound_below_the_bar_is_never_checked_and_a_better_nominal_always_is():
    """The rule itself: a candidate whose nominal is above the leader's confirmed worst case is checked
    (its check is the only thing that can refute it); one at or below it is not."""
    exp, truth = _exp(), _HillsTruth()
    a, _, c, d = _candidates(truth, exp)
    phase = robust_phase.Phase(exp, None, lambda s: truth, lambda s: exp, parallel=False)
    phase.run([a])
    bar = default().score(phase.leader.chk.worst)
    assert default().score(d.nominal) > bar > default().score(c.nominal)
    assert d.bound > phase.leader.rank > c.bound
    assert robust_phase.stop_score(d, phase.leader) == bar


@pytest.mark.parametrize("name", ["A", "B", "D"])
def test_the_model_ordered_check_finds_the_same_worst_case(name):
    """The box traced in the model's order (or any order) has the same worst case, coverage and poses as in
    its own order; the order is a permutation of the box."""
    exp, truth = _exp(), _HillsTruth()
    pose = _pose(name)
    nominal = truth.rss_dbm(pose)
    order = robust_phase.model_order(truth, exp, pose, nominal, np.full(2, -120.0))
    n = tolerance.box_cost(exp)
    assert order is not None and sorted(order) == list(range(n))
    plain, raw0 = tolerance.check(truth, pose, exp)
    for o in (order, list(reversed(range(n)))):
        chk, raw = tolerance.check(truth, pose, exp, order=o)
        assert chk.worst_min_rss_dbm == plain.worst_min_rss_dbm and chk.holds == plain.holds and chk.complete
        assert sorted(map(tuple, raw["offsets"])) == sorted(map(tuple, raw0["offsets"]))
        assert tuple(chk.worst_offset) in {tuple(o) for o in raw0["offsets"]} | {(0.0,) * 5}


def _collected(exp, truth, names):
    from optimizer.search.tune import Collected
    from optimizer.search.world import World

    out = []
    for i, n in enumerate(names):
        w = World(exp, i, _pose(n).first, radio_scene=truth, baseline_rss=truth.rss_dbm(None))
        w.truth(w.unit)
        w.finish()  # under halving: nothing (the driver's phase checks)
        out.append(Collected(world=i, status="completed", config={}, state=w.get_state()))
    return out


def test_the_phase_writes_each_worlds_check_and_counts_every_evaluation():
    exp, truth = _exp(), _HillsTruth()
    collected = _collected(exp, truth, ["A", "B", "C"])
    assert all(c.state.tolerance is None for c in collected)
    before = [c.state.evaluations for c in collected]
    truth.calls = 0
    out, stats = robust_phase.run(exp, collected, np.full(2, -120.0), lambda s: truth, lambda s: exp,
                                  lambda cfg: (0, None), parallel=False)
    assert stats.evaluations == truth.calls
    assert sum(c.state.evaluations for c in out) - sum(before) == truth.calls
    assert out[1].state.tolerance.holds and out[1].state.tolerance.complete
    assert out[2].state.tolerance is None  # C: stopped untraced


def test_every_world_keeps_todays_checks():
    """`every_world`: each world checks and polishes at its end (World.finish) and the driver's phase does
    nothing; `halving`: the world does not."""
    truth = _HillsTruth()
    exp = _exp("every_world")
    collected = _collected(exp, truth, ["A", "B"])
    assert all(c.state.tolerance is not None and c.state.tolerance.complete for c in collected)
    calls = truth.calls
    out, stats = robust_phase.run(exp, collected, None, lambda s: truth, lambda s: exp, lambda cfg: (0, None))
    assert stats is None and out == collected and truth.calls == calls


def test_under_sizes_a_smaller_plate_that_could_hold_is_never_stopped_by_the_bar():
    """sizes_m: a holding leader stops a larger plate by its bound alone (the smaller plate that holds wins
    whatever its worst case), and a smaller plate's check has no bar (it wins if it holds)."""
    exp, truth = _exp(), _HillsTruth()
    a, b, c, _ = _candidates(truth, exp)
    a.area = 1
    phase = robust_phase.Phase(exp, None, lambda s: truth, lambda s: exp, parallel=False)
    phase.run([a])
    assert phase.leader.chk.holds
    c.area, b.area = 0, 2
    assert robust_phase.stop_score(c, phase.leader) is None and c.bound > phase.leader.rank
    assert b.bound < phase.leader.rank  # a larger plate: stopped untraced, however good its nominal


def test_the_phase_says_where_the_truths_worst_was_in_the_models_order():
    """Every complete check traced in the model's order reports where the truth's worst box pose sat in it,
    read back from the traced rows (independently of the phase: the order recomputed, the worst by value)."""
    exp, truth = _exp(), _HillsTruth()
    b = _candidates(truth, exp)[1]
    r = robust_phase.check(truth, exp, b, None, np.full(2, -120.0))
    assert r.chk.complete and r.worst_at is not None
    order = robust_phase.model_order(truth, exp, b.pose, truth.rss_dbm(b.pose), np.full(2, -120.0))
    offsets = np.vstack(tolerance.plate_offsets(exp))
    yaw = tolerance.frames(truth, exp)[0].yaw_deg
    mins = [truth.rss_dbm(tolerance.moved(b.pose, 0, offsets[i], yaw)).min() for i in order]
    assert mins[r.worst_at] == min(mins)


def test_the_freed_reserve_goes_to_the_search_and_the_total_is_fixed():
    """The run's truth budget under halving: worlds x steps plus 1.5 allowances (a box check and its polish);
    the phase is budgeted at one allowance plus 3 per world and the rest is given to the search as steps,
    so the planned total never exceeds the fixed one; nothing is freed without a phase."""
    exp = _exp()
    w, box = exp.search.worlds, tolerance.box_cost(exp)
    allowance = box + int(3.0 * box)  # robust_polish_boxes: 3 (the experiment above)
    assert robust_phase.allowance(exp) == allowance
    assert robust_phase.phase_budget(exp) == allowance + 3 * w
    extra = robust_phase.freed_steps(exp)
    assert extra == min((int(1.5 * allowance) - allowance - 3 * w) // w, exp.search.steps // 2) and extra > 0
    short = _exp().model_copy(update={"search": exp.search.model_copy(update={"steps": 3})})
    assert robust_phase.freed_steps(short) == 1  # at most half the run's own steps: a small run stays small
    new = robust_phase.with_freed_steps(exp)
    assert new.search.steps == exp.search.steps + extra and exp.search.steps == _exp().search.steps  # a copy
    assert w * new.search.steps + robust_phase.phase_budget(new) <= w * exp.search.steps + int(1.5 * allowance)
    for other in (_exp("every_world"), street(**{"search.robust_phase": "halving"})):  # no phase: nothing freed
        assert robust_phase.with_freed_steps(other) is other


def test_the_phase_polishes_within_its_budget_and_checks_are_never_cut():
    """With a budget that one box check uses up, nothing is polished, but the challenger whose box beats
    the leader's is still checked in full (a check is never cut short by the budget) and wins."""
    exp, truth = _exp(), _HillsTruth()
    a, b, _, _ = _candidates(truth, exp)
    box = tolerance.box_cost(exp)
    phase = robust_phase.Phase(exp, None, lambda s: truth, lambda s: exp, parallel=False, budget=box + 1)
    phase.run([a, b])
    assert phase.leader.cand.world == 1 and phase.leader.chk.complete and phase.leader.chk.holds
    assert phase.stats.polished == 0 and phase.spent == {0: box + 1, 1: box + 1}  # nominal + whole box each
    roomy = robust_phase.Phase(exp, None, lambda s: truth, lambda s: exp, parallel=False)
    roomy.run([a, b])
    assert roomy.stats.polished >= 1 and roomy.stats.evaluations > phase.stats.evaluations


def test_the_polish_stops_once_a_move_gains_little():
    """`stop_gain_db`: the climb ends after the first confirmed move that gained less than it; with an
    infinite threshold that is the first move, at fewer evaluations than the full climb, and better."""
    from optimizer.search import robust
    from optimizer.search.space import PoseSpace

    exp, truth = _exp(), _HillsTruth()
    pose = JointPose.of(Pose(HILLS["B"][0] + 0.3, 8.0, 5.0, YAW))  # on B's flank: room to climb
    chk, raw = tolerance.check(truth, pose, exp)
    space = PoseSpace.of(exp, truth)
    full, spent_full = robust.worst_case_polish(truth, exp, space, chk, raw, 10_000)
    one, spent_one = robust.worst_case_polish(truth, exp, space, chk, raw, 10_000, stop_gain_db=np.inf)
    assert chk.worst_min_rss_dbm < one.worst_min_rss_dbm <= full.worst_min_rss_dbm
    assert spent_one < spent_full


def test_challengers_checked_in_turn_meet_the_best_result_so_far():
    """A Ray task checks its challengers in turn against the best result it knows: B beats the leader A, so B's
    neighbour B' (the same world's second candidate, just off B's peak) is refuted at B's worst case after a
    few box poses, where against A's lower worst case its whole box would have been traced."""
    exp, truth = _exp(), _HillsTruth()
    a, b, _, _ = _candidates(truth, exp)
    thr = exp.objective.coverage_threshold_dbm
    near = JointPose.of(Pose(HILLS["B"][0] + 0.06, 8.0, 5.0, YAW))
    b2 = robust_phase.Candidate(1, near, rss_stats(truth.rss_dbm(near), thr))
    leader = robust_phase.check(truth, exp, a, None, None)
    assert leader.chk.complete and leader.chk.holds
    box = tolerance.box_cost(exp)
    alone = robust_phase.check(truth, exp, b2, robust_phase.stop_score(b2, leader), None)
    assert alone.chk.complete and alone.evaluations == box + 1  # against A's bar: the whole box
    r_b, r_b2 = robust_phase.check_in_turn(lambda size, e: truth, [(b, exp), (b2, exp)], leader, None)
    assert r_b.rank > leader.rank and r_b.chk.complete
    assert r_b2.refuted_after is not None and r_b2.evaluations < box + 1 and r_b2.rank <= r_b.rank


def test_challengers_are_dealt_out_with_a_worlds_candidates_together():
    exp, truth = _exp(), _HillsTruth()
    thr = exp.objective.coverage_threshold_dbm
    cands = [robust_phase.Candidate(w, _pose("A"), rss_stats(truth.rss_dbm(_pose("A")), thr))
             for w in (4, 4, 1, 2, 2, 3)]
    groups = robust_phase.chunks(cands, 2)
    assert sorted(len(g) for g in groups) == [3, 3]
    for g in groups:  # no world split over two tasks
        assert all(c.world not in {d.world for d in other} for other in groups if other is not g for c in g)
    assert [c.world for c in groups[0]][:2] == [4, 4]  # the best world first, its candidates in their order
    assert len(robust_phase.chunks(cands, 8)) == 4  # no empty task
