"""The robust phase (`search.robust_phase: halving`, the default): the tolerance checks and the worst-case
polish after the search, spent where they can change the winner.

Under `every_world` each completed world checks its best distinct poses over the tolerance box and polishes
the best of them at its last step (`World.finish`), whether or not it could win. Here the worlds only keep
their candidates (`World.candidates`: the best distinct poses, with their nominal truth), and after the
search the driver ranks every completed world's candidates by what their robust result could still become:

* a candidate's *bound* is its nominal truth (the pose is in its own box, so the box's worst case is no
  better), in the order the winner is chosen (`conclude.world_rank`: holding first, under sizes_m the smaller
  plates, then the score); while its box is traced, the bound is the worst pose traced so far;
* the best bound is checked (`tolerance.check`, fail-fast) and polished (`robust.worst_case_polish`): it is
  the *leader*, its confirmed worst case the bar;
* every other candidate is checked only while its bound is above the bar: its check stops at the first box
  pose no better than the leader's worst case (`stop_at_score`) or, like today's, at the first that loses
  coverage; a candidate never checked is stopped by its nominal bound alone. A check that ends above the bar
  makes a new leader, which is polished in turn. The polish moves a pose within a few tolerances of a point
  the nominal search already climbed, so its result is taken as bounded by the nominal truth as well (the
  one assumption of the rule; `every_world` polishes every world without it);
* the polish screens its moves at ROBUST_SCREEN_SAMPLES_SHARE of the run's sample count and confirms
  each move on the whole box at the full count, so the answer is always a box traced at full samples;
* the box poses are traced worst first by the surrogate (`model_order`: every box pose in one batch of the
  plate model, occlusion by one ray launch, shifted by the truth at the nominal pose), to refute a
  candidate that cannot win early (measured, not assumed: `RobustPhase.model_worst_ranks`, `refuted_after`);
* the polish stops after a confirmed move that gained less than ROBUST_PHASE_STOP_GAIN_DB, and the phase
  spends at most its budget (`phase_budget`) on polishes (a check is never cut short by it: the answer's box
  is always whole);
* where Ray has slots free (the search has ended), the challengers' checks run at once as Ray tasks
  (`_check_chunk`, the same resources as a world, each building its scene once).

The run's truth budget (`search.robust_phase: halving`, tolerance on) is fixed: `worlds x steps` world-steps
plus a reserve of ROBUST_RESERVE_ALLOWANCES allowances (one allowance: a box check plus
`search.robust_polish_boxes` boxes of polish, what each completed world spent under `every_world`). The
phase is estimated at one allowance plus ROBUST_REFUTE_EVALS evaluations per world; what the reserve holds
beyond that estimate is given to the search before it starts, as more steps per world (`with_freed_steps`;
at most ROBUST_FREED_STEPS_MAX_SHARE of `search.steps`, so a small run stays small),
and the phase spends at most the estimate on polishes (`phase_budget`).

Every truth evaluation is counted in the world whose candidate it checks (`summary.json`'s `evaluations`);
`summary.robust_phase` says how many candidates were checked, stopped and polished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from optimizer import objectives
from optimizer.constants import (EDGE_FACTOR_END, NO_PATH_FLOOR_DBM, ROBUST_FREED_STEPS_MAX_SHARE,
                                 ROBUST_PHASE_STOP_GAIN_DB, ROBUST_REFUTE_EVALS, ROBUST_RESERVE_ALLOWANCES,
                                 ROBUST_SCREEN_SAMPLES_SHARE)
from optimizer.errors import NumericsError
from optimizer.physics import backend, tolerance
from optimizer.physics.metrics import no_path_as_floor
from optimizer.records import JointPose, RobustPhase, RssStats, ToleranceCheck

TASK_MIN_CHECKS = 2  # challengers' checks per Ray task at least (a task's scene build and first solve cost
# about what two refuted checks do: 4.5 s and 2 s on the 2-core development machine)

if TYPE_CHECKING:
    from optimizer.experiment import Experiment
    from optimizer.search.tune import Collected


@dataclass
class Candidate:
    world: int  # index of its world in the collected list
    pose: JointPose
    nominal: RssStats  # the world's truth at the pose
    area: int = 0  # area rank of the world's plate sizes under sizes_m (0: the smallest, or no catalogue)
    size: int | None = None  # the world's size option under sizes_m
    objective: objectives.Objective = field(default_factory=objectives.default)  # what ranks it (objective.kind)

    @property
    def bound(self) -> tuple:
        """The best rank its robust result could reach (`rank` of a box whose worst is the nominal)."""
        o = self.objective
        return rank(o.met(self.nominal), o.score(self.nominal), o.score(self.nominal), self.area)


@dataclass
class Checked:
    cand: Candidate
    chk: ToleranceCheck
    raw: dict
    evaluations: int
    worst_at: int | None = None  # complete and traced in the model's order: where the truth's worst pose was
    # in that order (0: the model's worst)
    refuted_after: int | None = None  # stopped by the bar: box poses traced before it fell to it

    @property
    def rank(self) -> tuple:
        o = self.cand.objective
        return rank(self.chk.holds, o.score(self.chk.worst), o.score(self.chk.nominal), self.cand.area)


def rank(holds: bool, worst: float, nominal: float, area: int = 0) -> tuple:
    """`conclude.world_rank` of a checked result: holding first, under sizes_m the smaller plates among those
    that hold, then the worst case's score, then the nominal's."""
    return (True, bool(holds), -area if holds else 0, worst, nominal)


def allowance(exp: Experiment) -> int:
    """One world's check and worst-case polish under `every_world` (truth evaluations, at most)."""
    from optimizer.search import robust

    return tolerance.box_cost(exp) + robust.budget(exp)


