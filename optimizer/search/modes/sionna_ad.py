"""`sionna` (comparison): Sionna's own autodiff of the PathSolver w.r.t. the plate pose.

It sees only path-length changes of paths that already exist (measured): exactly zero for sliding the
plate in its plane and for every target the plate does not yet reach, so from a cold start it never finds
coverage. Diffraction is off in its differentiated solve (it breaks reverse mode); a solve that fails gives
a zero gradient, but NaN or infinity in its power or gradient stops the world (NumericsError).
"""

from __future__ import annotations

import math

import numpy as np

from optimizer.constants import NO_PATH_FLOOR_DBM
from optimizer.errors import NumericsError
from optimizer.search.modes import GradientMode, ModeStep, register_gradient_mode


def _ad_solver(rs):
    """A PathSolver of its own in evaluated loop mode (reverse mode needs it; the truth solver stays
    symbolic and untouched)."""
    import sionna.rt as rt

    solver = getattr(rs, "_ad_solver", None)
    if solver is None:
        solver = rt.PathSolver()
        solver.loop_mode = "evaluated"
        rs._ad_solver = solver
    return solver


def rss_dbm_with_grad(rs, pose, focus, objective):
    """RSS per target [dBm] (-inf: no path) and the gradient [num_plates, 5] of the objective over the focus
    targets w.r.t. every plate's (x, y, z, yaw_deg, pitch_deg) (its vertices by its reflector kind)."""
    import drjit as dr
    import mitsuba as mi

    from optimizer.physics.reflectors import kinds

    s = rs.exp.solver
    params = [[dr.opaque(mi.Float, float(v)) for v in p.as_list()] for p in pose.plates]
    flat = [p for ps in params for p in ps]
    for p in flat:
        dr.enable_grad(p)
    grad = np.zeros((len(params), 5))
    paths = None
    bad = None  # what was not finite
    try:
        for k, (kind, ps) in enumerate(zip(kinds(rs.exp), params)):
            rs.write_plate_vertices(k, kind.corners_dr(ps))
        solver = _ad_solver(rs)
        paths = solver(rs.scene, max_depth=s.max_depth, samples_per_src=int(s.samples_per_src),
                          max_num_paths_per_src=int(s.samples_per_src), refraction=s.refraction,
                          diffraction=False, seed=s.seed)
        a_re, a_im = paths.a
        shape = tuple(a_re.shape)
        n_rx, n_tx, n_paths = shape[0], shape[2], int(np.prod(shape[4:])) if len(shape) > 4 else 1
        if n_paths > 0:
            a2 = dr.square(a_re.array) + dr.square(a_im.array)
            # Tx power per entry of the flattened [rx, rx_ant, tx, tx_ant, path] array [mW]
            w = np.tile(np.repeat(10.0 ** (rs.tx_power_dbm / 10.0), shape[3] * n_paths),
                        n_rx * shape[1]).astype(np.float32)
            per_rx = dr.block_sum(a2 * mi.Float(w), shape[1] * n_tx * shape[3] * n_paths)
            db = dr.maximum(10.0 * dr.log(per_rx + 1e-30) / math.log(10.0), NO_PATH_FLOOR_DBM)
            db_np = np.array(dr.detach(db), dtype=float)
            if not np.isfinite(np.array(dr.detach(per_rx), dtype=float)).all():
                bad = "received power"
            obj = objective.model_dr(db, db_np, focus)
            dr.backward(obj, flags=dr.ADFlag.Default | dr.ADFlag.AllowNoGrad)
            grad = np.array([[float(np.array(dr.grad(p)).reshape(-1)[0]) for p in ps] for ps in params])
            if bad is None and not np.isfinite(grad).all():
                bad = "gradient"
    except Exception:  # noqa: BLE001 - a comparison mode: fall back to a zero gradient
        grad = np.zeros((len(params), 5))
    finally:
        for p in flat:  # leave no AD graph behind (a later world on this scene would crash Dr.Jit at exit)
            dr.disable_grad(p)
        rs.set_pose(pose)  # detached vertex buffer again
        paths = None
    if bad is not None:
        raise NumericsError(f"sionna gradient at {pose}: the {bad} is not finite; stopped")
    # the reported truth is the truth (plate model, diffraction) at the pose; the gradient stays Sionna's GO
    return rs.rss_dbm(pose), grad


@register_gradient_mode
class SionnaMode(GradientMode):
    name = "sionna"

    def step(self) -> ModeStep:
        w = self.world
        pose = w.pose
        rss, grad = rss_dbm_with_grad(w.rs, pose, w.focus, w.objective)
        w.evaluations += 1
        result = w.record(pose, rss)
        g = np.concatenate([grad[k][: ax.dim] for k, ax in enumerate(w.space.plates)])
        w.adam_ascent(w.space.grad_to_unit(g), w.learning_rate(w.progress()))
        result.surrogate_dbm = result.objective_dbm
        return result
