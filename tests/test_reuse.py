"""Freed budget reused (search.reuse) and duplicate worlds merged (search.merge): the rules without Ray, then
a real local Ray run."""

import numpy as np

from optimizer.records import JointPose, PlatePose
from optimizer.search import reuse
from optimizer.search.space import PoseSpace
from worlds_helpers import street

TOL = {"reflector.tolerance": {"position_m": 0.05, "yaw_deg": 1.0, "pitch_deg": 1.0}}


def _pose(x, y, z, yaw):
    return JointPose.single(PlatePose(x, y, z, yaw))


def test_same_mount_is_the_tolerance_box_and_two_sided_yaw():
    tol = street(**TOL).reflector.tolerance
    a = _pose(24.0, 8.0, 5.0, 179.6)
    assert reuse.same_mount(a, _pose(24.04, 7.97, 5.0, -0.2), tol)  # yaw 179.6 and -0.2: 0.2 deg apart
    assert not reuse.same_mount(a, _pose(24.06, 8.0, 5.0, 179.6), tol)  # 6 cm > 5 cm
    assert not reuse.same_mount(a, _pose(24.0, 8.0, 5.0, 178.4), tol)  # 1.2 deg > 1 deg
    off = street().reflector.tolerance  # tolerance off: still 1 cm / 0.1 deg
    assert reuse.same_mount(a, _pose(24.005, 8.0, 5.0, 179.65), off)
    assert not reuse.same_mount(a, _pose(24.02, 8.0, 5.0, 179.6), off)


def test_exploit_start_is_near_its_parent_at_the_tolerance_scale_and_not_a_running_world():
    exp = street(**TOL)
    space, tol = PoseSpace.of(exp), exp.reflector.tolerance
    parent = _pose(24.0, 8.0, 5.0, 135.0)
    rng = np.random.default_rng(0)
    for _ in range(50):
        pose, scale = reuse.exploit_start(space, tol, parent, [], rng)
        p = pose.first
        assert scale in reuse.EXPLOIT_SCALES
        assert abs(p.x - 24.0) <= scale * 0.05 + 1e-9 and abs(p.y - 8.0) <= scale * 0.05 + 1e-9
        assert abs(p.yaw_deg - 135.0) <= scale * 1.0 + 1e-9 and p.z == 5.0  # z is fixed by the bounds
        assert not reuse.same_mount(pose, parent, tol)
        assert space.contains(space.to_vec(pose))
    # a running world's pose is avoided (it would merge at once)
    pose, _ = reuse.exploit_start(space, tol, parent, [_pose(24.1, 8.05, 5.0, 137.0)], np.random.default_rng(1))
    assert not reuse.same_mount(pose, _pose(24.1, 8.05, 5.0, 137.0), tol)


def test_explore_start_is_far_from_every_visited_pose():
    exp = street()
    space = PoseSpace.of(exp)
    rng = np.random.default_rng(3)
    visited = np.array([space.to_unit(space.to_vec(_pose(x, 8.0, 5.0, yaw)))
                        for x in (20.0, 20.5, 21.0) for yaw in (90.0, 100.0, 110.0)])
    pose = reuse.explore_start(space, visited, rng)
    free = space.free.astype(float)
    d_new = np.sqrt((((space.to_unit(space.to_vec(pose)) - visited) * free) ** 2).sum(-1)).min()
    rand = np.array([space.project_unit(u) for u in np.random.default_rng(4).uniform(0, 1, (200, space.dim))])
    d_rand = np.sqrt((((rand[:, None] - visited[None]) * free) ** 2).sum(-1)).min(axis=1)
    assert d_new >= np.quantile(d_rand, 0.95)  # farther than 95 % of random poses
    assert pose.first.x > 24.0  # the visited corner is x 20-21 at low yaw


def _row(world, step, pose, best_score, done=False):
    from optimizer.records import RssStats, WorldStep

    stats = RssStats(min_rss_dbm=-80.0, p5_rss_dbm=-80.0, mean_rss_dbm=-70.0, coverage=0.5, no_path=0)
    row = WorldStep(world=world, step=step, pose=pose, truth=stats, objective_dbm=-80.0, best=stats,
                    best_score=best_score, best_pose=pose, evaluations=step, step_s=0.1).to_flat()
    row["done"] = done
    return row