def phase_budget(exp: Experiment) -> int:
    """The truth evaluations the halving phase is estimated to need (and may spend on polishes): one
    allowance for the leader plus ROBUST_REFUTE_EVALS per world for the challengers."""
    return allowance(exp) + ROBUST_REFUTE_EVALS * exp.search.worlds


def freed_steps(exp: Experiment) -> int:
    """The steps per world the search gets on top of `search.steps`: the reserve beyond `phase_budget`,
    spread over the worlds, at most ROBUST_FREED_STEPS_MAX_SHARE of `search.steps` (0 under every_world or
    with every plate's tolerance off: no phase, no reserve)."""
    if (exp.search.robust_phase != "halving" or not any(r.tolerance.active for r in exp.plates())
            or exp.search.worlds < 1):
        return 0
    reserve = int(ROBUST_RESERVE_ALLOWANCES * allowance(exp))
    return min(max(0, reserve - phase_budget(exp)) // exp.search.worlds,
               int(ROBUST_FREED_STEPS_MAX_SHARE * exp.search.steps))


def with_freed_steps(exp: Experiment) -> Experiment:
    """The experiment the search runs: `search.steps` plus `freed_steps` (a new Experiment; the same one
    when nothing is freed). Applied once per run, to the experiment as written."""
    extra = freed_steps(exp)
    if not extra:
        return exp
    from optimizer.console import say

    say(f"robust phase: budgeted at {phase_budget(exp)} truth evaluations; the rest of its reserve goes to the "
        f"search: {exp.search.steps} + {extra} steps per world")
    return exp.model_copy(update={"search": exp.search.model_copy(update={"steps": exp.search.steps + extra})})


def candidates(exp: Experiment, collected: list[Collected], area_of, objective=None) -> list[Candidate]:
    """The completed worlds' candidates (not yet checked), best bound first. `area_of(config)`: (area rank,
    size option) of a world's config."""
    out = []
    for i, c in enumerate(collected):
        st = c.state
        if c.status != "completed" or st is None or st.tolerance is not None:
            continue
        area, size = area_of(c.config)
        out += [Candidate(i, b.pose, b.truth, area, size, objective or objectives.of(exp)) for b in st.candidates]
    return sorted(out, key=lambda c: c.bound, reverse=True)


