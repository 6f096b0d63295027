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

`objective.protect`: the model objective is less `ShadowPenalty` (optimizer.objectives.protect), the plates'
predicted shadow on the protected points, in every inner step (value and gradient) and every exploration score.

Antennas and `objective.combine` (optimizer.physics.antenna): the plate path includes each transmitter's
pattern toward the plate, the targets' pattern and the polarisation through it; with `combine: sinr` each
target's model value is its serving transmitter's plate path over the others' power plus noise from one truth
without the plates (`sinr_terms`, dB SINR like the truth); `best_server` keeps the power sum over
transmitters (a smooth maximum within 3 dB of it). Several plates with `sinr`: the power sum, in dBm.

With several plates the model is `optimizer.physics.multi_surrogate.MultiPlateSurrogate` (every plate's single
bounce and the plate -> plate double bounces) and every pose vector is the joint one; exploration perturbs
every plate and turns one plate, drawn at random, to the specular yaw toward the focus targets that the other
plates serve worst (in the model). Candidates that are rejected (plates that overlap each other or cut
through the scene, `PoseSpace.rejections`) are skipped, with one plate as with several.
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
from optimizer.physics.band import band_surrogate
from optimizer.physics.geometry import specular_yaw_pitch
from optimizer.physics.tolerance import corner_offsets, frames, half_widths, world_offsets
from optimizer.search.modes import GradientMode, ModeStep, register_gradient_mode
from optimizer.search.starts import fit_yaw


def occlusion_db(surrogate, rs, pose_vecs) -> np.ndarray:
    """[P, T, N] penalties [dB] for P poses of a one-plate model with one batched ray test (both legs, every
    pose, in one launch against the plate-free scene `rs`): OCCLUSION_PENALTY_DB per blocked leg (Tx -> plate,
    plate -> target)."""
    pts = np.stack([surrogate.specular_points(v) for v in pose_vecs])  # [P, T, N, 3]
    num_p, num_t, num_n = pts.shape[:3]
    flat = pts.reshape(-1, 3)
    tx = np.tile(np.repeat(surrogate.tx, num_n, axis=0), (num_p, 1))
    m = flat.shape[0]
    clear = rs.visible(np.concatenate([tx, flat]), np.concatenate([flat, np.tile(rs.targets, (num_p * num_t, 1))]))
    leg1, leg2 = clear[:m], clear[m:]
    blocked = (~leg1).astype(float) + (~leg2).astype(float)
    return (OCCLUSION_PENALTY_DB * blocked).reshape(num_p, num_t, num_n)


def antenna_specs(exp, targets) -> tuple[list, list]:
    """(transmitter specs, target specs) of the surrogate's antenna term (`optimizer.physics.antenna`)."""
    from optimizer.physics import antenna

    return antenna.transmitter_specs(exp), antenna.target_specs(exp, targets)


def sinr_terms(exp, rs, frequency_hz: float | None = None):
    """For `objective.combine: sinr`: per target, the serving transmitter (the strongest without the plates) and
    the others' power plus the noise [dBm], from one truth (`rs`) without the plates at `frequency_hz` (None:
    the scene's); None for sum and best_server."""
    if exp.combine() != "sinr":
        return None
    with rs.at_frequency(rs.frequency_hz if frequency_hz is None else frequency_hz):
        per_tx = rs.power_per_tx(None) * 10.0 ** (rs.tx_power_dbm / 10.0)  # [N, T] [mW]
    serving = per_tx.argmax(axis=1)
    rest = per_tx.sum(axis=1) - per_tx.max(axis=1) + rs.noise_mw
    return serving, 10.0 * np.log10(rest)


