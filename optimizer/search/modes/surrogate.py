"""`surrogate` (the default): Adam on the differentiable single-bounce plate model, with free exploration.

Each step makes `inner_steps` updates of the pose from the surrogate's gradient (occlusion by detached ray
tests), then one truth evaluation. At its first step, and every EXPLORE_EVERY steps while a target stays
uncovered (until EXPLORE_UNTIL of its steps), the world also explores for free: it scores EXPLORE_SAMPLES
nearby poses with the surrogate (half turned to the specular yaw; all of them, at every corner of the
tolerance box, as one batch of Dr.Jit lanes) and jumps to the best if it beats its
own pose. Only truth evaluations count as cost.
"""

from __future__ import annotations

import numpy as np

from optimizer.constants import EXPLORE_EVERY, EXPLORE_SAMPLES, EXPLORE_SIGMA, EXPLORE_UNTIL, OCCLUSION_PENALTY_DB
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

    def occlusion_db_batch(self, pose_vecs) -> np.ndarray:
        """[P, T, N] penalties [dB] for P poses with one batched ray test (both legs, every pose, in one
        launch against the plate-free scene): OCCLUSION_PENALTY_DB per blocked leg (Tx -> plate,
        plate -> target)."""
        rs = self.world.rs
        pts = np.stack([self.surrogate.specular_points(v) for v in pose_vecs])  # [P, T, N, 3]
        num_p, num_t, num_n = pts.shape[:3]
        flat = pts.reshape(-1, 3)
        tx = np.tile(np.repeat(self.surrogate.tx, num_n, axis=0), (num_p, 1))
        m = flat.shape[0]
        clear = rs.visible(np.concatenate([tx, flat]), np.concatenate([flat, np.tile(rs.targets, (num_p * num_t, 1))]))
        leg1, leg2 = clear[:m], clear[m:]
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
        scores = self.surrogate.evaluate_many(vecs, k, occlusion_db=occl, focus=w.focus, temperature_db=temp,
                                              offsets=self.offsets)["objective"]  # one batch for every candidate
        best = int(np.argmax(scores))  # every score is finite (evaluate_many raises otherwise)
        if best == 0:
            return False
        w.unit = cands[best]
        w.reset_adam()
        return True

    def step(self) -> ModeStep:
        w = self.world
        s = w.exp.search
        last_cov = w.last.coverage if w.last is not None else 0.0
        if w.step_index == 0 or (last_cov < 1.0 and w.step_index % EXPLORE_EVERY == 0
                                 and w.progress() < EXPLORE_UNTIL):
            self.explore(w.progress())
        surrogate_obj = None
        for i in range(s.inner_steps):
            frac = w.progress(i)
            vec = w.space.from_unit(w.unit)
            occl = self.occlusion_db_batch([vec])[0]
            r = self.surrogate.evaluate(vec, w.edge_factor(frac), occlusion_db=occl, focus=w.focus,
                                        temperature_db=w.exp.objective.softmin_temperature_db, offsets=self.offsets)
            surrogate_obj = r["objective"]
            w.adam_ascent(r["grad"][: w.space.dim] * w.space.span, w.learning_rate(frac))
        result = w.truth(w.unit)
        result.surrogate_dbm = surrogate_obj
        return result