def stop_score(cand: Candidate, leader: Checked | None) -> float | None:
    """The bar a candidate's check stops at: the leader's worst case where the leader holds with the same
    plate sizes (a smaller plate that holds wins whatever its worst case: no bar)."""
    if leader is None or not leader.chk.holds or cand.area != leader.cand.area:
        return None
    return leader.cand.objective.score(leader.chk.worst)


def model_order(rs, exp: Experiment, pose: JointPose, nominal_rss, baseline_rss) -> list[int] | None:
    """The box poses' indices (`tolerance.box_poses` order), worst first by the surrogate: the plate model at
    every box pose and at the pose itself in one batch (hard edges, occlusion from one ray launch), power-
    summed with the baseline, each target shifted so the model meets the truth `nominal_rss` at the pose.
    None with several plates or where the model cannot be evaluated (the box's own order is then used)."""
    if len(exp.plates()) != 1 or baseline_rss is None:
        return None
    from optimizer.physics.surrogate import surrogate_for
    from optimizer.search.modes.surrogate import occlusion_db

    poses = tolerance.box_poses(pose, tolerance.plate_offsets(exp), [f.yaw_deg for f in tolerance.frames(rs, exp)])
    vecs = [[p.as_list() for p in jp.plates] for jp in [pose, *poses]]
    try:
        backend.init(getattr(rs, "device", None) or exp.device)  # the scene's Mitsuba variant (a stand-in: cpu)
        model = surrogate_for(exp, rs.targets, aperture=False)
        plate = model.evaluate_many(vecs, EDGE_FACTOR_END, occlusion_db=occlusion_db(model, rs, vecs),
                                    temperature_db=exp.objective.softmin_temperature_db)["power_dbm"]
    except (NumericsError, ValueError, AttributeError):
        return None
    base = no_path_as_floor(baseline_rss)
    total = 10.0 * np.log10(10.0 ** (base / 10.0) + 10.0 ** (np.maximum(plate, NO_PATH_FLOOR_DBM) / 10.0))
    predicted = no_path_as_floor(nominal_rss) + total[1:] - total[0]  # [poses, targets]
    predicted = predicted[:, :getattr(rs, "n_targets", predicted.shape[1])]  # the targets (not protected points)
    key = predicted.min(axis=1) + 1e-6 * predicted.mean(axis=1)
    return [int(i) for i in np.argsort(key, kind="stable")]


def check(rs, exp: Experiment, cand: Candidate, bar: float | None, baseline_rss) -> Checked:
    """One candidate's box, fail-fast and stopping at `bar`, traced worst first by the model."""
    nominal = np.asarray(rs.rss_dbm(cand.pose), float)
    order = model_order(rs, exp, cand.pose, nominal, baseline_rss)
    chk, raw = tolerance.check(rs, cand.pose, exp, nominal_rss=nominal, fail_fast=True, stop_at_score=bar,
                               order=order)
    worst_at = None
    if order is not None and chk.complete and len(raw["rss"]):  # traced in `order` (a cut box is never complete)
        worst_at = int(np.argmin([cand.objective.score_rss(r) for r in raw["rss"]]))
    refuted = None
    if bar is not None and not chk.complete and chk.cut_by is None:
        refuted = len(raw["rss"])  # 0: the nominal pose itself was no better than the bar
    return Checked(cand, chk, raw, raw["evaluations"] + 1, worst_at, refuted)


