"""One world: a private scene with its own plate, optimised step by step, judged by ray-traced truth.

A step = `inner_steps` updates of the pose (gradient from the chosen mode) + one truth evaluation
(Sionna PathSolver). The world's result is the best truth it has seen, not its last iterate.
State (`get_state`) is small: pose, Adam moments, RNG state, best so far, the step count.
"""

from __future__ import annotations

import math
import time

import numpy as np

from optimizer.constants import (ADAM_BETAS, ADAM_EPS, EDGE_FACTOR_END, EDGE_FACTOR_START, EXPLORE_EVERY,
                                 EXPLORE_SAMPLES, EXPLORE_SIGMA, EXPLORE_UNTIL, LR_END_FRACTION, OCCLUSION_PENALTY_DB,
                                 SPSA_C0, WARMUP_LR_FRACTION)
from optimizer.geometry import Pose, PoseSpace, specular_yaw_pitch, wavelength_m
from optimizer.metrics import floor_rss, rank_key, rss_metrics, softmin_db
from optimizer.starts import fit_yaw


def focus_mask(baseline_rss, threshold_dbm: float, margin_db: float) -> np.ndarray:
    """Targets that need the plate: baseline below threshold + margin (all targets if none do)."""
    b = floor_rss(baseline_rss)
    mask = b < threshold_dbm + margin_db
    return mask if mask.any() else np.ones_like(mask)


