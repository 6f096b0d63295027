"""`surrogate` (the default): Adam on the differentiable single-bounce plate model, with free exploration.

Each step makes `inner_steps` updates of the pose from the surrogate's gradient (occlusion by detached ray
tests), then one truth evaluation. At its first step, and every EXPLORE_EVERY steps while a target stays
uncovered (until EXPLORE_UNTIL of its steps), the world also explores for free: it scores EXPLORE_SAMPLES
nearby poses with the surrogate (half turned to the specular yaw) and jumps to the best if it beats its
own pose. Only truth evaluations count as cost.

The world climbs the truth, not only the model:
* `search.residual_correction`: after each truth check, each target's surrogate power is shifted by what the
  truth said there (truth minus model at the same pose, clipped to +-RESIDUAL_CLIP_DB; a target with no
  path: -RESIDUAL_CLIP_DB), so the soft-min weighs the targets the truth finds worst;
* `search.trust_region`: the learning rate is scaled by a trust factor, halved when the truth's gain over
  a step is under TRUST_BAD_RATIO of the corrected model's (both ends of the step under the same
  correction), doubled (up to 1) above TRUST_GOOD_RATIO.
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
from optimizer.physics.metrics import softmin_db
from optimizer.physics.geometry import specular_yaw_pitch, wavelength_m
from optimizer.physics.tolerance import corner_offsets, half_widths
from optimizer.search.modes import GradientMode, ModeStep, register_gradient_mode
from optimizer.search.starts import fit_yaw


@register_gradient_mode
class SurrogateMode(GradientMode):
    name = "surrogate"

    def __init__(self, world):
        super().__init__(world)
        from optimizer.physics.surrogate import PlateSurrogate

        exp = world.exp
        self.surrogate = PlateSurrogate([t.position for t in exp.transmitters],
                                        [t.power_dbm for t in exp.transmitters], world.rs.targets,
                                        exp.reflector.size_m, wavelength_m(exp.frequency_hz),
                                        aperture=exp.search.surrogate_level == "po")
        # the worst case over the mounting tolerance's corners, in every evaluation (None: tolerance off)
        tol = exp.reflector.tolerance
        self.offsets = corner_offsets(half_widths(tol)) if tol.active else None
        self.residual: np.ndarray | None = None  # [targets] truth minus model [dB] at the last truth check
        self.trust = TRUST_MAX
        self.last_objective: float | None = None  # [dBm] the truth's soft-min at the last truth check
        self.last_model: np.ndarray | None = None  # [targets] the model's power there [dBm]

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

    def occlusion_db_batch(self, pose_vecs) -> np.ndarray:
        """[P, T, N] penalties [dB] for P poses with two batched ray tests: OCCLUSION_PENALTY_DB per blocked
        leg (Tx -> plate, plate -> target)."""
        rs = self.world.rs
        pts = np.stack([self.surrogate.specular_points(v) for v in pose_vecs])  # [P, T, N, 3]
        num_p, num_t, num_n = pts.shape[:3]
        flat = pts.reshape(-1, 3)
        tx = np.tile(np.repeat(self.surrogate.tx, num_n, axis=0), (num_p, 1))
        leg1 = rs.visible(tx, flat)
        leg2 = rs.visible(flat, np.tile(rs.targets, (num_p * num_t, 1)))
        blocked = (~leg1).astype(float) + (~leg2).astype(float)
        return (OCCLUSION_PENALTY_DB * blocked).reshape(num_p, num_t, num_n)

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
        vecs = [space.from_unit(u) for u in cands]
        occl = self.occlusion_db_batch(vecs)
        k = w.edge_factor(frac)
        temp = w.exp.objective.softmin_temperature_db
        scores = [self.surrogate.evaluate(v, k, occlusion_db=o, focus=w.focus, temperature_db=temp,
                                          grad=False, offsets=self.offsets)["objective"] for v, o in zip(vecs, occl)]
        best = int(np.argmax(scores))  # every score is finite (evaluate raises otherwise)
        if best == 0:
            return False
        w.unit = cands[best]
        w.reset_adam()
        return True

    def step(self) -> ModeStep:
        w = self.world
        s = w.exp.search
        temp = w.exp.objective.softmin_temperature_db
        last_cov = w.last.coverage if w.last is not None else 0.0
        moved = False
        if w.step_index == 0 or (last_cov < 1.0 and w.step_index % EXPLORE_EVERY == 0
                                 and w.progress() < EXPLORE_UNTIL):
            moved = self.explore(w.progress())
        bias = self.residual if s.residual_correction else None
        surrogate_obj = None
        for i in range(s.inner_steps):
            frac = w.progress(i)
            vec = w.space.from_unit(w.unit)
            occl = self.occlusion_db_batch([vec])[0]
            r = self.surrogate.evaluate(vec, w.edge_factor(frac), occlusion_db=occl, focus=w.focus,
                                        temperature_db=temp, offsets=self.offsets, bias_db=bias)
            surrogate_obj = r["objective"]
            w.adam_ascent(r["grad"][: w.space.dim] * w.space.span, w.learning_rate(frac) * self.trust)
        before = self.last_objective
        result = w.truth(w.unit)
        result.surrogate_dbm = surrogate_obj
        if s.residual_correction or s.trust_region:
            self._correct(result, before, bias, moved, temp)
        self.last_objective = float(result.objective_dbm)
        return result

    def _correct(self, result: ModeStep, before: float | None, bias, moved: bool, temp: float):
        """Refresh the residual from the truth just seen; update the trust factor from how the truth's gain
        compares with the gain the corrected model predicted for this step."""
        w = self.world
        vec = w.space.from_unit(w.unit)
        occl = self.occlusion_db_batch([vec])[0]
        model = self.surrogate.evaluate(vec, w.edge_factor(w.progress(w.exp.search.inner_steps - 1)),
                                        occlusion_db=occl, focus=w.focus, temperature_db=temp, grad=False,
                                        offsets=self.offsets)["power_dbm"]
        prev, self.last_model = self.last_model, model
        if w.exp.search.trust_region and before is not None and prev is not None and not moved:
            shift = 0.0 if bias is None else bias  # the same correction on both sides of the step
            predicted = softmin_db(model + shift, temp, w.focus) - softmin_db(prev + shift, temp, w.focus)
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
