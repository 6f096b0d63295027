"""`surrogate` (the default): Adam on the differentiable single-bounce plate model, with free exploration.

Each step makes `inner_steps` updates of the pose from the surrogate's gradient (occlusion by detached ray
tests), then one truth evaluation. At its first step, and every EXPLORE_EVERY steps while a target stays
uncovered (until EXPLORE_UNTIL of its steps), the world also explores for free: it scores EXPLORE_SAMPLES
nearby poses with the surrogate (half turned to the specular yaw; all of them, at every corner of the
tolerance box, as one batch of Dr.Jit lanes) and jumps to the best if it beats its
own pose. Only truth evaluations count as cost.

The world climbs the truth, not only the model:
* `search.residual_correction`: after each truth check, each target's surrogate power is shifted by what the
  truth said there (truth minus model at the same pose, clipped to +-RESIDUAL_CLIP_DB; a target with no
  path: -RESIDUAL_CLIP_DB), so the soft-min weighs the targets the truth finds worst;
* `search.trust_region`: the learning rate is scaled by a trust factor, halved when the truth's gain over
  a step is under TRUST_BAD_RATIO of the corrected model's (both ends of the step under the same
  correction), doubled (up to 1) above TRUST_GOOD_RATIO.

The model is `optimizer.physics.surrogate.PlateSurrogate` (built by `surrogate_for`), one plate being the
one-element case of several: every plate's single bounce and, with several, the plate -> plate double bounces;
every pose vector is the joint one. It includes each transmitter's pattern toward each plate, the targets'
pattern and the polarisation through it; with `objective.combine: sinr` each target's model value is its
serving transmitter's plate paths over the others' power plus noise from one truth without the plates
(`sinr_terms`, dB SINR like the truth), with one plate or several; `best_server` keeps the power sum over
transmitters (a smooth maximum within 3 dB of it). Exploration perturbs every plate and turns one plate, drawn
at random, to the specular yaw toward the focus targets that the other plates serve worst in the model (with
one plate: all focus targets). The truth correction and the trust region run with one plate (several plates
keep their results from before they shared the model). Candidates that are rejected (plates that overlap
each other or cut through the scene, `PoseSpace.rejections`) are skipped.
"""

from __future__ import annotations

import numpy as np

from optimizer.constants import (
    EXPLORE_EVERY,
    EXPLORE_SAMPLES,
    EXPLORE_SIGMA,
    EXPLORE_UNTIL,
    OCCLUSION_PENALTY_DB,
    RESIDUAL_CLIP_DB,
    TRUST_BAD_RATIO,
    TRUST_GOOD_RATIO,
    TRUST_MAX,
    TRUST_MIN,
    TRUST_MIN_PREDICTED_DB,
)
from optimizer.physics.geometry import specular_yaw_pitch
from optimizer.physics.surrogate import surrogate_for
from optimizer.physics.tolerance import corner_offsets, frames, half_widths, world_offsets
from optimizer.search.modes import GradientMode, ModeStep, register_gradient_mode
from optimizer.search.starts import fit_yaw


def occlusion_db(surrogate, rs, pose_vecs) -> list[list[np.ndarray]]:
    """Per joint pose (per-plate vectors), per modelled path (`surrogate.path_names`), [T, N] penalties [dB]:
    OCCLUSION_PENALTY_DB per blocked leg (Tx -> bounce points -> target), all legs of all poses in one batched
    ray test against the plate-free scene `rs`."""
    tx, tg = surrogate.tx, rs.targets
    origins, ends, where = [], [], []
    for p, vecs in enumerate(pose_vecs):
        for q, pts in enumerate(surrogate.specular_points(vecs)):
            num_t, num_n = pts[0].shape[:2]
            chain = [np.repeat(tx, num_n, axis=0)] + [x.reshape(-1, 3) for x in pts] + [np.tile(tg, (num_t, 1))]
            for a, b in zip(chain[:-1], chain[1:]):
                origins.append(a)
                ends.append(b)
                where.append((p, q, num_t, num_n))
    clear = rs.visible(np.concatenate(origins), np.concatenate(ends))
    out = [[np.zeros((len(tx), len(tg))) for _ in surrogate.path_names] for _ in pose_vecs]
    start = 0
    for o, (p, q, num_t, num_n) in zip(origins, where):
        blocked = ~clear[start:start + len(o)]
        start += len(o)
        out[p][q] += OCCLUSION_PENALTY_DB * blocked.reshape(num_t, num_n)
    return out


