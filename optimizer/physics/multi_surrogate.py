"""Differentiable model of several plates (the gradient source of a multi-plate search; never a reported number).

A composition of the one-plate model (`optimizer.physics.surrogate.PlateSurrogate`):

* each plate's single-bounce path, exactly the one-plate model (soft edges, occlusion penalty, the worst case
  over that plate's own tolerance corners, optional PO aperture level);
* every plate -> plate double bounce (Tx -> plate i -> plate j -> target, i != j), by the image method: the Tx
  mirrored in plate i's plane, that image mirrored in plate j's plane; the specular points are where the line
  from the double image to the target crosses plane j, and the line from the first image to that point
  crosses plane i. Free-space gain over the unfolded length (metal: |reflection| about 1 per bounce). Each
  plate's edges are log-sigmoids of its specular point's signed distance over that plate's edge width (factor
  x the first Fresnel-zone radius of its bounce), each side condition (the point before a bounce on the
  plate's reflecting side) a log-sigmoid too; blocked legs (Tx -> i, i -> j, j -> target, detached ray tests)
  cost OCCLUSION_PENALTY_DB each; its worst case is over each of the two plates' tolerance corners in turn
  (the other plate nominal), as the truth's tolerance check moves the plates. The PO aperture level is not
  applied to double bounces (they keep the log-sigmoid edges);
* per target, the power sum of those paths' worst cases (a lower bound of the worst case of the sum), and
  the objective is the soft-min over the focus targets of that sum [dBm].
"""

from __future__ import annotations

import math

import numpy as np

from optimizer.constants import DB_PER_NEPER_POWER, EDGE_WIDTH_MIN_M
from optimizer.errors import NumericsError
from optimizer.physics.geometry import plate_frame
from optimizer.physics.backend import to_float
from optimizer.physics.surrogate import (PlateSurrogate, _dot, _log_sigmoid, model_of, worst_over_lanes)


def _pad5(vec) -> np.ndarray:
    v = np.asarray(vec, float).reshape(-1)
    return np.append(v, 0.0) if v.size == 4 else v


def _power_sum_db(dr, terms):
    """The power sum of Dr.Jit Floats in dB (stable log-sum-exp)."""
    if len(terms) == 1:
        return terms[0]
    m = terms[0]
    for p in terms[1:]:
        m = dr.maximum(m, p)
    m = dr.detach(m)
    acc = 0.0
    for p in terms:
        acc = acc + dr.exp((p - m) / DB_PER_NEPER_POWER)
    return m + DB_PER_NEPER_POWER * dr.log(acc)


def double_bounce_points(pose_i, pose_j, size_i, size_j, tx, targets):
    """Numpy image method of Tx -> plate i -> plate j -> targets: specular points on the two plates' planes
    (clamped onto the plates: the points the occlusion rays use) [N, 3] each, the unfolded length [N] and
    whether the hard-edge path exists [N]."""
    tx = np.asarray(tx, float)
    rx = np.atleast_2d(np.asarray(targets, float))
    ui, vi, ni = plate_frame(pose_i.yaw_deg, pose_i.pitch_deg)
    uj, vj, nj = plate_frame(pose_j.yaw_deg, pose_j.pitch_deg)
    ci, cj = np.array(pose_i.position), np.array(pose_j.position)
    t1 = tx - 2.0 * np.dot(tx - ci, ni) * ni
    t2 = t1 - 2.0 * np.dot(t1 - cj, nj) * nj
    s_r = (rx - cj) @ nj
    s_t2 = float(np.dot(t2 - cj, nj))
    f = np.abs(s_r) / np.maximum(np.abs(s_r) + abs(s_t2), 1e-12)
    qj = rx + (t2 - rx) * f[:, None]
    s_q = (qj - ci) @ ni
    s_t1 = float(np.dot(t1 - ci, ni))
    g = np.abs(s_q) / np.maximum(np.abs(s_q) + abs(s_t1), 1e-12)
    qi = qj + (t1 - qj) * g[:, None]
    ai, bi = (qi - ci) @ ui, (qi - ci) @ vi
    aj, bj = (qj - cj) @ uj, (qj - cj) @ vj
    side_tx = float(np.dot(tx - ci, ni))
    exists = ((np.sign(s_r) * s_t2 < 0) & (np.sign(side_tx) * s_q > 0) & (np.sign(side_tx) * s_t1 < 0)
              & (np.abs(ai) <= 0.5 * size_i[0]) & (np.abs(bi) <= 0.5 * size_i[1])
              & (np.abs(aj) <= 0.5 * size_j[0]) & (np.abs(bj) <= 0.5 * size_j[1]))
    qi_c = ci + np.clip(ai, -0.5 * size_i[0], 0.5 * size_i[0])[:, None] * ui \
        + np.clip(bi, -0.5 * size_i[1], 0.5 * size_i[1])[:, None] * vi
    qj_c = cj + np.clip(aj, -0.5 * size_j[0], 0.5 * size_j[0])[:, None] * uj \
        + np.clip(bj, -0.5 * size_j[1], 0.5 * size_j[1])[:, None] * vj
    return qi_c, qj_c, np.linalg.norm(t2 - rx, axis=1), exists


