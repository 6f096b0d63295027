"""The worst-case polish: a world's last truth evaluations climb the worst case over its mounting tolerance
box, not the pose's own truth.

The nominal polish (`World.polish`) climbs the truth at the pose itself, and a nominal optimum often sits on a
coverage cliff: a few centimetres or a degree away a target loses its path. After the world's tolerance check,
this pattern search moves the pose to where the box's worst case is best, by the active-set rule of minimax
search (the worst case of a box is decided by a few of its poses, and those change slowly with the centre):

* a move is *screened* on the truth at the moved pose and at the box offsets that were worst so far (the
  active set: the ROBUST_ACTIVE worst of every check, plus every offset that refuted a move), worst first,
  stopping at the first one that is no better than the current worst case: 1 to 1 + |active| evaluations;
* along a direction that screens better, the step is doubled (at most ROBUST_EXPANSIONS times) while it keeps
  screening better;
* the best screened step is *confirmed* by a check of the whole box that stops at its first pose no better
  than the current worst case (`tolerance.check(stop_at_score=...)`); a confirmed move is taken and the
  direction tried again, a refuted one adds the offset that refuted it to the active set. A move is taken
  when its box holds where the current one does not, or holds as the current one does (or fails as it does)
  with a worst case better by more than ROBUST_MIN_GAIN_DB; the pose itself must still cover every target.

Compass directions along each free axis, + then -, from ROBUST_START_TOL mounting tolerances, halved after a
cycle without a move, down to ROBUST_MIN_TOL. It spends at most `search.robust_polish_boxes` boxes' worth of
truth evaluations (a box: 2^d + 8 poses per plate) and returns a complete check of the pose it ends at, so
the world's result is always a pose whose whole box was ray-traced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from optimizer.constants import (ROBUST_ACTIVE, ROBUST_EXPANSIONS, ROBUST_MAX_ACTIVE, ROBUST_MIN_GAIN_DB, ROBUST_MIN_TOL,
                                 ROBUST_START_TOL)
from optimizer.physics import tolerance
from optimizer import objectives
from optimizer.records import JointPose, RssStats, ToleranceCheck
from optimizer.search import compass

if TYPE_CHECKING:
    from optimizer.experiment import Experiment
    from optimizer.search.space import PoseSpace


def budget(exp: Experiment) -> int:
    """The worst-case polish's truth evaluations per world (`search.robust_polish_boxes` boxes)."""
    return int(exp.search.robust_polish_boxes * tolerance.box_cost(exp))


class _Polish:
    def __init__(self, rs, exp: Experiment, space: PoseSpace, limit: int, screen_samples: int | None = None):
        self.rs, self.exp, self.space = rs, exp, space
        self.screen_samples = screen_samples  # the screens' sample count (None: the run's)
        self.objective = objectives.of(exp, rs)
        self.limit = int(limit)
        self.yaws = [f.yaw_deg for f in tolerance.frames(rs, exp)]  # each plate's wall frame (once)
        self.spent = 0
        self.active: list[tuple[int, tuple[float, ...]]] = []  # (plate, offset): the box poses that were worst

    @property
    def left(self) -> int:
        return self.limit - self.spent

    def _truth(self, pose: JointPose) -> tuple[RssStats, np.ndarray]:
        self.spent += 1
        rss = np.asarray(self.rs.rss_dbm(pose) if self.screen_samples is None else
                         self.rs.rss_dbm(pose, samples_per_src=self.screen_samples), float)
        return self.objective.stats(rss), rss

    def learn(self, raw: dict, k: int = ROBUST_ACTIVE):
        """Add the `k` worst traced poses of a check to the active set (most recent first, capped)."""
        scores = [self.objective.score_rss(r) for r in raw["rss"]]
        new = [(int(raw["plates"][i]), tuple(np.round(raw["offsets"][i], 12))) for i in np.argsort(scores)[:k]]
        self.active = list(dict.fromkeys(new + self.active))[:ROBUST_MAX_ACTIVE]

    def screen(self, pose: JointPose, floor: float) -> tuple[float, np.ndarray] | None:
        """The lowest score over the pose and the active set's offsets around it, with the truth at the pose
        itself; None as soon as one is not above `floor`, when the pose itself does not cover every target
        (coverage at the pose is the nominal search's work; this one keeps it), or when the budget cannot pay
        for the rest."""
        if self.left < 1 + len(self.active):
            return None
        stats, nominal = self._truth(pose)
        low = self.objective.score(stats)
        if low <= floor or not self.objective.met(stats):
            return None
        for plate, off in self.active:
            low = min(low, self.objective.score(self._truth(tolerance.moved(pose, plate, off, self.yaws[plate]))[0]))
            if low <= floor:
                return None
        return low, nominal