class World:
    def __init__(self, exp, world_id: int, initial_pose: Pose, *, radio_scene=None, baseline_rss=None,
                 device: str | None = None, threads: int | None = None):
        from optimizer.scene import RadioScene

        self.exp = exp
        self.world_id = int(world_id)
        self.space = PoseSpace(exp.reflector)
        self.rs = radio_scene if radio_scene is not None else RadioScene(exp, device=device or exp.device,
                                                                          threads=threads)
        if baseline_rss is None:
            baseline_rss = self.rs.rss_dbm(None)
        self.baseline_rss = floor_rss(baseline_rss)
        obj = exp.objective
        self.focus = focus_mask(self.baseline_rss, obj.coverage_threshold_dbm, obj.focus_margin_db)
        self.mode = exp.search.gradient
        self.surrogate = None
        if self.mode == "surrogate":
            from optimizer.surrogate import PlateSurrogate

            self.surrogate = PlateSurrogate([t.position for t in exp.transmitters],
                                            [t.power_dbm for t in exp.transmitters], self.rs.targets,
                                            exp.reflector.size_m, wavelength_m(exp.frequency_hz))
        self.initial_pose = initial_pose
        self.unit = self.space.project_unit(self.space.to_unit(self.space.to_vec(initial_pose)))
        self.m = np.zeros(self.space.dim)
        self.v = np.zeros(self.space.dim)
        self.t = 0
        self.step_index = 0
        self.evaluations = 0
        self.best = None  # {"pose": dict, "metrics": dict, "step": int}
        self.last = None
        self.rng = np.random.default_rng([exp.search.seed, self.world_id, 7])
        self.history: list[dict] = []
        self.wall_s = 0.0

    # --- helpers -------------------------------------------------------------------------------------
    @property
    def pose(self) -> Pose:
        return self.space.to_pose(self.space.from_unit(self.unit))

    def _progress(self, inner: int = 0) -> float:
        s = self.exp.search
        total = max(1, s.steps * s.inner_steps - 1)
        return min(1.0, (self.step_index * s.inner_steps + inner) / total)

    def _edge_factor(self, frac: float) -> float:
        return EDGE_FACTOR_START * (EDGE_FACTOR_END / EDGE_FACTOR_START) ** frac

    def _lr(self, frac: float) -> float:
        lr0 = self.exp.search.learning_rate
        end = lr0 * LR_END_FRACTION
        lr = end + 0.5 * (lr0 - end) * (1.0 + math.cos(math.pi * frac))
        return lr * (WARMUP_LR_FRACTION if self.t == 0 else 1.0)

    def _adam_ascent(self, grad_unit: np.ndarray, lr: float):
        b1, b2 = ADAM_BETAS
        g = np.where(self.space.free, grad_unit, 0.0)
        self.t += 1
        self.m = b1 * self.m + (1 - b1) * g
        self.v = b2 * self.v + (1 - b2) * g * g
        mhat = self.m / (1 - b1 ** self.t)
        vhat = self.v / (1 - b2 ** self.t)
        self.unit = self.space.project_unit(self.unit + lr * mhat / (np.sqrt(vhat) + ADAM_EPS))

    def _truth(self, unit) -> tuple[np.ndarray, dict]:
        pose = self.space.to_pose(self.space.from_unit(unit))
        rss = floor_rss(self.rs.rss_dbm(pose))
        self.evaluations += 1
        return rss, self._record(pose, rss)

    def _record(self, pose: Pose, rss) -> dict:
        """Metrics of one truth evaluation; remembered if it is the best so far."""
        metrics = rss_metrics(rss, self.exp.objective.coverage_threshold_dbm)
        metrics["objective_dbm"] = softmin_db(rss, self.exp.objective.softmin_temperature_db, self.focus)
        self._consider(pose, metrics)
        return metrics

    def _consider(self, pose: Pose, metrics: dict):
        if self.best is None or rank_key(metrics) > rank_key(self.best["metrics"]):
            self.best = {"pose": pose.to_dict(), "metrics": dict(metrics), "step": self.step_index}

    def occlusion_db(self, pose_vec) -> np.ndarray:
        """Detached penalty [dB] per (Tx, target): OCCLUSION_PENALTY_DB per blocked leg."""
        return self.occlusion_db_batch([pose_vec])[0]

    def occlusion_db_batch(self, pose_vecs) -> np.ndarray:
        """[P, T, N] penalties for P poses with two batched ray tests."""
        pts = np.stack([self.surrogate.specular_points(v) for v in pose_vecs])  # [P, T, N, 3]
        num_p, num_t, num_n = pts.shape[:3]
        flat = pts.reshape(-1, 3)
        tx = np.tile(np.repeat(self.surrogate.tx, num_n, axis=0), (num_p, 1))
        leg1 = self.rs.visible(tx, flat)
        leg2 = self.rs.visible(flat, np.tile(self.rs.targets, (num_p * num_t, 1)))
        blocked = (~leg1).astype(float) + (~leg2).astype(float)
        return (OCCLUSION_PENALTY_DB * blocked).reshape(num_p, num_t, num_n)

    def explore(self, frac: float) -> bool:
        """Free local exploration (surrogate only, no ray-traced truth): score EXPLORE_SAMPLES poses drawn
        around the current one, each also turned to the specular yaw toward the targets that need the plate,
        and jump to the best if it beats the current pose. Returns True when the world moved."""
        space = self.space
        free = space.free.astype(float)
        cands = [self.unit.copy()]
        aim = self.rs.targets[self.focus].mean(axis=0)
        for _ in range(EXPLORE_SAMPLES // 2):
            u = space.project_unit(self.unit + self.rng.normal(0.0, EXPLORE_SIGMA, space.dim) * free)
            cands.append(u)
            vec = space.from_unit(u)
            t = int(self.rng.integers(len(self.surrogate.tx)))
            yaw, pitch = specular_yaw_pitch(vec[:3], self.surrogate.tx[t], aim, space.with_pitch)
            vec = vec.copy()
            if space.free[3]:
                vec[3] = fit_yaw(space, yaw)
            if space.with_pitch and space.free[4]:
                vec[4] = min(max(pitch, space.lo[4]), space.hi[4])
            cands.append(space.project_unit(space.to_unit(vec)))
        vecs = [space.from_unit(u) for u in cands]
        occl = self.occlusion_db_batch(vecs)
        k = self._edge_factor(frac)
        temp = self.exp.objective.softmin_temperature_db
        scores = [self.surrogate.evaluate(v, k, occlusion_db=o, focus=self.focus, temperature_db=temp,
                                          grad=False)["objective"] for v, o in zip(vecs, occl)]
        best = int(np.argmax(scores))
        if best == 0:
            return False
        self.unit = cands[best]
        self.m[:] = 0.0
        self.v[:] = 0.0
        self.t = 0
        return True

    # --- the step ------------------------------------------------------------------------------------
    def step(self) -> dict:
        t0 = time.perf_counter()
        if self.step_index == 0 and self.last is None and self.mode != "random":
            _, self.last = self._truth(self.unit)  # truth of the starting pose
        s = self.exp.search
        surrogate_obj = float("nan")
        if self.mode == "surrogate":
            last_cov = (self.last or {}).get("coverage", 0.0)
            if self.step_index == 0 or (last_cov < 1.0 and self.step_index % EXPLORE_EVERY == 0
                                        and self._progress() < EXPLORE_UNTIL):
                self.explore(self._progress())
            for i in range(s.inner_steps):
                frac = self._progress(i)
                vec = self.space.from_unit(self.unit)
                occl = self.occlusion_db(vec)
                r = self.surrogate.evaluate(vec, self._edge_factor(frac), occlusion_db=occl, focus=self.focus,
                                            temperature_db=self.exp.objective.softmin_temperature_db)
                surrogate_obj = r["objective"]
                self._adam_ascent(r["grad"][: self.space.dim] * self.space.span, self._lr(frac))
            _, metrics = self._truth(self.unit)
        elif self.mode == "random":
            self.unit = self.space.project_unit(self.rng.random(self.space.dim))
            if self.step_index == 0 and self.last is None:
                self.unit = self.space.project_unit(self.space.to_unit(self.space.to_vec(self.initial_pose)))
            _, metrics = self._truth(self.unit)
        elif self.mode == "spsa":
            delta = np.where(self.space.free, self.rng.choice([-1.0, 1.0], self.space.dim), 0.0)
            c = SPSA_C0 / (self.step_index + 1) ** 0.101
            up, down = self.space.project_unit(self.unit + c * delta), self.space.project_unit(self.unit - c * delta)
            _, m_up = self._truth(up)
            _, m_down = self._truth(down)
            g = (m_up["objective_dbm"] - m_down["objective_dbm"]) / (2 * c) * delta
            self._adam_ascent(g, self._lr(self._progress()))
            metrics = m_up if rank_key(m_up) >= rank_key(m_down) else m_down
        elif self.mode == "sionna":
            vec = self.space.from_unit(self.unit)
            rss, grad = self.rs.rss_dbm_with_grad(Pose.from_seq(list(vec) + [0.0] * (5 - len(vec))),
                                                  self.focus, self.exp.objective.softmin_temperature_db)
            self.evaluations += 1
            metrics = self._record(self.pose, rss)
            self._adam_ascent(grad[: self.space.dim] * self.space.span, self._lr(self._progress()))
            surrogate_obj = metrics["objective_dbm"]
        else:  # pragma: no cover - config validation forbids it
            raise ValueError(self.mode)
        self.last = metrics
        self.step_index += 1
        dt = time.perf_counter() - t0
        self.wall_s += dt
        row = self.metrics_row(metrics, surrogate_obj, dt)
        self.history.append(row)
        return row

    def metrics_row(self, metrics: dict, surrogate_obj: float, dt: float) -> dict:
        pose = self.pose
        best = self.best["metrics"]
        return {
            "world": self.world_id, "step": self.step_index, "x": pose.x, "y": pose.y, "z": pose.z,
            "yaw_deg": pose.yaw_deg, "pitch_deg": pose.pitch_deg,
            "min_rss_dbm": metrics["min_rss_dbm"], "p5_rss_dbm": metrics["p5_rss_dbm"],
            "mean_rss_dbm": metrics["mean_rss_dbm"], "coverage": metrics["coverage"],
            "objective_dbm": metrics["objective_dbm"], "surrogate_dbm": surrogate_obj,
            "best_min_rss_dbm": best["min_rss_dbm"], "best_coverage": best["coverage"],
            "best_mean_rss_dbm": best["mean_rss_dbm"], "evaluations": self.evaluations, "step_s": dt,
        }

    # --- checkpoint state ------------------------------------------------------------------------------
    def get_state(self) -> dict:
        return {"world": self.world_id, "unit": self.unit.tolist(), "m": self.m.tolist(), "v": self.v.tolist(),
                "t": self.t, "step_index": self.step_index, "evaluations": self.evaluations, "best": self.best,
                "last": self.last, "rng": self.rng.bit_generator.state, "history": self.history,
                "initial_pose": self.initial_pose.to_dict(), "wall_s": self.wall_s}

    def set_state(self, st: dict):
        self.unit = np.array(st["unit"], float)
        self.m, self.v = np.array(st["m"], float), np.array(st["v"], float)
        self.t, self.step_index, self.evaluations = int(st["t"]), int(st["step_index"]), int(st["evaluations"])
        self.best, self.last, self.history = st["best"], st["last"], list(st["history"])
        self.rng.bit_generator.state = st["rng"]
        self.wall_s = float(st.get("wall_s", 0.0))