class MultiPlateSurrogate:
    """Smooth model of every plate path (single bounces and plate -> plate double bounces) for fixed
    transmitters and targets."""

    def __init__(self, tx_positions, tx_power_dbm, targets, sizes, wavelength_m: float, aperture: bool = False,
                 double_bounce: bool = True, antennas=None):
        """antennas: as `PlateSurrogate`'s, for the single bounces (double bounces keep isotropic V)."""
        import drjit as dr
        import mitsuba as mi

        self.dr, self.mi = dr, mi
        self.singles = [PlateSurrogate(tx_positions, tx_power_dbm, targets, s, wavelength_m, aperture=aperture,
                                       antennas=antennas) for s in sizes]
        first = self.singles[0]
        self.tx, self.tx_power_dbm, self.targets = first.tx, first.tx_power_dbm, first.targets
        self.sizes = [sg.size for sg in self.singles]
        self.wavelength = float(wavelength_m)
        self.pairs = [(i, j) for i in range(len(sizes)) for j in range(len(sizes)) if i != j] if double_bounce else []

    @property
    def path_names(self) -> list[str]:
        """The modelled paths, in the order of `evaluate`'s `paths_dbm`: 'k' single bounce off plate k,
        'i>j' double bounce (0-based plate indices)."""
        return [str(k) for k in range(len(self.singles))] + [f"{i}>{j}" for i, j in self.pairs]

    def _offsets(self, offsets) -> list[np.ndarray]:
        return [np.zeros((1, 5)) if (offsets is None or offsets[k] is None) else np.asarray(offsets[k], float)
                .reshape(-1, 5) for k in range(len(self.singles))]

    def _paths_db(self, param_of, offs, n_pose: int, edge_factor: float, edge_width_m, occlusion_db, grad: bool,
                  corner_temperature_db: float):
        """Each path of `path_names` as a Dr.Jit Float per (pose, target) lane [dBm] (its worst case over its
        tolerance lanes) and its detached copy [n_pose * N]. param_of(k, lanes): plate k's five parameters for
        a path of `lanes` lanes per pose (scalars, or per-lane Floats, pose-major). occlusion_db: None or, per
        path, [num_tx, N] (one pose) or [n_pose, num_tx, N]. All paths' lanes are evaluated together (one
        kernel per lane count), then all their worst cases."""
        dr = self.dr
        n_plates, n_tg = len(self.singles), self.targets.shape[0]
        raw, ks = [], []
        for k, sg in enumerate(self.singles):
            occ = None if occlusion_db is None else occlusion_db[k]
            raw.append(sg._plate_power_db(param_of(k, n_tg * offs[k].shape[0]), offs[k], edge_factor, edge_width_m,
                                          occ, grad, n_pose))
            ks.append(offs[k].shape[0])
        for m, (i, j) in enumerate(self.pairs):
            occ = None if occlusion_db is None else occlusion_db[n_plates + m]
            lanes_i = np.vstack([offs[i], np.zeros((offs[j].shape[0], 5))])
            lanes_j = np.vstack([np.zeros((offs[i].shape[0], 5)), offs[j]])
            if offs[i].shape[0] == 1 and offs[j].shape[0] == 1:
                lanes_i, lanes_j = offs[i], offs[j]
            n = n_tg * lanes_i.shape[0]
            raw.append(self._double_db(param_of(i, n), param_of(j, n), i, j, lanes_i, lanes_j, edge_factor,
                                       edge_width_m, occ, n_pose))
            ks.append(lanes_i.shape[0])
        dr.eval(*raw)
        paths = [p if k <= 1 else worst_over_lanes(p, np.array(dr.detach(p), dtype=float), n_pose * n_tg, k,
                                                   corner_temperature_db, evaluate=False)[0]
                 for p, k in zip(raw, ks)]
        dr.eval(*paths)
        return paths, [np.array(dr.detach(p), dtype=float) for p in paths]

    def evaluate(self, plate_vecs, edge_factor: float, occlusion_db=None, focus=None, temperature_db: float = 1.0,
                 grad: bool = True, edge_width_m: float | None = None, offsets=None,
                 corner_temperature_db: float = 0.5, objective=None):
        """Total plate power per target [dBm] (power sum over the paths), each path's power [P, N] [dBm], the
        soft-min objective [dBm] and its gradient [num_plates, 5] w.r.t. each plate's (x, y, z, yaw_deg,
        pitch_deg).

        plate_vecs: per plate x, y, z, yaw_deg[, pitch_deg]. occlusion_db: None or a list, one [num_tx, N]
        penalty [dB] per path of `path_names`. offsets: None or one [K, 5] array (or None) per plate, its
        tolerance corners as scene-frame moves (`optimizer.physics.tolerance.world_offsets`)."""
        dr, mi = self.dr, self.mi
        n_plates = len(self.singles)
        vecs = [_pad5(v) for v in plate_vecs]
        offs = self._offsets(offsets)
        params = [[dr.opaque(mi.Float, float(x)) for x in v] for v in vecs]
        if grad:
            for ps in params:
                for p in ps:
                    dr.enable_grad(p)
        paths, paths_np = self._paths_db(lambda k, _lanes: params[k], offs, 1, edge_factor, edge_width_m,
                                         occlusion_db, grad, corner_temperature_db)
        total = _power_sum_db(dr, paths)
        total_np = np.array(dr.detach(total), dtype=float)
        paths_np = np.stack(paths_np)
        obj = model_of(objective, temperature_db).model_dr(total, total_np, focus)
        value = float(np.array(dr.detach(obj)).reshape(-1)[0])
        gvec = np.zeros((n_plates, 5))
        if grad:
            dr.backward(obj, flags=dr.ADFlag.Default | dr.ADFlag.AllowNoGrad)
            gvec = np.array([[float(np.array(dr.grad(p)).reshape(-1)[0]) for p in ps] for ps in params])
        if not (np.isfinite(value) and np.isfinite(gvec).all()):
            what = "objective" if not np.isfinite(value) else "gradient"
            raise NumericsError(f"multi-plate surrogate at poses {[v.tolist() for v in vecs]}: the {what} is not "
                                "finite; stopped")
        return {"power_dbm": total_np, "paths_dbm": paths_np, "objective": value, "grad": gvec}

    def evaluate_many(self, poses, edge_factor: float, occlusion_db=None, focus=None, temperature_db: float = 1.0,
                      edge_width_m: float | None = None, offsets=None, corner_temperature_db: float = 0.5,
                      objective=None):
        """`evaluate` without the gradient for several joint poses at once, as one batch of lanes (pose-major,
        then target, then tolerance lane): the objective [dBm] per pose (`objective`, [P]), the total power
        (`power_dbm`, [P, N]) and each path's (`paths_dbm`, [P, num_paths, N]), each equal to what `evaluate`
        gives that pose.

        poses: P lists of per-plate vectors (as `evaluate`'s plate_vecs). occlusion_db: None or P lists, one
        [num_tx, N] penalty per path (as `evaluate`'s, per pose)."""
        dr = self.dr
        vecs = np.array([[_pad5(v) for v in pv] for pv in poses], dtype=float)  # [P, plates, 5]
        n_p, n_tg = vecs.shape[0], self.targets.shape[0]
        offs = self._offsets(offsets)
        occ = None if occlusion_db is None else [np.stack([np.asarray(o[q], float) for o in occlusion_db])
                                                 for q in range(len(self.path_names))]
        paths, paths_np = self._paths_db(lambda k, lanes: [to_float(np.repeat(vecs[:, k, c], lanes)) for c in range(5)],
                                         offs, n_p, edge_factor, edge_width_m, occ, False, corner_temperature_db)
        total = _power_sum_db(dr, paths)
        total_np = np.array(dr.detach(total), dtype=float).reshape(n_p, n_tg)
        value = model_of(objective, temperature_db).model_dr_many(total, total_np, focus)
        bad = np.flatnonzero(~np.isfinite(value))
        if bad.size:
            raise NumericsError(f"multi-plate surrogate at poses {vecs[bad[0]].tolist()}: the objective is not "
                                "finite; stopped")
        return {"power_dbm": total_np, "paths_dbm": np.stack([p.reshape(n_p, n_tg) for p in paths_np], axis=1),
                "objective": value}

    def _frame(self, params, lanes: np.ndarray, n_pose: int = 1):
        """Centre and (u, v, n) of a plate per (target, offset) lane, target-major (offsets as scene-frame
        moves dx, dy, dz [m], yaw, pitch [deg]: `optimizer.physics.tolerance.world_offsets`); with n_pose > 1
        the lanes are pose-major (pose, target, offset) and `params` per-lane Floats."""
        dr, mi = self.dr, self.mi
        n_tg = self.targets.shape[0]
        x, y, z, yaw, pitch = params
        col = [to_float(np.tile(lanes[:, c], n_tg * n_pose)) for c in range(5)]
        c = (x + col[0], y + col[1], z + col[2])  # scene-frame moves (`tolerance.world_offsets`)
        a = (yaw + col[3]) * (math.pi / 180.0)
        b = (pitch + col[4]) * (math.pi / 180.0)
        sa, ca, sb, cb = dr.sin(a), dr.cos(a), dr.sin(b), dr.cos(b)
        return c, (ca, sa, mi.Float(0.0)), (sa * sb, -ca * sb, cb), (-sa * cb, ca * cb, sb)

    def _double_db(self, params_i, params_j, i: int, j: int, lanes_i, lanes_j, edge_factor: float, edge_width_m,
                   occlusion_db, n_pose: int = 1):
        """Soft-edged power [dBm] of Tx -> plate i -> plate j -> target per (target, lane), summed over Tx (with
        n_pose > 1: per (pose, target, lane), `occlusion_db` [n_pose, num_tx, N])."""
        dr, mi = self.dr, self.mi
        k = lanes_i.shape[0]
        ci, ui, vi, ni = self._frame(params_i, lanes_i, n_pose)
        cj, uj, vj, nj = self._frame(params_j, lanes_j, n_pose)
        rx = [to_float(np.tile(np.repeat(self.targets[:, c], k), n_pose)) for c in range(3)]
        (hwi, hhi), (hwj, hhj) = [(0.5 * s[0], 0.5 * s[1]) for s in (self.sizes[i], self.sizes[j])]
        s_r = _dot([rx[c] - cj[c] for c in range(3)], nj)
        side_r = dr.select(dr.detach(s_r) >= 0, 1.0, -1.0)  # plate j's side facing the target
        per_tx = []
        for t in range(self.tx.shape[0]):
            tx = [float(v) for v in self.tx[t]]
            st = _dot([tx[c] - ci[c] for c in range(3)], ni)
            side_t = dr.select(dr.detach(st) >= 0, 1.0, -1.0)  # plate i's side facing the Tx
            t1 = [tx[c] - 2.0 * st * ni[c] for c in range(3)]
            s1 = _dot([t1[c] - cj[c] for c in range(3)], nj)  # > 0 on the target's side: the bounce i -> j is real
            t2 = [t1[c] - 2.0 * s1 * nj[c] for c in range(3)]
            d_r = dr.maximum(s_r * side_r, 1e-3)
            d_2 = dr.maximum(s1 * side_r, 1e-3)
            f = d_r / (d_r + d_2)
            qj = [rx[c] + (t2[c] - rx[c]) * f for c in range(3)]
            s_q = _dot([qj[c] - ci[c] for c in range(3)], ni) * side_t  # > 0: plate j's point faces plate i's side
            d_q = dr.maximum(s_q, 1e-3)
            d_1 = dr.maximum(dr.abs(st), 1e-3)
            g = d_q / (d_q + d_1)
            qi = [qj[c] + (t1[c] - qj[c]) * g for c in range(3)]
            ai, bi = _dot([qi[c] - ci[c] for c in range(3)], ui), _dot([qi[c] - ci[c] for c in range(3)], vi)
            aj, bj = _dot([qj[c] - cj[c] for c in range(3)], uj), _dot([qj[c] - cj[c] for c in range(3)], vj)
            length = dr.sqrt(sum(dr.square(t2[c] - rx[c]) for c in range(3)))
            # edge widths: factor x first Fresnel radius of each bounce (legs before / after it; detached)
            leg1 = dr.detach(dr.sqrt(sum(dr.square(qi[c] - tx[c]) for c in range(3))))
            leg3 = dr.detach(dr.sqrt(sum(dr.square(rx[c] - qj[c]) for c in range(3))))
            len_d = dr.detach(length)
            widths = []
            for d1 in (leg1, len_d - leg3):
                r_f = dr.sqrt(self.wavelength * d1 * dr.maximum(len_d - d1, 1e-3) / dr.maximum(len_d, 1e-3))
                if edge_width_m is not None:
                    widths.append(dr.opaque(mi.Float, max(edge_width_m, EDGE_WIDTH_MIN_M)))
                else:
                    widths.append(dr.maximum(dr.opaque(mi.Float, float(edge_factor)) * r_f, EDGE_WIDTH_MIN_M))
            wi, wj = widths
            soft = (_log_sigmoid(dr, (hwi - ai) / wi) + _log_sigmoid(dr, (hwi + ai) / wi)
                    + _log_sigmoid(dr, (hhi - bi) / wi) + _log_sigmoid(dr, (hhi + bi) / wi)
                    + _log_sigmoid(dr, (hwj - aj) / wj) + _log_sigmoid(dr, (hwj + aj) / wj)
                    + _log_sigmoid(dr, (hhj - bj) / wj) + _log_sigmoid(dr, (hhj + bj) / wj)
                    + _log_sigmoid(dr, s1 * side_r / wj) + _log_sigmoid(dr, s_q / wi))
            gain_db = 20.0 * dr.log(self.wavelength / (4.0 * math.pi * length)) / math.log(10.0)
            p_db = float(self.tx_power_dbm[t]) + gain_db + DB_PER_NEPER_POWER * soft
            if occlusion_db is not None:
                occl = np.asarray(occlusion_db, dtype=np.float32)
                occl = occl[t] if n_pose == 1 else occl[:, t, :].reshape(-1)
                p_db = p_db - to_float(np.repeat(occl, k))
            per_tx.append(p_db)
        return _power_sum_db(dr, per_tx)

    def specular_points(self, plate_vecs) -> list[list[np.ndarray]]:
        """Per path of `path_names`, the points of its bounces ([num_tx, N, 3] each, clamped onto the plates):
        the occlusion rays run Tx -> first point (-> second point) -> target."""
        from optimizer.records import PlatePose

        poses = [PlatePose.from_seq(_pad5(v)) for v in plate_vecs]
        out = [[sg.specular_points(_pad5(v))] for sg, v in zip(self.singles, plate_vecs)]
        for i, j in self.pairs:
            pts = [double_bounce_points(poses[i], poses[j], self.sizes[i], self.sizes[j], tx, self.targets)
                   for tx in self.tx]
            out.append([np.stack([p[0] for p in pts]), np.stack([p[1] for p in pts])])
        return out
