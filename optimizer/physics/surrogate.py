"""Differentiable single-bounce plate model (the gradient source; never a reported number).

Image method for a finite, two-sided flat plate, written in Dr.Jit so reverse-mode AD gives the
gradient of the objective w.r.t. the pose (x, y, z, yaw, pitch):

* specular point from the plate-local coordinates of Tx and target (same formula as `geometry.image_method`);
* power = Tx power + free-space gain over the unfolded length;
* the plate's edges (and the "target behind the plate" condition) are log-sigmoids of the signed
  distance over an edge width `w` = factor * first Fresnel-zone radius, added in dB: a target the plate
  misses by `d` metres costs about 4.34 * d / w dB, so it still pulls the plate (the gradient never
  vanishes), and as the factor anneals toward a fraction of a Fresnel zone the model tends to the
  hard-edge image method;
* legs blocked by the scene (detached ray tests) cost a constant `OCCLUSION_PENALTY_DB` each: they shift
  the soft-min's weights without zeroing any gradient;
* the objective is a soft-min (log-sum-exp, temperature [dB]) over targets of the plate path's own
  power in dB (adding the other paths' power masks the gradient: measured).

With `aperture` (`search.surrogate_level: po`, for a truth under `solver.plate_model: po`) the level comes from
the same PO factor as the truth (`po.po_factor_local`, with its analytic gradient): aperture loss
for small and distant plates, the Fresnel ripple and the smooth fall-off across the edge, with a floor
`PO_OFF_PLATE_RANGE_DB` below the plate's far-field best (capped at the mirror) so nulls and side lobes stay
finite. Beyond `SURROGATE_PULL_MARGIN_FRESNEL` Fresnel radii outside an edge the PO level is held at its
value there (the geometry shifted so the specular point stays on the margin: no side lobes to trap a
world) and the log-sigmoid edges, moved out to the margin, pull from far away.
"""

from __future__ import annotations

import math

import numpy as np

from optimizer.constants import (
    DB_PER_NEPER_POWER,
    EDGE_WIDTH_MIN_M,
    PO_OFF_PLATE_RANGE_DB,
    SURROGATE_PULL_MARGIN_FRESNEL,
)
from optimizer.errors import NumericsError
from optimizer.physics import antenna, po
from optimizer.physics.backend import to_float
from optimizer.physics.geometry import specular_point
from optimizer.records import PlatePose


def worst_over_lanes(p_all, p_np: np.ndarray, n_tg: int, k_off: int, temperature_db: float, evaluate: bool = True):
    """Per target, the soft-min (temperature [dB]) over its `k_off` lanes of `p_all` (a Dr.Jit Float [dB],
    lanes target-major; `p_np` its detached copy): the worst case over the tolerance box. Returns the Dr.Jit
    Float [n_tg] and its detached copy (None without `evaluate`: the caller evaluates several at once)."""
    import drjit as dr

    lo = p_np.reshape(n_tg, k_off).min(axis=1)
    tc = float(temperature_db)
    e = dr.exp(-(p_all - to_float(np.repeat(lo, k_off))) / tc)
    out = to_float(lo) - tc * dr.log(dr.block_sum(e, k_off) / float(k_off))
    return out, (np.array(dr.detach(out), dtype=float) if evaluate else None)


def model_of(objective, temperature_db: float):
    """The objective that reduces per-target powers to the model value (`optimizer.objectives`): `objective`,
    or the soft-min of `temperature_db` when None."""
    if objective is not None:
        return objective
    from optimizer import objectives

    return objectives.default(temperature_db)


def _log_sigmoid(dr, x):
    return dr.minimum(x, 0.0) - dr.log(1.0 + dr.exp(-dr.abs(x)))


def _dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