def test_searcher_reuses_freed_budget_and_never_exceeds_it():
    from ray.tune.search import Searcher

    from optimizer.search.tune.searcher import WorldSearcher

    from optimizer.spec import RunSpec

    exp = street(**TOL)
    spec = RunSpec.of(exp)
    configs = [spec.trial_config(i, _pose(21.0 + i, 8.0, 5.0, 120.0), "uniform", [-200.0]) for i in range(4)]
    s = WorldSearcher(spec, configs, reuse="mixed", steps=10, grace_steps=2, seed=0)
    assert s.reuse_len == 5 and s.budget == 40
    got = [s.suggest(f"t{i}")["__world__"]["world"] for i in range(4)]
    assert got == [0, 1, 2, 3]
    assert s.suggest("t4") is None  # all planned: wait for a world to free budget
    for i, score in enumerate((-90.0, -60.0, -70.0, -80.0)):
        s.on_trial_result(f"t{i}", _row(i, 2, _pose(21.0 + i, 8.0, 5.0, 120.0), score))
    s.on_trial_complete("t0", _row(0, 2, _pose(21.0, 8.0, 5.0, 120.0), -90.0))  # pruned at 2: 8 steps free
    first = s.suggest("t4")["__world__"]
    assert first["world"] == 4 and first["start_kind"] == "exploit" and first["steps"] == 5
    assert first["parent"] == 1 and first["freed_by"] == 0  # the best world's pose, world 0's slot
    parent = _pose(22.0, 8.0, 5.0, 120.0)
    start = JointPose.model_validate(first["initial_pose"])
    assert not reuse.same_mount(start, parent, exp.reflector.tolerance)
    assert abs(start.first.x - 22.0) <= 8 * 0.05 + 1e-9
    assert s.suggest("t5") is None  # 3 steps left free: not enough for another
    s.on_trial_complete("t3", _row(3, 2, _pose(24.0, 8.0, 5.0, 120.0), -80.0))  # 8 more free
    second = s.suggest("t5")["__world__"]
    assert second["start_kind"] == "explore" and second["parent"] is None and second["freed_by"] == 3
    for t, w, n in (("t1", 1, 10), ("t2", 2, 10), ("t4", 4, 5), ("t5", 5, 5)):
        s.on_trial_complete(t, _row(w, n, _pose(22.0, 8.0, 5.0, 120.0), -60.0, done=True))
    # done as planned: 2 + 2 + 10 + 10 + 5 + 5 = 34 of 40 steps: room for one more reused world
    third = s.suggest("t6")
    assert third is not None and third["__world__"]["start_kind"] == "exploit"
    s.on_trial_complete("t6", _row(6, 5, _pose(22.0, 8.0, 5.0, 120.0), -60.0, done=True))
    assert s._committed() <= s.budget
    assert s.suggest("t7") == Searcher.FINISHED
    assert WorldSearcher(spec, configs, reuse="off", steps=10, grace_steps=2, seed=0).max_worlds == 4


class _Trial:
    def __init__(self, world):
        self.config = {"__world__": {"world": world}}
        self.trial_id = f"t{world}"


def test_the_worse_of_two_worlds_at_the_same_mount_stops():
    from ray.tune.schedulers import TrialScheduler

    from optimizer.search.tune.schedulers import MergingFIFO
    from optimizer.search.tune.state import RunState

    tol = street(**TOL).reflector.tolerance
    state = RunState()
    sch = MergingFIFO(tolerance=tol, merge=True, state=state)
    a, b, c = _Trial(0), _Trial(1), _Trial(2)
    here, there = _pose(24.0, 8.0, 5.0, 130.0), _pose(26.0, 8.0, 5.0, 100.0)
    assert sch.on_trial_result(None, a, _row(0, 1, here, -60.0)) == TrialScheduler.CONTINUE
    assert sch.on_trial_result(None, c, _row(2, 1, there, -50.0)) == TrialScheduler.CONTINUE
    # world 1 arrives within the tolerance of world 0 with a worse best: it stops, merged into 0
    assert sch.on_trial_result(None, b, _row(1, 2, _pose(24.03, 8.0, 5.0, 130.5), -70.0)) == TrialScheduler.STOP
    assert state.merged == {1: 0}
    # world 2 moves onto world 0's mount with a better best: world 0 stops at its next result
    assert sch.on_trial_result(None, c, _row(2, 2, _pose(24.02, 8.01, 5.0, 129.6), -50.0)) == TrialScheduler.CONTINUE
    assert sch.on_trial_result(None, a, _row(0, 2, here, -60.0)) == TrialScheduler.STOP
    assert state.merged == {1: 0, 0: 2}
    off = MergingFIFO(tolerance=tol, merge=False)
    assert off.on_trial_result(None, a, _row(0, 1, here, -60.0)) == TrialScheduler.CONTINUE
    assert off.on_trial_result(None, b, _row(1, 1, here, -70.0)) == TrialScheduler.CONTINUE


def test_pruned_budget_starts_new_worlds_on_ray(local_ray, tmp_path):
    """On a real local Ray: the pruner's freed steps start reused worlds, each recorded with its parent and the
    slot it took, and all worlds together stay within worlds x steps."""
    from optimizer.physics.metrics import focus_mask
    from optimizer.physics.scene import RadioScene
    from optimizer.search.starts import initial_poses
    from optimizer.search.tune import run_worlds
    from optimizer.spec import RunSpec

    steps, worlds = 8, 4
    exp = street(**{"solver.max_depth": 1, "solver.samples_per_src": 5000, "device": "cpu", "search.worlds": worlds,
                    "search.steps": steps, "search.concurrency": 1, "search.starts": "uniform", "search.merge": False,
                    "search.prune": {"grace_steps": 2, "reduction_factor": 2}})
    rs = RadioScene(exp, device="cpu", threads=2)
    base = rs.rss_dbm(None)
    starts = initial_poses(exp, rs, worlds, focus_mask(base, -90, 10))
    out = run_worlds(RunSpec.of(exp), starts, base, str(tmp_path), progress=False)
    new = [o for o in out if o.world >= worlds]
    assert new, "no pruned budget was reused"
    assert sum(o.steps for o in out) <= worlds * steps
    by_world = {o.world: o for o in out}
    for o in new:
        cfg = o.config
        assert cfg["start_kind"] in ("exploit", "explore") and cfg["steps"] == reuse.reuse_steps(steps, 2)
        freed = by_world[cfg["freed_by"]]
        assert freed.status == "pruned" and freed.steps < steps
        assert o.status in ("completed", "pruned") and o.history and o.history[0].world == o.world
        if cfg["start_kind"] == "exploit":
            assert cfg["parent"] in by_world and cfg["parent"] != o.world
