"""The plate -> plate double bounce of the surrogate (Tx -> plate i -> plate j -> target, i != j), by the image
method on the two plates' planes (their kinds' frames and sizes):

* the Tx mirrored in plate i's plane, that image mirrored in plate j's plane; the specular points are where
  the line from the double image to the target crosses plane j, and the line from the first image to that
  point crosses plane i;
* free-space gain over the unfolded length (metal: |reflection| about 1 per bounce);
* each plate's edges are log-sigmoids of its specular point's signed distance over that plate's edge width
  (factor x the first Fresnel-zone radius of its bounce), each side condition (the point before a bounce on the
  plate's reflecting side) a log-sigmoid too; blocked legs cost the occlusion penalty each. The PO aperture
  level and the antennas are not applied to double bounces (isotropic V, log-sigmoid edges).
"""

from __future__ import annotations

import math

import numpy as np

from optimizer.constants import DB_PER_NEPER_POWER, EDGE_WIDTH_MIN_M
from optimizer.physics.backend import to_float
from optimizer.physics.reflectors.flat_plate import dot, frame_dr, log_sigmoid, occlusion_lanes


def double_bounce_points(pose_i, pose_j, size_i, size_j, tx, targets):
    """Numpy image method of Tx -> plate i -> plate j -> targets: specular points on the two plates' planes
    (clamped onto the plates: the points the occlusion rays use) [N, 3] each, the unfolded length [N] and
    whether the hard-edge path exists [N]."""
    from optimizer.physics.geometry import plate_frame

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


def _placed(params, lanes: np.ndarray, n_tg: int, n_pose: int):
    """Centre and (u, v, n) of a plate per (target, offset) lane, target-major (offsets as scene-frame moves
    dx, dy, dz [m], yaw, pitch [deg]: `optimizer.physics.tolerance.world_offsets`); with n_pose > 1 the lanes
    are pose-major (pose, target, offset) and `params` per-lane Floats."""
    x, y, z, yaw, pitch = params
    col = [to_float(np.tile(lanes[:, c], n_tg * n_pose)) for c in range(5)]
    return (x + col[0], y + col[1], z + col[2]), *frame_dr(yaw + col[3], pitch + col[4])


def double_db(link, params_i, params_j, size_i, size_j, lanes_i, lanes_j, edge_factor: float, edge_width_m,
              occlusion_db, n_pose: int = 1) -> list:
    """Per transmitter of `link` (the surrogate), the soft-edged power [dBm] of Tx -> plate i -> plate j ->
    target per (target, lane) (with n_pose > 1: per (pose, target, lane), `occlusion_db` [n_pose, num_tx, N])."""
    import drjit as dr
    import mitsuba as mi

    k = lanes_i.shape[0]
    n_tg = link.targets.shape[0]
    ci, ui, vi, ni = _placed(params_i, lanes_i, n_tg, n_pose)
    cj, uj, vj, nj = _placed(params_j, lanes_j, n_tg, n_pose)
    rx = [to_float(np.tile(np.repeat(link.targets[:, c], k), n_pose)) for c in range(3)]
    (hwi, hhi), (hwj, hhj) = [(0.5 * s[0], 0.5 * s[1]) for s in (size_i, size_j)]
    s_r = dot([rx[c] - cj[c] for c in range(3)], nj)
    side_r = dr.select(dr.detach(s_r) >= 0, 1.0, -1.0)  # plate j's side facing the target
    per_tx = []
    for t in range(link.tx.shape[0]):
        tx = [float(v) for v in link.tx[t]]
        st = dot([tx[c] - ci[c] for c in range(3)], ni)
        side_t = dr.select(dr.detach(st) >= 0, 1.0, -1.0)  # plate i's side facing the Tx
        t1 = [tx[c] - 2.0 * st * ni[c] for c in range(3)]
        s1 = dot([t1[c] - cj[c] for c in range(3)], nj)  # > 0 on the target's side: the bounce i -> j is real
        t2 = [t1[c] - 2.0 * s1 * nj[c] for c in range(3)]
        d_r = dr.maximum(s_r * side_r, 1e-3)
        d_2 = dr.maximum(s1 * side_r, 1e-3)
        f = d_r / (d_r + d_2)
        qj = [rx[c] + (t2[c] - rx[c]) * f for c in range(3)]
        s_q = dot([qj[c] - ci[c] for c in range(3)], ni) * side_t  # > 0: plate j's point faces plate i's side
        d_q = dr.maximum(s_q, 1e-3)
        d_1 = dr.maximum(dr.abs(st), 1e-3)
        g = d_q / (d_q + d_1)
        qi = [qj[c] + (t1[c] - qj[c]) * g for c in range(3)]
        ai, bi = dot([qi[c] - ci[c] for c in range(3)], ui), dot([qi[c] - ci[c] for c in range(3)], vi)
        aj, bj = dot([qj[c] - cj[c] for c in range(3)], uj), dot([qj[c] - cj[c] for c in range(3)], vj)
        length = dr.sqrt(sum(dr.square(t2[c] - rx[c]) for c in range(3)))
        # edge widths: factor x first Fresnel radius of each bounce (legs before / after it; detached)
        leg1 = dr.detach(dr.sqrt(sum(dr.square(qi[c] - tx[c]) for c in range(3))))
        leg3 = dr.detach(dr.sqrt(sum(dr.square(rx[c] - qj[c]) for c in range(3))))
        len_d = dr.detach(length)
        widths = []
        for d1 in (leg1, len_d - leg3):
            r_f = dr.sqrt(link.wavelength * d1 * dr.maximum(len_d - d1, 1e-3) / dr.maximum(len_d, 1e-3))
            if edge_width_m is not None:
                widths.append(dr.opaque(mi.Float, max(edge_width_m, EDGE_WIDTH_MIN_M)))
            else:
                widths.append(dr.maximum(dr.opaque(mi.Float, float(edge_factor)) * r_f, EDGE_WIDTH_MIN_M))
        wi, wj = widths
        soft = (log_sigmoid(dr, (hwi - ai) / wi) + log_sigmoid(dr, (hwi + ai) / wi)
                + log_sigmoid(dr, (hhi - bi) / wi) + log_sigmoid(dr, (hhi + bi) / wi)
                + log_sigmoid(dr, (hwj - aj) / wj) + log_sigmoid(dr, (hwj + aj) / wj)
                + log_sigmoid(dr, (hhj - bj) / wj) + log_sigmoid(dr, (hhj + bj) / wj)
                + log_sigmoid(dr, s1 * side_r / wj) + log_sigmoid(dr, s_q / wi))
        gain_db = 20.0 * dr.log(link.wavelength / (4.0 * math.pi * length)) / math.log(10.0)
        p_db = float(link.tx_power_dbm[t]) + gain_db + DB_PER_NEPER_POWER * soft
        if occlusion_db is not None:
            p_db = p_db - occlusion_lanes(occlusion_db, t, n_pose, k)
        per_tx.append(p_db)
    return per_tx