def corner_offsets_of(exp, rs) -> list:
    """Per plate, its tolerance box's corners as scene-frame moves in its wall frame (None: tolerance off)."""
    return [world_offsets(corner_offsets(half_widths(r.tolerance)), f.yaw_deg) if r.tolerance.active else None
            for r, f in zip(exp.plates(), frames(rs, exp))]


@register_gradient_mode
class SurrogateMode(GradientMode):
    name = "surrogate"

    def __init__(self, world):
        super().__init__(world)
        exp = world.exp
        self.residual: np.ndarray | None = None  # [targets] truth minus model [dB] at the last truth check
        self.trust = TRUST_MAX
        self.last_objective: float | None = None  # [dBm] the truth's soft-min at the last truth check
        self.last_model: np.ndarray | None = None  # [targets] the model's power there [dBm]
        self.corrects = len(exp.plates()) == 1  # the truth correction and trust region (see the module)
        self.surrogate = surrogate_for(exp, world.rs.targets, rs=world.rs, objective=world.objective)
        # the worst case over the mounting tolerance's corners, in every evaluation (None: tolerance off)
        self.offsets = corner_offsets_of(exp, world.rs)

    def state(self) -> dict:
        return {"residual": None if self.residual is None else self.residual.tolist(), "trust": self.trust,
                "last_objective": self.last_objective,
                "last_model": None if self.last_model is None else self.last_model.tolist()}

    def load_state(self, state: dict) -> None:
        res = state.get("residual")
        self.residual = None if res is None else np.asarray(res, float)
        self.trust = float(state.get("trust", TRUST_MAX))
        self.last_objective = state.get("last_objective")
        model = state.get("last_model")
        self.last_model = None if model is None else np.asarray(model, float)

    def _plate_vecs(self, vec) -> list[np.ndarray]:
        return [np.asarray(vec, float)[ax.slice] for ax in self.world.space.plates]

    def occlusion(self, vecs) -> list[list[np.ndarray]]:
        """`occlusion_db` of this world's model and scene for joint pose vectors."""
        return occlusion_db(self.surrogate, self.world.rs, [self._plate_vecs(v) for v in vecs])

    def _eval(self, vec, frac: float, grad: bool = True, bias=None) -> dict:
        w = self.world
        return self.surrogate.evaluate(self._plate_vecs(vec), w.edge_factor(frac), occlusion_db=self.occlusion([vec])[0],
                                       focus=w.focus, objective=w.objective, grad=grad, offsets=self.offsets,
                                       bias_db=bias)

    # --- exploration ------------------------------------------------------------------------------------------
    def _explore_due(self) -> bool:
        """At the first step, and every EXPLORE_EVERY steps while the last truth misses the objective's requirement
        (`min`: a target uncovered; until EXPLORE_UNTIL of the world's steps)."""
        w = self.world
        missing = w.last is None or not w.objective.met(w.last)
        return w.step_index == 0 or (missing and w.step_index % EXPLORE_EVERY == 0
                                     and w.progress() < EXPLORE_UNTIL)

    def _aims(self, frac: float) -> list[np.ndarray]:
        """Per plate, where to turn it in exploration: the mean of the focus targets the other plates' paths
        serve worst in the model (the worse half), or of every focus target with one plate."""
        w = self.world
        focus_idx = np.flatnonzero(w.focus) if np.any(w.focus) else np.arange(len(w.rs.targets))
        n = len(w.space.plates)
        if n == 1:
            return [w.rs.targets[focus_idx].mean(axis=0)]
        paths = self._eval(w.space.from_unit(w.unit), frac, grad=False)["paths_dbm"]
        names = self.surrogate.path_names
        aims = []
        for k in range(n):
            others = [q for q, nm in enumerate(names) if str(k) not in nm.split(">")]
            with np.errstate(divide="ignore"):  # a target no other path reaches: -inf, served worst
                served = 10.0 * np.log10(np.sum(10.0 ** (paths[others] / 10.0), axis=0))
            worst = focus_idx[np.argsort(served[focus_idx], kind="stable")[: max(1, (len(focus_idx) + 1) // 2)]]
            aims.append(w.rs.targets[worst].mean(axis=0))
        return aims

    def explore(self, frac: float) -> bool:
        """Score EXPLORE_SAMPLES poses around the current one (surrogate only, no truth): perturbed ones, each
        also with one plate turned to the specular yaw toward its aim (`_aims`); jump to the best if it beats
        the current pose. Returns True when the world moved."""
        w = self.world
        space = w.space
        free = space.free.astype(float)
        aims = self._aims(frac)
        cands = [w.unit.copy()]
        for _ in range(EXPLORE_SAMPLES // 2):
            u = space.project_unit(w.unit + w.rng.normal(0.0, EXPLORE_SIGMA, space.dim) * free)
            cands.append(u)
            vec = space.from_unit(u).copy()
            k = int(w.rng.integers(len(space.plates))) if len(space.plates) > 1 else 0
            ax = space.plates[k]
            t = int(w.rng.integers(len(self.surrogate.tx)))
            yaw, pitch = specular_yaw_pitch(vec[ax.offset:ax.offset + 3], self.surrogate.tx[t], aims[k], ax.with_pitch)
            j = ax.offset + 3
            if space.free[j]:
                vec[j] = fit_yaw(ax, yaw)  # a PlateAxes has the lo/hi/yaw_periodic it reads
            if ax.with_pitch and space.free[j + 1]:
                vec[j + 1] = min(max(pitch, space.lo[j + 1]), space.hi[j + 1])
            cands.append(space.project_unit(space.to_unit(vec)))
        why = space.rejections(cands[1:])  # plates that overlap or cut the scene: one ray launch for all
        cands = [cands[0]] + [u for u, r in zip(cands[1:], why) if r is None]
        vecs = [space.from_unit(u) for u in cands]
        scores = self.surrogate.evaluate_many([self._plate_vecs(v) for v in vecs], w.edge_factor(frac),
                                              occlusion_db=self.occlusion(vecs), focus=w.focus, objective=w.objective,
                                              offsets=self.offsets)["objective"]  # one batch for every candidate
        best = int(np.argmax(scores))  # every score is finite (evaluate_many raises otherwise)
        if best == 0:
            return False
        w.unit = cands[best]
        w.reset_adam()
        return True

    # --- a step -------------------------------------------------------------------------------------------------
    def step(self) -> ModeStep:
        w = self.world
        s = w.exp.search
        moved = self.explore(w.progress()) if self._explore_due() else False
        bias = self.residual if (self.corrects and s.residual_correction) else None
        surrogate_obj = None
        for i in range(s.inner_steps):
            frac = w.progress(i)
            r = self._eval(w.space.from_unit(w.unit), frac, bias=bias)
            surrogate_obj = r["objective"]
            g = np.concatenate([r["grad"][k][: ax.dim] for k, ax in enumerate(w.space.plates)])
            w.adam_ascent(w.space.grad_to_unit(g), w.learning_rate(frac) * self.trust)
        before = self.last_objective
        result = w.truth(w.unit)
        result.surrogate_dbm = surrogate_obj
        if self.corrects and (s.residual_correction or s.trust_region):
            self._correct(result, before, bias, moved)
        self.last_objective = float(result.objective_dbm)
        return result

    def _correct(self, result: ModeStep, before: float | None, bias, moved: bool):
        """Refresh the residual from the truth just seen; update the trust factor from how the truth's gain
        compares with the gain the corrected model predicted for this step."""
        w = self.world
        model = self._eval(w.space.from_unit(w.unit), w.progress(w.exp.search.inner_steps - 1), grad=False)["power_dbm"]
        prev, self.last_model = self.last_model, model
        if w.exp.search.trust_region and before is not None and prev is not None and not moved:
            shift = 0.0 if bias is None else bias  # the same correction on both sides of the step
            predicted = w.objective.model(model + shift, w.focus) - w.objective.model(prev + shift, w.focus)
            actual = result.objective_dbm - before
            if predicted > TRUST_MIN_PREDICTED_DB:
                ratio = actual / predicted
                if ratio < TRUST_BAD_RATIO:
                    self.trust = max(TRUST_MIN, 0.5 * self.trust)
                elif ratio > TRUST_GOOD_RATIO:
                    self.trust = min(TRUST_MAX, 2.0 * self.trust)
        if w.exp.search.residual_correction:
            truth = np.asarray(result.rss, float)
            self.residual = np.where(np.isfinite(truth), np.clip(truth - model, -RESIDUAL_CLIP_DB, RESIDUAL_CLIP_DB),
                                     -RESIDUAL_CLIP_DB)