def check_in_turn(scene_for, items: list, leader: Checked | None, baseline_rss) -> list[Checked]:
    """Some challengers' checks one after another (`items`: (Candidate, the experiment at its sizes)), each
    against the best result known here: the leader's, or a check of these that beat it (so a world's second
    candidate near its first meets the first's worst case as its bar, not the older leader's)."""
    best, out = leader, []
    for cand, exp in items:
        r = check(scene_for(cand.size, exp), exp, cand, stop_score(cand, best), baseline_rss)
        out.append(r)
        if best is None or r.rank > best.rank:
            best = r
    return out


def _check_chunk(run_exp: Experiment, items: list, leader: Checked | None, baseline_rss, threads: int,
                 gpu_share: float) -> list[Checked]:
    """A Ray task: the checks of some challengers (`items`: (Candidate, the experiment at its sizes or None)),
    in turn (`check_in_turn`), each size's scene built once."""
    from optimizer.physics import backend
    from optimizer.physics.scene import RadioScene

    scenes = {}

    def scene_for(size, exp):
        if size not in scenes:
            scenes[size] = RadioScene(exp, device=backend.resolve_device(exp.device, gpu_share=gpu_share),
                                      threads=threads)
        return scenes[size]

    return check_in_turn(scene_for, [(c, sized or run_exp) for c, sized in items], leader, baseline_rss)


def chunks(challengers: list[Candidate], n: int) -> list[list[Candidate]]:
    """The challengers in `n` groups for `n` tasks: a world's candidates together (checked in turn, the later
    ones against the earlier ones' results), the worlds dealt out best bound first to the smallest group."""
    by_world: dict[int, list[Candidate]] = {}
    for c in challengers:  # best bound first (the order they come in)
        by_world.setdefault(c.world, []).append(c)
    groups: list[list[Candidate]] = [[] for _ in range(n)]
    for cands in by_world.values():
        min(groups, key=len).extend(cands)
    return [g for g in groups if g]