def worst_case_polish(rs, exp: Experiment, space: PoseSpace, chk: ToleranceCheck, raw: dict,
                      limit: int, screen_samples: int | None = None,
                      stop_gain_db: float | None = None) -> tuple[ToleranceCheck, int]:
    """Climb the worst case over the tolerance box from `chk` (the check of the world's result, with its raw
    figures `raw` from `tolerance.check`) within `limit` truth evaluations. Returns the check of the pose it
    ends at (`chk` itself when no move was confirmed) and the evaluations spent. Nothing is spent from a pose
    that does not cover every target itself (no box of it can hold) or whose box cuts the scene.
    `screen_samples`: screen moves at this sample count (cheap screening); the confirming box, its nominal
    pose included, is then traced at the run's. `stop_gain_db`: stop after a confirmed move that raised the
    worst case by less than this (None: climb until the step is below ROBUST_MIN_TOL or the budget is spent)."""
    from optimizer.search.reuse import tolerances

    free = np.flatnonzero(space.free)
    cost = tolerance.box_cost(exp)
    if (not free.size or limit < cost or chk.pose is None or chk.cut_by is not None
            or not objectives.of(exp, rs).met(chk.nominal)):
        return chk, 0
    run = _Polish(rs, exp, space, limit, screen_samples)
    run.learn(raw)
    tol_unit = space.tolerance_unit(tolerances(exp))
    center = space.to_unit(space.to_vec(chk.pose))
    current = run.objective.score(chk.worst)
    delta, k, fails = ROBUST_START_TOL, 0, 0
    while delta >= ROBUST_MIN_TOL and run.left >= cost:
        axis, sign = compass.direction(free, k)
        best_unit, best_value, best_rss, step = None, current + ROBUST_MIN_GAIN_DB, None, delta
        for _ in range(1 + ROBUST_EXPANSIONS):  # screen the step, doubled while it screens better
            cand = center.copy()
            cand[axis] += sign * step * tol_unit[axis]
            cand = space.project_unit(cand)
            if np.allclose(cand, center) or space.rejected(cand):
                break
            screened = run.screen(space.unit_pose(cand), best_value)
            if screened is None:
                break
            best_unit, (best_value, best_rss), step = cand, screened, 2.0 * step
        moved = False
        if best_unit is not None and run.left >= cost:
            new, new_raw = tolerance.check(rs, space.unit_pose(best_unit), exp, stop_at_score=current,
                                           nominal_rss=best_rss if screen_samples is None else None)
            run.spent += new_raw["evaluations"]
            better = (new.complete and new.cut_by is None and run.objective.met(new.nominal)
                      and ((new.holds and not chk.holds)
                           or (new.holds == chk.holds and run.objective.score(new.worst) > current + ROBUST_MIN_GAIN_DB)))
            if better:
                gain = run.objective.score(new.worst) - current if new.holds == chk.holds else np.inf
                chk, center, current, moved = new, best_unit, run.objective.score(new.worst), True
                if stop_gain_db is not None and gain < stop_gain_db:
                    break  # taken, and the climb has flattened out
            if len(new_raw["rss"]):
                run.learn(new_raw, ROBUST_ACTIVE if better else 1)  # a refutation: the pose that stopped it
        if moved:
            fails = 0  # the same direction again
            continue
        k, fails, delta = compass.failed(free, k, fails, delta)
    return chk, run.spent