@register_gradient_mode
class SurrogateMode(GradientMode):
    name = "surrogate"

    def __init__(self, world):
        super().__init__(world)
        from optimizer.physics.surrogate import PlateSurrogate

        exp = world.exp
        self.residual: np.ndarray | None = None  # [targets] truth minus model [dB] at the last truth check
        self.trust = TRUST_MAX
        self.last_objective: float | None = None  # [dBm] the truth's soft-min at the last truth check
        self.last_model: np.ndarray | None = None  # [targets] the model's power there [dBm]
        self.multi = len(exp.plates()) > 1
        from optimizer.objectives.protect import ShadowPenalty

        self.penalty = ShadowPenalty.of(world.objective, world.rs, exp)  # objective.protect (None without it)
        if self.multi:  # (the truth correction and trust region are one-plate only, for now)
            self._init_multi(world)
            return
        self.surrogate = band_surrogate(  # a band: one model per frequency (`optimizer.physics.band`)
            lambda lam, f: PlateSurrogate([t.position for t in exp.transmitters],
                                          [t.power_dbm for t in exp.transmitters], world.rs.targets,
                                          exp.plates()[0].size_m, lam, aperture=exp.search.surrogate_level == "po",
                                          antennas=antenna_specs(exp, world.rs.targets),
                                          sinr=sinr_terms(exp, world.rs, f)), exp, world.objective)
        # the worst case over the mounting tolerance's corners, in every evaluation (None: tolerance off)
        tol = exp.plates()[0].tolerance
        self.offsets = (world_offsets(corner_offsets(half_widths(tol)), frames(world.rs, exp)[0].yaw_deg)
                        if tol.active else None)  # as scene-frame moves, in the plate's wall frame

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

    # --- objective.protect: the plates' shadow on the protected points, subtracted from the model ------------------
    def protect_penalty(self, vec, grad: bool = True) -> tuple[float, np.ndarray]:
        """(penalty [dB], its gradient w.r.t. the pose vector) of `optimizer.objectives.protect.ShadowPenalty`
        at the joint pose vector `vec`; (0, 0) without objective.protect."""
        space = self.world.space
        if self.penalty is None:
            return 0.0, np.zeros(space.dim)
        vecs = [np.asarray(vec, float)[ax.slice] for ax in space.plates] if self.multi else [vec]
        value, grads = self.penalty.evaluate(vecs, [r.size_m for r in self.world.exp.plates()], grad)
        if not self.multi:
            return value, grads[0][: space.dim]
        return value, np.concatenate([g[: ax.dim] for g, ax in zip(grads, space.plates)])

    def _penalised(self, vecs, scores) -> np.ndarray:
        """Surrogate scores of candidate pose vectors less their protect penalty."""
        if self.penalty is None:
            return scores
        return np.asarray(scores, float) - np.array([self.protect_penalty(v, grad=False)[0] for v in vecs])

    # --- exploration, shared by one and several plates -----------------------------------------------------------
    def _explore_due(self) -> bool:
        """At the first step, and every EXPLORE_EVERY steps while the last truth misses the objective's requirement
        (`min`: a target uncovered; until EXPLORE_UNTIL of the world's steps)."""
        w = self.world
        missing = w.last is None or not w.objective.met(w.last)
        return w.step_index == 0 or (missing and w.step_index % EXPLORE_EVERY == 0
                                     and w.progress() < EXPLORE_UNTIL)

    def _mountable(self, cands: list) -> list:
        """The candidates that are not rejected (plates that overlap or cut the scene: one ray launch for
        all); cands[0], the current pose, is kept."""
        why = self.world.space.rejections(cands[1:])
        return [cands[0]] + [u for u, r in zip(cands[1:], why) if r is None]

    def _jump(self, cands, scores) -> bool:
        """Move to the best-scoring candidate (cands[0] is the current pose); True when the world moved."""
        best = int(np.argmax(scores))
        if best == 0:
            return False
        self.world.unit = cands[best]
        self.world.reset_adam()
        return True

    # --- several plates ---------------------------------------------------------------------------------------
    def _init_multi(self, world):
        from optimizer.physics.multi_surrogate import MultiPlateSurrogate

        exp = world.exp
        plates = exp.plates()
        self.surrogate = band_surrogate(
            lambda lam, _f: MultiPlateSurrogate([t.position for t in exp.transmitters],
                                                [t.power_dbm for t in exp.transmitters], world.rs.targets,
                                                [r.size_m for r in plates], lam,
                                                aperture=exp.search.surrogate_level == "po",
                                                antennas=antenna_specs(exp, world.rs.targets)), exp, world.objective)
        self.offsets = [world_offsets(corner_offsets(half_widths(r.tolerance)), f.yaw_deg) if r.tolerance.active
                        else None for r, f in zip(plates, frames(world.rs, exp))]

    def _plate_vecs(self, vec) -> list[np.ndarray]:
        return [np.asarray(vec, float)[ax.slice] for ax in self.world.space.plates]

    def _multi_occlusion(self, pose_vecs) -> list[list[np.ndarray]]:
        """Per pose, per modelled path, [T, N] penalties [dB]: OCCLUSION_PENALTY_DB per blocked leg, all
        legs of all poses in one batched ray test."""
        rs = self.world.rs
        tx, tg = self.surrogate.tx, rs.targets
        origins, ends, where = [], [], []
        for p, vec in enumerate(pose_vecs):
            for q, pts in enumerate(self.surrogate.specular_points(self._plate_vecs(vec))):
                num_t, num_n = pts[0].shape[:2]
                chain = [np.repeat(tx, num_n, axis=0)] + [x.reshape(-1, 3) for x in pts] + [np.tile(tg, (num_t, 1))]
                for a, b in zip(chain[:-1], chain[1:]):
                    origins.append(a)
                    ends.append(b)
                    where.append((p, q, num_t, num_n))
        clear = rs.visible(np.concatenate(origins), np.concatenate(ends))
        out = [[np.zeros((len(tx), len(tg))) for _ in self.surrogate.path_names] for _ in pose_vecs]
        start = 0
        for o, (p, q, num_t, num_n) in zip(origins, where):
            blocked = ~clear[start:start + len(o)]
            start += len(o)
            out[p][q] += OCCLUSION_PENALTY_DB * blocked.reshape(num_t, num_n)
        return out

    def _multi_eval(self, vec, frac: float, occl, grad: bool = True) -> dict:
        w = self.world
        return self.surrogate.evaluate(self._plate_vecs(vec), w.edge_factor(frac), occlusion_db=occl, focus=w.focus,
                                       objective=w.objective, grad=grad,
                                       offsets=self.offsets)

    def _multi_explore(self, frac: float) -> bool:
        w = self.world
        space = w.space
        free = space.free.astype(float)
        vec0 = space.from_unit(w.unit)
        # which targets the other plates serve worst: per plate, the model's power of the other plates' paths
        paths = self._multi_eval(vec0, frac, self._multi_occlusion([vec0])[0], grad=False)["paths_dbm"]
        names = self.surrogate.path_names
        focus_idx = np.flatnonzero(w.focus) if np.any(w.focus) else np.arange(len(w.rs.targets))
        aims = []
        for k in range(len(space.plates)):
            others = [q for q, n in enumerate(names) if str(k) not in n.split(">")]
            with np.errstate(divide="ignore"):  # a target no other path reaches: -inf, served worst
                served = 10.0 * np.log10(np.sum(10.0 ** (paths[others] / 10.0), axis=0)) if others else \
                    np.full(paths.shape[1], -np.inf)
            worst = focus_idx[np.argsort(served[focus_idx], kind="stable")[: max(1, (len(focus_idx) + 1) // 2)]]
            aims.append(w.rs.targets[worst].mean(axis=0))
        cands = [w.unit.copy()]
        for _ in range(EXPLORE_SAMPLES // 2):
            u = space.project_unit(w.unit + w.rng.normal(0.0, EXPLORE_SIGMA, space.dim) * free)
            cands.append(u)
            vec = space.from_unit(u).copy()
            k = int(w.rng.integers(len(space.plates)))
            ax = space.plates[k]
            t = int(w.rng.integers(len(self.surrogate.tx)))
            yaw, pitch = specular_yaw_pitch(vec[ax.offset:ax.offset + 3], self.surrogate.tx[t], aims[k], ax.with_pitch)
            j = ax.offset + 3
            if space.free[j]:
                vec[j] = fit_yaw(ax, yaw)  # a PlateAxes has the lo/hi/yaw_periodic it reads
            if ax.with_pitch and space.free[j + 1]:
                vec[j + 1] = min(max(pitch, space.lo[j + 1]), space.hi[j + 1])
            cands.append(space.project_unit(space.to_unit(vec)))
        cands = self._mountable(cands)
        vecs = [space.from_unit(u) for u in cands]
        occl = self._multi_occlusion(vecs)
        scores = self.surrogate.evaluate_many([self._plate_vecs(v) for v in vecs], w.edge_factor(frac), occlusion_db=occl,
                                              focus=w.focus, objective=w.objective,
                                              offsets=self.offsets)["objective"]  # one batch for every candidate
        return self._jump(cands, self._penalised(vecs, scores))

    def _multi_step(self) -> ModeStep:
        w = self.world
        s = w.exp.search
        if self._explore_due():
            self._multi_explore(w.progress())
        surrogate_obj = None
        for i in range(s.inner_steps):
            frac = w.progress(i)
            vec = w.space.from_unit(w.unit)
            r = self._multi_eval(vec, frac, self._multi_occlusion([vec])[0])
            pen, pen_grad = self.protect_penalty(vec)
            surrogate_obj = r["objective"] - pen
            g = np.concatenate([r["grad"][k][: ax.dim] for k, ax in enumerate(w.space.plates)]) - pen_grad
            w.adam_ascent(w.space.grad_to_unit(g), w.learning_rate(frac))
        result = w.truth(w.unit)
        result.surrogate_dbm = surrogate_obj
        return result

    # --- one plate ----------------------------------------------------------------------------------------------
    def occlusion_db_batch(self, pose_vecs) -> np.ndarray:
        """`occlusion_db` of this world's model and scene."""
        return occlusion_db(self.surrogate, self.world.rs, pose_vecs)

    def explore(self, frac: float) -> bool:
        """Score EXPLORE_SAMPLES poses around the current one (surrogate only, no truth), each also turned
        to the specular yaw toward the targets that need the plate; jump to the best if it beats the current
        pose. Returns True when the world moved."""
        w = self.world
        space = w.space
        free = space.free.astype(float)
        cands = [w.unit.copy()]
        aim = w.rs.targets[w.focus].mean(axis=0)
        for _ in range(EXPLORE_SAMPLES // 2):
            u = space.project_unit(w.unit + w.rng.normal(0.0, EXPLORE_SIGMA, space.dim) * free)
            cands.append(u)
            vec = space.from_unit(u)
            t = int(w.rng.integers(len(self.surrogate.tx)))
            yaw, pitch = specular_yaw_pitch(vec[:3], self.surrogate.tx[t], aim, space.with_pitch)
            vec = vec.copy()
            if space.free[3]:
                vec[3] = fit_yaw(space, yaw)
            if space.with_pitch and space.free[4]:
                vec[4] = min(max(pitch, space.lo[4]), space.hi[4])
            cands.append(space.project_unit(space.to_unit(vec)))
        cands = self._mountable(cands)
        vecs = [space.from_unit(u) for u in cands]
        occl = self.occlusion_db_batch(vecs)
        k = w.edge_factor(frac)
        scores = self.surrogate.evaluate_many(vecs, k, occlusion_db=occl, focus=w.focus, objective=w.objective,
                                              offsets=self.offsets)["objective"]  # one batch for every candidate
        return self._jump(cands, self._penalised(vecs, scores))  # every score is finite (evaluate_many raises otherwise)

    def step(self) -> ModeStep:
        if self.multi:
            return self._multi_step()
        w = self.world
        s = w.exp.search
        moved = self.explore(w.progress()) if self._explore_due() else False
        bias = self.residual if s.residual_correction else None
        surrogate_obj = None
        for i in range(s.inner_steps):
            frac = w.progress(i)
            vec = w.space.from_unit(w.unit)
            occl = self.occlusion_db_batch([vec])[0]
            r = self.surrogate.evaluate(vec, w.edge_factor(frac), occlusion_db=occl, focus=w.focus,
                                        objective=w.objective, offsets=self.offsets, bias_db=bias)
            pen, pen_grad = self.protect_penalty(vec)
            surrogate_obj = r["objective"] - pen
            w.adam_ascent(w.space.grad_to_unit(r["grad"][: w.space.dim] - pen_grad), w.learning_rate(frac) * self.trust)
        before = self.last_objective
        result = w.truth(w.unit)
        result.surrogate_dbm = surrogate_obj
        if s.residual_correction or s.trust_region:
            self._correct(result, before, bias, moved)
        self.last_objective = float(result.objective_dbm)
        return result

    def _correct(self, result: ModeStep, before: float | None, bias, moved: bool):
        """Refresh the residual from the truth just seen; update the trust factor from how the truth's gain
        compares with the gain the corrected model predicted for this step."""
        w = self.world
        vec = w.space.from_unit(w.unit)
        occl = self.occlusion_db_batch([vec])[0]
        model = self.surrogate.evaluate(vec, w.edge_factor(w.progress(w.exp.search.inner_steps - 1)),
                                        occlusion_db=occl, focus=w.focus, objective=w.objective, grad=False,
                                        offsets=self.offsets)["power_dbm"]
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