class Phase:
    """The halving over candidates; `scene_for(size)` and `exp_for(size)` give the driver's scene and
    experiment at a world's plate sizes (size None: the run's)."""

    def __init__(self, exp: Experiment, baseline_rss, scene_for, exp_for, parallel: bool = True,
                 budget: int | None = None):
        self.exp, self.baseline = exp, baseline_rss
        self.budget = phase_budget(exp) if budget is None else int(budget)  # at most this on polishes
        self.scene_for, self.exp_for = scene_for, exp_for
        self.parallel = parallel
        self.leader: Checked | None = None
        self.best_of: dict[int, Checked] = {}  # world -> its best check
        self.spent: dict[int, int] = {}  # world -> truth evaluations of the phase
        self.stats = RobustPhase(mode="halving", candidates=0, checked=0, stopped=0, polished=0, evaluations=0)

    def _count(self, world: int, n: int):
        self.spent[world] = self.spent.get(world, 0) + n
        self.stats.evaluations += n

    def _take(self, r: Checked):
        """Record a check; a check that beats the leader (or the first) is polished and leads."""
        self._count(r.cand.world, r.evaluations)
        self.stats.checked += 1
        if r.worst_at is not None:
            self.stats.model_worst_checks += 1
            self.stats.model_worst_hits += int(r.worst_at == 0)
            self.stats.model_worst_ranks.append(r.worst_at)
        if r.refuted_after is not None:
            self.stats.refuted_after.append(r.refuted_after)
        if self.leader is not None and r.rank <= self.leader.rank:
            self.stats.stopped += 1
            self._keep(r)
            return
        from optimizer.search import robust
        from optimizer.search.space import PoseSpace

        exp, rs = self.exp_for(r.cand.size), self.scene_for(r.cand.size)
        screen = max(1, int(round(ROBUST_SCREEN_SAMPLES_SHARE * exp.solver.samples_per_src)))
        limit = min(robust.budget(exp), self.budget - self.stats.evaluations)  # what the phase's budget has left
        chk, spent = robust.worst_case_polish(rs, exp, PoseSpace.of(exp, rs), r.chk, r.raw, max(0, limit),
                                              screen_samples=screen, stop_gain_db=ROBUST_PHASE_STOP_GAIN_DB)
        self._count(r.cand.world, spent)
        self.stats.polished += int(spent > 0)
        self.leader = Checked(r.cand, chk, r.raw, 0)
        self._keep(self.leader)

    def _keep(self, r: Checked):
        have = self.best_of.get(r.cand.world)
        if have is None or r.rank > have.rank:
            self.best_of[r.cand.world] = r

    def run(self, cands: list[Candidate]) -> None:
        self.stats.candidates = len(cands)
        pending = list(cands)
        while pending:
            if self.leader is not None:
                alive = [c for c in pending if c.bound > self.leader.rank]
                self.stats.stopped += len(pending) - len(alive)  # stopped by the nominal bound: never traced
                pending = alive
                if not pending:
                    break
                if self.parallel and len(pending) > 1:
                    results = self._parallel(pending)
                    if results is not None:
                        pending = []
                        for r in sorted(results, key=lambda r: r.rank, reverse=True):
                            self._take(r)
                        continue
            c = pending.pop(0)
            self._take(check(self.scene_for(c.size), self.exp_for(c.size), c, stop_score(c, self.leader),
                             self.baseline))

    def _parallel(self, challengers: list[Candidate]) -> list[Checked] | None:
        """The challengers' checks as Ray tasks over the free slots (None: Ray is not up or has fewer than
        two slots free; the driver then checks them one by one)."""
        try:
            import ray
        except ImportError:
            return None
        if not ray.is_initialized():
            return None
        res = self.exp.resources
        free = ray.available_resources()
        slots = int(free.get("CPU", 0.0) // res.cpu_per_world)
        if res.gpu_per_world > 0:
            slots = min(slots, int(free.get("GPU", 0.0) // res.gpu_per_world))
        slots = min(slots, len(challengers) // TASK_MIN_CHECKS)  # each task builds a scene: give it some work
        if slots < 2:
            return None
        groups = chunks(challengers, slots)
        task = ray.remote(num_cpus=res.cpu_per_world, num_gpus=res.gpu_per_world)(_check_chunk)
        threads = max(1, int(round(res.cpu_per_world)))
        refs = [task.remote(self.exp, [(c, None if c.size is None else self.exp_for(c.size)) for c in g],
                            self.leader, self.baseline, threads, res.gpu_per_world) for g in groups]
        self.stats.parallel_tasks += len(groups)
        return [r for chunk in ray.get(refs) for r in chunk]

    def apply(self, collected: list[Collected]) -> list[Collected]:
        """The collected worlds with each checked world's best check as its tolerance result and the
        phase's evaluations added to its count."""
        out = list(collected)
        for i, n in self.spent.items():
            st = out[i].state
            best = self.best_of.get(i)
            upd = {"evaluations": st.evaluations + n}
            if best is not None:
                upd["tolerance"] = best.chk
            out[i] = _replace_state(out[i], st.model_copy(update=upd))
        return out


def _replace_state(c: Collected, state) -> Collected:
    from dataclasses import replace

    return replace(c, state=state)


def run(exp: Experiment, collected: list[Collected], baseline_rss, scene_for, exp_for, area_of,
        parallel: bool = True) -> tuple[list[Collected], RobustPhase | None]:
    """The robust phase over the completed worlds (`search.robust_phase: halving`); nothing where every
    plate's tolerance is off or the worlds ran `every_world`. Returns the collected worlds with their checks
    and the phase's figures."""
    if exp.search.robust_phase != "halving" or not any(r.tolerance.active for r in exp.plates()):
        return collected, None
    cands = candidates(exp, collected, area_of, objectives.of(exp, scene_for(None), baseline_rss))
    if not cands:
        return collected, None
    phase = Phase(exp, baseline_rss, scene_for, exp_for, parallel)
    phase.run(cands)
    return phase.apply(collected), phase.stats
