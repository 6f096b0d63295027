"""One world: a private scene with its own plate pose, optimised step by step, judged by ray-traced truth.

A step is the gradient mode's step (for the default `surrogate` mode: `inner_steps` updates of the pose,
then one truth evaluation with Sionna's PathSolver); the last `search.polish_share` of the steps are a
truth-only pattern search around the best pose (`polish`), one truth evaluation each. The world's result is the best truth it has seen,
not its last iterate. Its state (`get_state`) is small and of fixed size: pose, Adam moments, RNG state,
the best so far, the step count; its history goes out step by step as `WorldStep`s.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np

from optimizer.constants import (
    ADAM_BETAS,
    ADAM_EPS,
    EDGE_FACTOR_END,
    EDGE_FACTOR_START,
    LR_END_FRACTION,
    POLISH_MIN_TOL,
    POLISH_START_TOL,
    WARMUP_LR_FRACTION,
)
from optimizer.errors import ReflectoptError
from optimizer import objectives
from optimizer.physics.metrics import focus_mask
from optimizer.records import (Adam, BestSoFar, JointPose, PlatePose, RssStats, ToleranceCheck, WorldState,
                               WorldStep)
from optimizer.search import compass
from optimizer.search.modes import ModeStep, make_mode
from optimizer.search.reuse import same_mount, tolerances
from optimizer.search.space import PoseSpace

TOLERANCE_CANDIDATES = 2  # distinct best poses a world checks over the tolerance box at its end
OVERLAP_BACKTRACKS = 4  # halvings of an Adam step that is rejected (overlap, scene cut) before it is dropped


if TYPE_CHECKING:
    from optimizer.experiment import Experiment


class World:
    def __init__(self, exp: Experiment, world_id: int, initial_pose: JointPose | PlatePose, *, radio_scene=None,
                 baseline_rss=None, device: str | None = None, threads: int | None = None,
                 start_kind: str = "uniform"):
        from optimizer.physics.scene import RadioScene

        self.exp = exp
        self.world_id = int(world_id)
        self.start_kind = start_kind
        self.rs = radio_scene if radio_scene is not None else RadioScene(exp, device=device or exp.device,
                                                                          threads=threads)
        self.space = PoseSpace.of(exp, self.rs)  # rejects poses whose plates overlap or cut the scene
        keep = getattr(self.rs, "baseline_dbm", None)  # a RadioScene keeps it (objective.protect); a test double not
        if baseline_rss is None:
            baseline_rss = keep() if keep is not None else self.rs.rss_dbm(None)
        elif keep is not None:
            keep(baseline_rss)  # the driver's: the scene need not trace it again
        self.baseline_rss = np.asarray(baseline_rss, float)
        obj = exp.objective
        self.objective = objectives.of(exp, self.rs, self.baseline_rss)
        self.focus = focus_mask(self.baseline_rss, obj.coverage_threshold_dbm, obj.focus_margin_db,
                                getattr(self.rs, "n_targets", None))
        self.initial_pose = JointPose.of(initial_pose)
        self.unit = self.space.project_unit(self.space.to_unit(self.space.to_vec(self.initial_pose)))
        self.rng = np.random.default_rng([exp.search.seed, self.world_id, 7])
        if self.space.rejected(self.unit):
            self.unit = self._mountable_near(self.unit)
        self.m = np.zeros(self.space.dim)
        self.v = np.zeros(self.space.dim)
        self.t = 0
        self.step_index = 0
        self.evaluations = 0
        self.best: BestSoFar | None = None
        self.last: RssStats | None = None
        self.history: list[WorldStep] = []  # this process's steps (not checkpointed)
        self.wall_s = 0.0
        self.restarts = 0
        self.candidates: list[BestSoFar] = []
        self.tolerance: ToleranceCheck | None = None
        self.polish_state: dict | None = None  # the pattern search's step, direction and failures
        self.mode = make_mode(exp.search.gradient, self)

    # --- helpers shared by the gradient modes -----------------------------------------------------------------
    @property
    def pose(self) -> JointPose:
        return self.space.unit_pose(self.unit)

    def progress(self, inner: int = 0) -> float:
        s = self.exp.search
        total = max(1, s.steps * s.inner_steps - 1)
        return min(1.0, (self.step_index * s.inner_steps + inner) / total)

    def edge_factor(self, frac: float) -> float:
        return EDGE_FACTOR_START * (EDGE_FACTOR_END / EDGE_FACTOR_START) ** frac

    def learning_rate(self, frac: float) -> float:
        lr0 = self.exp.search.learning_rate
        end = lr0 * LR_END_FRACTION
        lr = end + 0.5 * (lr0 - end) * (1.0 + math.cos(math.pi * frac))
        return lr * (WARMUP_LR_FRACTION if self.t == 0 else 1.0)

    def _mountable_near(self, unit: np.ndarray) -> np.ndarray:
        """The nearest pose to `unit` that is not rejected, of seeded draws around it (1/64 of the box up to
        all of it, free axes) and uniform ones: a start handed over that overlaps or cuts the scene (the
        driver's starts never do) is never ray-traced."""
        free = self.space.free.astype(float)
        draws = [unit + s * self.rng.normal(0.0, 1.0, (32, self.space.dim)) * free for s in (1 / 64, 1 / 16, 1 / 4, 1.0)]
        cands = np.vstack(draws + [self.rng.uniform(0.0, 1.0, (128, self.space.dim))])
        cands = np.array([self.space.project_unit(c) for c in cands])
        ok = [i for i, r in enumerate(self.space.rejections(cands)) if r is None]
        if not ok:
            raise ReflectoptError(f"world {self.world_id}: every pose drawn around its start "
                                  f"{self.space.unit_pose(unit)} is rejected ({self.space.rejection(unit)})")
        d = np.linalg.norm((cands[ok] - unit) * free, axis=1)
        return cands[ok[int(np.argmin(d))]]

    def adam_ascent(self, grad_unit: np.ndarray, lr: float):
        b1, b2 = ADAM_BETAS
        g = np.where(self.space.free, grad_unit, 0.0)
        self.t += 1
        self.m = b1 * self.m + (1 - b1) * g
        self.v = b2 * self.v + (1 - b2) * g * g
        mhat = self.m / (1 - b1 ** self.t)
        vhat = self.v / (1 - b2 ** self.t)
        step = lr * mhat / (np.sqrt(vhat) + ADAM_EPS)
        unit = self.space.project_unit(self.unit + step)
        for _ in range(OVERLAP_BACKTRACKS):  # overlap or a scene cut: shorter steps, else the step is rejected
            if not self.space.rejected(unit):
                self.unit = unit
                return
            step = 0.5 * step
            unit = self.space.project_unit(self.unit + step)
        self.reset_adam()

    def reset_adam(self):
        self.m[:] = 0.0
        self.v[:] = 0.0
        self.t = 0

    def truth(self, unit) -> ModeStep:
        """Ray-traced truth at a unit-cube pose (one evaluation of the budget); remembered if best."""
        pose = self.space.unit_pose(unit)
        rss = self.rs.rss_dbm(pose)
        self.evaluations += 1
        return self.record(pose, rss)

    def record(self, pose: JointPose, rss) -> ModeStep:
        """Statistics of one truth evaluation; remembered if it is the best so far."""
        stats = self.objective.stats(rss)
        result = ModeStep(pose=pose, rss=np.asarray(rss, float), stats=stats,
                          objective_dbm=self.objective.model(rss, self.focus))
        sc = self.objective.score(stats)
        found = BestSoFar(pose=pose, truth=stats, score=sc, step=self.step_index)
        if self.best is None or sc > self.best.score:
            self.best = found
        self._remember(found)
        return result

    def _remember(self, found: BestSoFar):
        """Keep the TOLERANCE_CANDIDATES best distinct poses seen (for the final tolerance check)."""
        tol = tolerances(self.exp)
        cands = [c for c in self.candidates if not (same_mount(c.pose, found.pose, tol) and c.score >= found.score)]
        if len(cands) < len(self.candidates):  # a better or equal one of the same mount is already kept
            return
        cands = [c for c in cands if not same_mount(c.pose, found.pose, tol)] + [found]
        self.candidates = sorted(cands, key=lambda c: c.score, reverse=True)[:TOLERANCE_CANDIDATES]

    def finish(self):
        """At the last step: the truth over the mounting tolerance of the best distinct poses, best first,
        until one holds (a check is 2^d + 8 truth evaluations of this world's budget when it holds; one that
        fails stops at its first failing pose); then the worst-case polish from the best of those checks
        (`optimizer.search.robust`, `search.robust_polish_boxes`). The world's result is the pose that polish
        ends at, with its complete check, else the best worst case seen. Only under `search.robust_phase:
        every_world`; under `halving` the driver does this after the search, where it can change the winner
        (optimizer.search.robust_phase), and the world only keeps its candidates."""
        if self.exp.search.robust_phase != "every_world":
            return
        if not any(r.tolerance.active for r in self.exp.plates()) or not self.candidates or self.tolerance is not None:
            return
        from optimizer.physics import tolerance
        from optimizer.search import robust

        checks = []
        for cand in self.candidates:
            chk, raw = tolerance.check(self.rs, cand.pose, self.exp, fail_fast=True)
            self.evaluations += chk.poses_checked
            checks.append((chk, raw))
            if chk.holds:
                break
        chk, raw = max(checks, key=lambda c: self.objective.rank_check(c[0]))
        self.tolerance, spent = robust.worst_case_polish(self.rs, self.exp, self.space, chk, raw,
                                                         robust.budget(self.exp))
        self.evaluations += spent

    # --- the polish: truth-only pattern search at the end ---------------------------------------------------------
    @property
    def polish_steps(self) -> int:
        """The last steps of this world spent on the polish (`search.polish_share`; none in `random` mode)."""
        s = self.exp.search
        if self.mode.name == "random" or s.polish_share <= 0:
            return 0
        return min(int(s.polish_share * s.steps), s.steps - 1)

    def polish(self) -> ModeStep:
        """One truth evaluation of a compass search around the best pose: along each free axis in turn, + then
        -, a step of `delta` mounting tolerances (POLISH_START_TOL, halved after a full cycle without a gain,
        down to POLISH_MIN_TOL; 2 % of the box per axis where the tolerance is off). A gain moves the centre
        and repeats the direction."""
        p = self.polish_state
        free = np.flatnonzero(self.space.free)
        if not free.size:
            return self.mode.step()
        if p is None:
            p = self.polish_state = {"delta": POLISH_START_TOL, "k": 0, "fails": 0}
        tol_unit = self.space.tolerance_unit(tolerances(self.exp))
        center = self.space.to_unit(self.space.to_vec(self.best.pose))
        def fail():
            p["k"], p["fails"], delta = compass.failed(free, p["k"], p["fails"], p["delta"])
            p["delta"] = max(POLISH_MIN_TOL, delta)

        for _ in range(2 * free.size):  # a direction that is rejected (overlap, scene cut): a failure not traced
            axis, sign = compass.direction(free, p["k"])
            cand = center.copy()
            cand[axis] += sign * p["delta"] * tol_unit[axis]
            cand = self.space.project_unit(cand)
            if not self.space.rejected(cand):
                break
            fail()
        else:
            return self.mode.step()
        before = self.best.score
        self.unit = cand
        result = self.truth(self.unit)
        if self.best.score > before:
            p["fails"] = 0
        else:
            fail()
        return result

    # --- the step ---------------------------------------------------------------------------------------------
    def step(self) -> WorldStep:
        t0 = time.perf_counter()
        if self.step_index == 0 and self.last is None and self.mode.truth_of_start:
            self.last = self.truth(self.unit).stats  # truth of the starting pose
        polishing = self.best is not None and self.step_index >= self.exp.search.steps - self.polish_steps
        result = self.polish() if polishing else self.mode.step()
        self.last = result.stats
        self.step_index += 1
        if self.step_index >= self.exp.search.steps:
            self.finish()
        dt = time.perf_counter() - t0
        self.wall_s += dt
        row = WorldStep(world=self.world_id, step=self.step_index, pose=result.pose, truth=result.stats,
                        objective_dbm=result.objective_dbm, surrogate_dbm=result.surrogate_dbm,
                        best=self.best.truth, best_score=self.best.score, best_pose=self.best.pose,
                        evaluations=self.evaluations, step_s=dt)
        self.history.append(row)
        return row

    # --- checkpoint state ---------------------------------------------------------------------------------------
    def get_state(self) -> WorldState:
        return WorldState(world=self.world_id, start_kind=self.start_kind, initial_pose=self.initial_pose,
                          unit=self.unit.tolist(), adam=Adam(m=self.m.tolist(), v=self.v.tolist(), t=self.t),
                          step_index=self.step_index, evaluations=self.evaluations, best=self.best, last=self.last,
                          rng=self.rng.bit_generator.state, wall_s=self.wall_s, restarts=self.restarts,
                          device=getattr(self.rs, "device", None),
                          mode_state=dict(self.mode.state(), **({"polish": self.polish_state}
                                                                if self.polish_state is not None else {})),
                          candidates=self.candidates, tolerance=self.tolerance)

    def set_state(self, st: WorldState):
        self.unit = np.array(st.unit, float)
        self.m, self.v, self.t = np.array(st.adam.m, float), np.array(st.adam.v, float), st.adam.t
        self.step_index, self.evaluations = st.step_index, st.evaluations
        self.best, self.last = st.best, st.last
        self.rng.bit_generator.state = st.rng
        self.wall_s = st.wall_s
        self.restarts = st.restarts
        self.start_kind = st.start_kind
        self.candidates, self.tolerance = list(st.candidates), st.tolerance
        self.polish_state = st.mode_state.get("polish")
        self.mode.load_state({k: v for k, v in st.mode_state.items() if k != "polish"})