class PlateSurrogate:
    """Smooth model of the plate path for a fixed set of transmitters and targets."""

    def __init__(self, tx_positions, tx_power_dbm, targets, size_m, wavelength_m: float, aperture: bool = False,
                 antennas=None, sinr=None):
        """aperture: the plate path's level by the truth's PO factor (`search.surrogate_level: po`).
        antennas: (transmitter specs, target specs) (`optimizer.physics.antenna.AntennaSpec`, one per device):
        the plate path then includes the Tx pattern toward the specular point, the target's from it and the
        polarisation match through the plate (a perfect conductor); None or all default: no antenna term
        (isotropic V, as before antennas).
        sinr: (serving transmitter [N], interference plus noise [N] [dBm]) for `objective.combine: sinr`: each
        target's value is then its serving transmitter's plate path over that constant (in dB SINR, the
        truth's unit); None: the plate paths' power sum over transmitters [dBm]."""
        import drjit as dr
        import mitsuba as mi

        self.dr, self.mi = dr, mi
        self.tx = np.asarray(tx_positions, float).reshape(-1, 3)
        self.tx_power_dbm = np.asarray(tx_power_dbm, float).reshape(-1)
        self.targets = np.asarray(targets, float).reshape(-1, 3)
        self.size = (float(size_m[0]), float(size_m[1]))
        self.wavelength = float(wavelength_m)
        self.aperture = bool(aperture)
        self.sinr = None if sinr is None else (np.asarray(sinr[0], int), np.asarray(sinr[1], float))
        self.antennas = None
        if antennas is not None and not all(a.is_default for a in [*antennas[0], *antennas[1]]):
            self.antennas = (list(antennas[0]), list(antennas[1]))

    def _opaque(self, value):
        return self.dr.opaque(self.mi.Float, float(value))

    def evaluate(self, pose_vec, edge_factor: float, occlusion_db=None, focus=None,
                 temperature_db: float = 1.0, grad: bool = True, edge_width_m: float | None = None,
                 offsets=None, corner_temperature_db: float = 0.5, bias_db=None, objective=None):
        """Plate-path power per target [dBm], the soft-min objective [dBm] and its gradient w.r.t.
        (x, y, z, yaw_deg, pitch_deg) [dB per m / per deg].

        occlusion_db: [num_tx, num_targets] detached penalties [dB] (>= 0), or None.
        focus: boolean mask of the targets in the soft-min (None: all).
        edge_width_m: a fixed edge width [m] instead of factor * Fresnel radius (tests, hard-edge limit).
        offsets: [K, 5] mounting offsets as scene-frame moves (dx, dy, dz [m], yaw, pitch [deg]): the wall-frame
        box's corners through `optimizer.physics.tolerance.world_offsets`, the one helper that places a box in
        its wall's frame; each target's power is then its soft-min over the K offset poses
        (temperature `corner_temperature_db`), i.e. the worst case over the tolerance box, in one launch.
        bias_db: [num_targets] constant shifts [dB] added to each target's power before the soft-min (the
        truth correction of `search.residual_correction`: it moves the soft-min's weights, not the
        per-target gradients); `power_dbm` is returned without it.
        objective: what the per-target powers reduce to (`optimizer.objectives`; None: the soft-min of
        `temperature_db`).
        """
        dr = self.dr
        pose_vec = np.asarray(pose_vec, float)
        if pose_vec.size == 4:
            pose_vec = np.append(pose_vec, 0.0)
        offsets = np.zeros((1, 5)) if offsets is None else np.asarray(offsets, float).reshape(-1, 5)
        k_off = offsets.shape[0]
        n_tg = self.targets.shape[0]
        params = [self._opaque(v) for v in pose_vec]
        if grad:
            for p in params:
                dr.enable_grad(p)
        p_all = self._plate_power_db(params, offsets, edge_factor, edge_width_m, occlusion_db, grad)  # [N*K]
        p_np = np.array(dr.detach(p_all), dtype=float)
        if k_off > 1:  # worst case over the offset poses, per target (lanes are target-major)
            p_all, p_np = worst_over_lanes(p_all, p_np, n_tg, k_off, corner_temperature_db)
        if bias_db is not None:
            bias = np.asarray(bias_db, float).reshape(-1)
            obj = model_of(objective, temperature_db).model_dr(p_all + to_float(bias), p_np + bias, focus)
        else:
            obj = model_of(objective, temperature_db).model_dr(p_all, p_np, focus)
        value = float(np.array(dr.detach(obj)).reshape(-1)[0])
        gvec = np.zeros(5)
        if grad:
            dr.backward(obj)
            gvec = np.array([float(np.array(dr.grad(p)).reshape(-1)[0]) for p in params])
        if not (np.isfinite(value) and np.isfinite(gvec).all()):
            what = "objective" if not np.isfinite(value) else "gradient"
            raise NumericsError(f"surrogate at pose {list(map(float, pose_vec))}: the {what} is not finite "
                                f"({value if what == 'objective' else gvec.tolist()}); stopped")
        return {"power_dbm": p_np, "objective": value, "grad": gvec}

    def evaluate_many(self, pose_vecs, edge_factor: float, occlusion_db=None, focus=None,
                      temperature_db: float = 1.0, edge_width_m: float | None = None, offsets=None,
                      corner_temperature_db: float = 0.5, objective=None):
        """`evaluate` without the gradient for P poses at once, as one batch of lanes (pose-major, then
        target, then offset): the objective [dBm] per pose (`objective`, [P]) and the plate-path power
        [dBm] per pose and target (`power_dbm`, [P, N]), each equal to what `evaluate` gives that pose.

        occlusion_db: [P, num_tx, num_targets] detached penalties [dB], or None; the rest as in `evaluate`."""
        dr = self.dr
        vecs = np.asarray(pose_vecs, float).reshape(len(pose_vecs), -1)
        if vecs.shape[1] == 4:
            vecs = np.concatenate([vecs, np.zeros((vecs.shape[0], 1))], axis=1)
        offsets = np.zeros((1, 5)) if offsets is None else np.asarray(offsets, float).reshape(-1, 5)
        n_p, k_off, n_tg = vecs.shape[0], offsets.shape[0], self.targets.shape[0]
        params = [to_float(np.repeat(vecs[:, c], n_tg * k_off)) for c in range(5)]
        p_all = self._plate_power_db(params, offsets, edge_factor, edge_width_m, occlusion_db, False, n_p)
        p_np = np.array(dr.detach(p_all), dtype=float)
        if k_off > 1:  # worst case over the offset poses, per (pose, target)
            p_all, p_np = worst_over_lanes(p_all, p_np, n_p * n_tg, k_off, corner_temperature_db)
        p_np = p_np.reshape(n_p, n_tg)
        value = model_of(objective, temperature_db).model_dr_many(p_all, p_np, focus)
        bad = np.flatnonzero(~np.isfinite(value))
        if bad.size:
            raise NumericsError(f"surrogate at pose {vecs[bad[0]].tolist()}: the objective is not finite "
                                f"({value[bad[0]]}); stopped")
        return {"power_dbm": p_np, "objective": value}

    def _plate_power_db(self, params, offsets: np.ndarray, edge_factor: float, edge_width_m, occlusion_db,
                        grad: bool = True, n_pose: int = 1):
        """Soft-edged single-bounce power [dBm] per (target, offset) lane, target-major, summed over Tx.
        With n_pose > 1, `params` are per-lane Floats and `occlusion_db` is [n_pose, num_tx, num_targets]:
        the lanes are pose-major (pose, target, offset)."""
        dr, mi = self.dr, self.mi
        k_off = offsets.shape[0]
        n_tg = self.targets.shape[0]

        def lanes(col):
            return to_float(np.tile(offsets[:, col], n_tg * n_pose))

        x, y, z, yaw_deg, pitch_deg = params
        d_x, d_y, d_z, d_yaw, d_pitch = (lanes(c) for c in range(5))  # scene-frame moves (`world_offsets`)
        cx, cy, cz = x + d_x, y + d_y, z + d_z
        a = (yaw_deg + d_yaw) * (math.pi / 180.0)
        b = (pitch_deg + d_pitch) * (math.pi / 180.0)
        sa, ca, sb, cb = dr.sin(a), dr.cos(a), dr.sin(b), dr.cos(b)
        u = (ca, sa, mi.Float(0.0))
        v = (sa * sb, -ca * sb, cb)
        n = (-sa * cb, ca * cb, sb)
        tgt = [to_float(np.tile(np.repeat(self.targets[:, c], k_off), n_pose))
               for c in range(3)]
        rel_r = (tgt[0] - cx, tgt[1] - cy, tgt[2] - cz)
        ar, br, sr = _dot(rel_r, u), _dot(rel_r, v), _dot(rel_r, n)
        hw, hh = 0.5 * self.size[0], 0.5 * self.size[1]
        per_tx = []
        for t in range(self.tx.shape[0]):
            rel_t = (float(self.tx[t, 0]) - cx, float(self.tx[t, 1]) - cy, float(self.tx[t, 2]) - cz)
            at, bt, st = _dot(rel_t, u), _dot(rel_t, v), _dot(rel_t, n)
            side = dr.select(dr.detach(st) >= 0, 1.0, -1.0)  # the side of the plate facing this Tx
            st_s, sr_s = st * side, sr * side
            st_e = dr.maximum(st_s, 1e-3)
            sr_e = dr.maximum(sr_s, 1e-3)
            frac = st_e / (st_e + sr_e)
            aq = at + (ar - at) * frac
            bq = bt + (br - bt) * frac
            length = dr.sqrt(dr.square(ar - at) + dr.square(br - bt) + dr.square(st_e + sr_e))
            # Edge width: factor * first Fresnel-zone radius at the specular point (detached).
            len_d = dr.detach(length)
            frac_d = dr.detach(frac)
            r_f = dr.sqrt(self.wavelength * len_d * frac_d * (1.0 - frac_d))
            if edge_width_m is not None:
                w = self._opaque(max(edge_width_m, EDGE_WIDTH_MIN_M))
            else:
                w = dr.maximum(self._opaque(edge_factor) * r_f, EDGE_WIDTH_MIN_M)
            margin = SURROGATE_PULL_MARGIN_FRESNEL * r_f if self.aperture else 0.0
            soft = (_log_sigmoid(dr, (hw + margin - aq) / w) + _log_sigmoid(dr, (hw + margin + aq) / w)
                    + _log_sigmoid(dr, (hh + margin - bq) / w) + _log_sigmoid(dr, (hh + margin + bq) / w)
                    + _log_sigmoid(dr, sr_s / w))
            gain_db = 20.0 * dr.log(self.wavelength / (4.0 * math.pi * length)) / math.log(10.0)
            p_db = float(self.tx_power_dbm[t]) + gain_db + DB_PER_NEPER_POWER * soft
            if self.aperture:  # PO level, its specular point held within the margin (beyond it: the pull)
                da = dr.clip(aq, -hw - margin, hw + margin) - aq
                db = dr.clip(bq, -hh - margin, hh + margin) - bq
                p_db = p_db + self._aperture_db((at + da, bt + db, st_e), (ar + da, br + db, sr_e), r_f, grad,
                                                n_tg * k_off * n_pose)
            if self.antennas is not None:  # patterns toward the specular point, polarisation through the plate
                q = tuple((cx, cy, cz)[c] + aq * u[c] + bq * v[c] for c in range(3))
                p_db = p_db + self._antenna_db(t, q, tgt, n, k_off, n_pose)
            if occlusion_db is not None:
                occl = np.asarray(occlusion_db, dtype=np.float32)
                occl = occl[t] if n_pose == 1 else occl[:, t, :].reshape(-1)
                p_db = p_db - to_float(np.repeat(occl, k_off))
            per_tx.append(p_db)
        if self.sinr is not None:  # the serving transmitter's plate path over the rest (dB SINR)
            serving, rest_db = (np.tile(np.repeat(a, k_off), n_pose) for a in self.sinr)
            out = to_float(-rest_db)
            for t, p in enumerate(per_tx):
                out = out + dr.select(to_float(serving == t) > 0.5, p, 0.0)
            return out
        if len(per_tx) == 1:
            return per_tx[0]
        m = per_tx[0]  # power sum over transmitters, in dB (stable log-sum-exp)
        for p in per_tx[1:]:
            m = dr.maximum(m, p)
        m = dr.detach(m)
        acc = mi.Float(0.0)
        for p in per_tx:
            acc = acc + dr.exp((p - m) / DB_PER_NEPER_POWER)
        return m + DB_PER_NEPER_POWER * dr.log(acc)

    def _antenna_db(self, t: int, q, tgt, n, k_off: int, n_pose: int):
        """[dB] Tx t's field toward the specular point q, reflected by the plate (normal n), into each target's
        field toward q (`antenna.mirror_coupling_dr`); lanes as `_plate_power_db`'s."""
        dr = self.dr
        tx_specs, rx_specs = self.antennas

        def unit(vec):
            norm = dr.sqrt(dr.maximum(sum(dr.square(c) for c in vec), 1e-12))
            return tuple(c / norm for c in vec)

        tx_ports = antenna.field(tx_specs[t], unit(tuple(q[c] - float(self.tx[t, c]) for c in range(3))))
        rot = None  # the targets share a pattern; with look_at each has its own orientation: per-lane rotations
        if any(sp != rx_specs[0] for sp in rx_specs):
            mats = np.stack([antenna.rotation(sp.orientation_rad) for sp in rx_specs])  # [N, 3, 3]
            rot = [[to_float(np.tile(np.repeat(mats[:, i, j], k_off), n_pose)) for j in range(3)] for i in range(3)]
        rx_ports = antenna.field(rx_specs[0], unit(tuple(q[c] - tgt[c] for c in range(3))), rot)
        return antenna.mirror_coupling_dr(tx_ports, rx_ports, n)

    def _aperture_db(self, s, o, r_f, grad: bool = True, lanes: int | None = None):
        """10 log10(|F|^2 + floor) [dB] per target as a Dr.Jit Float: the truth's PO factor (numpy, float64)
        for the source s and observers o in plate coordinates (Dr.Jit, attached), entered into the AD graph
        with its analytic gradient (value + sum_q dlevel/dq (q - detach(q)): deterministic, no scatter).
        The floor lies PO_OFF_PLATE_RANGE_DB below the far-field factor (A cos th / lambda rho)^2 capped at 1
        (detached; lambda rho = r_f^2). Without `grad` the value alone (no derivatives computed)."""
        dr = self.dr
        num = lanes or self.targets.shape[0]
        q = list(s) + list(o)  # s_a, s_b, s_h, o_a, o_b, o_h
        dr.eval(*[dr.detach(c) for c in q], r_f)  # one kernel for all the host copies below
        q_np = [np.broadcast_to(np.array(dr.detach(c), float).reshape(-1), (num,)) for c in q]
        half = (np.full(num, 0.5 * self.size[0]), np.full(num, 0.5 * self.size[1]))
        f, df = (po.po_factor_local(q_np[:3], q_np[3:], *half, self.wavelength, gradient=True) if grad
                 else (po.po_factor_local(q_np[:3], q_np[3:], *half, self.wavelength), None))
        f2 = np.abs(f) ** 2
        length = po.unfolded_length(q_np[:3], q_np[3:])
        r_f2 = np.maximum(np.array(r_f, float).reshape(-1), 1e-6) ** 2
        cos_i = (q_np[2] + q_np[5]) / length
        floor = np.minimum((self.size[0] * self.size[1] * cos_i / r_f2) ** 2, 1.0) * 10.0 ** (-PO_OFF_PLATE_RANGE_DB / 10)
        level = DB_PER_NEPER_POWER * np.log(f2 + floor)
        if not grad:
            return to_float(level)
        slope = DB_PER_NEPER_POWER * 2.0 * np.real(np.conj(f)[:, None] * df) / (f2 + floor)[:, None]  # [N, 6]
        out = to_float(level)
        for j, c in enumerate(q):
            out = out + to_float(slope[:, j]) * (c - dr.detach(c))
        return out

    def specular_points(self, pose_vec) -> np.ndarray:
        """[num_tx, num_targets, 3] specular points clamped onto the plate (for the occlusion rays)."""
        pose = PlatePose.from_seq(list(pose_vec)[:5])
        return np.stack([specular_point(pose, tx, self.targets).point(self.size) for tx in self.tx])
