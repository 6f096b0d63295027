"""`flat_plate` (the default reflector kind): a finite, two-sided, flat metal rectangle.

Pose conventions are those of `optimizer.records.pose`: at yaw 0 and pitch 0 the plate lies in the x-z plane
with its normal along +y; yaw rotates about +z; pitch tilts the normal up. The numpy formulas (frame, corners,
specular point, image method) live in `optimizer.physics.geometry` (the independent reference the tests use),
the PO factor in `optimizer.physics.po`, the edge-point distance in `optimizer.physics.overlap`.

Its surrogate path (`path_power_db`), the image method in Dr.Jit so reverse-mode AD gives the gradient w.r.t.
(x, y, z, yaw, pitch):

* the specular point from the plate-local coordinates of Tx and target;
* power = Tx power + free-space gain over the unfolded length;
* the plate's edges (and the "target behind the plate" condition) are log-sigmoids of the signed distance over
  an edge width `w` = factor * first Fresnel-zone radius, added in dB: a target the plate misses by `d` metres
  costs about 4.34 * d / w dB, so it still pulls the plate, and as the factor anneals the model tends to the
  hard-edge image method;
* legs blocked by the scene (detached ray tests) cost a constant penalty each (`occlusion_db`);
* with `aperture` (`search.surrogate_level: po`) the level comes from the truth's PO factor
  (`po.po_factor_local`, with its analytic gradient), floored `PO_OFF_PLATE_RANGE_DB` below the plate's far-field
  best; beyond `SURROGATE_PULL_MARGIN_FRESNEL` Fresnel radii outside an edge the PO level is held at its value
  there and the log-sigmoid edges, moved out to the margin, pull from far away;
* with antennas, each transmitter's pattern toward the specular point, the target's from it and the
  polarisation match through the plate (`optimizer.physics.antenna`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from optimizer.constants import (
    DB_PER_NEPER_POWER,
    EDGE_WIDTH_MIN_M,
    PO_OFF_PLATE_RANGE_DB,
    SURROGATE_PULL_MARGIN_FRESNEL,
)
from optimizer.physics import antenna, po
from optimizer.physics.backend import to_float
from optimizer.physics.geometry import plate_corners, plate_frame, specular_point
from optimizer.physics.reflectors import ReflectorKind, register_reflector_kind
from optimizer.records import PlatePose

PLATE_CUT_LINES = 3  # interior lines of the scene-cut test along each plate axis (a 4 x 4 grid of cells)


def log_sigmoid(dr, x):
    return dr.minimum(x, 0.0) - dr.log(1.0 + dr.exp(-dr.abs(x)))


def dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def occlusion_lanes(occlusion_db, t: int, n_pose: int, k: int):
    """Transmitter t's occlusion penalties [dB] ([num_tx, N], or [n_pose, num_tx, N]) on a path's lanes (pose,
    target, then k tolerance lanes) as a Dr.Jit Float."""
    occl = np.asarray(occlusion_db, dtype=np.float32)
    occl = occl[t] if n_pose == 1 else occl[:, t, :].reshape(-1)
    return to_float(np.repeat(occl, k))


def frame_dr(yaw_deg, pitch_deg):
    """(u, v, n) of a plate as Dr.Jit Float triples, differentiable w.r.t. yaw and pitch [deg] (the formula of
    `optimizer.physics.geometry.plate_frame`)."""
    import drjit as dr
    import mitsuba as mi

    a, b = yaw_deg * (math.pi / 180.0), pitch_deg * (math.pi / 180.0)
    sa, ca, sb, cb = dr.sin(a), dr.cos(a), dr.sin(b), dr.cos(b)
    return (ca, sa, mi.Float(0.0)), (sa * sb, -ca * sb, cb), (-sa * cb, ca * cb, sb)


@register_reflector_kind
class FlatPlate(ReflectorKind):
    name = "flat_plate"

    # --- frame, mesh, specular points (numpy) ------------------------------------------------------------------
    def frame(self, pose: PlatePose):
        """(u, v, n) unit vectors at `pose`: width axis, height axis, normal."""
        return plate_frame(pose.yaw_deg, pose.pitch_deg)

    def corners(self, pose: PlatePose) -> np.ndarray:
        """[4, 3] the mesh's vertices at `pose` (the PLY's corner order)."""
        return plate_corners(pose, self.size)

    def mi_mesh(self, name: str, pose: PlatePose | None = None):
        """The plate as a Mitsuba mesh (two triangles) at `pose`, or centred at the origin in the x-z plane
        (normal +y) without one; built as Sionna's `load_mesh` loads a PLY (face normals, flipped normals, a
        placeholder radio material until the scene sets the plate's)."""
        import mitsuba as mi
        import sionna.rt as rt

        props = mi.Properties()
        props["face_normals"] = True
        props["flip_normals"] = True
        props["bsdf"] = rt.RadioMaterial("placeholder", 1.0)
        mesh = mi.Mesh(name, 4, 2, props=props, has_vertex_normals=False, has_vertex_texcoords=False)
        params = mi.traverse(mesh)
        params["vertex_positions"] = mi.Float(self.corners(pose or PlatePose(0.0, 0.0, 0.0, 0.0))
                                              .ravel().astype(np.float32))
        params["faces"] = mi.UInt32([0, 1, 2, 0, 2, 3])
        params.update()
        return mesh

    def write_mesh(self, path: Path, pose: PlatePose | None = None) -> Path:
        """The plate's PLY (Mitsuba's `Mesh.write_ply`: binary, float32 vertices) at `pose`, or centred at the
        origin without one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.mi_mesh(path.stem, pose).write_ply(str(path))
        return path

    def corners_dr(self, params):
        """The 4 corners as one flat Dr.Jit Float [12] (x, y, z per corner, the PLY's order), differentiable
        w.r.t. params = (x, y, z, yaw_deg, pitch_deg) (Dr.Jit Floats of width 1): a gradient mode's vertices."""
        import drjit as dr
        import mitsuba as mi

        x, y, z, yaw, pitch = params
        u, v, _ = frame_dr(yaw, pitch)
        hw, hh = 0.5 * self.size[0], 0.5 * self.size[1]
        vals = []
        for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            vals += [c + su * hw * uu + sv * hh * vv for c, uu, vv in zip((x, y, z), u, v)]
        idx = mi.UInt32(list(range(len(vals))))
        out = dr.zeros(mi.Float, len(vals))
        for i, val in enumerate(vals):
            out = dr.select(idx == i, val, out)
        return out

    def specular(self, pose: PlatePose, tx, rx):
        """Where a single bounce Tx -> plane -> each receiver meets the plate's plane (`geometry.Specular`)."""
        return specular_point(pose, tx, rx)

    def specular_points(self, pose: PlatePose, tx_all, targets) -> np.ndarray:
        """[T, N, 3] the specular points clamped onto the plate (where the occlusion rays run)."""
        return np.stack([self.specular(pose, tx, targets).point(self.size) for tx in np.atleast_2d(tx_all)])

    # --- PO factor, overlap, scene cut --------------------------------------------------------------------------
    def po_factor(self, source, observer, pose: PlatePose, wavelength_m: float) -> np.ndarray:
        """[M] complex: the PO factor F of the plate at `pose` for virtual sources and observers [M, 3]."""
        u, v, n = self.frame(pose)
        return po.po_factor(source, observer, np.array(pose.position, float), u, v, n, self.size, wavelength_m)

    def reach_m(self) -> float:
        """[m] the radius of a sphere about the centre that holds the plate."""
        return 0.5 * float(np.hypot(*self.size))

    def distance_m(self, pose: PlatePose, other: ReflectorKind, other_pose: PlatePose) -> float:
        """[m] the smallest distance to another plate (0 where they cross; `overlap.plate_distance`)."""
        from optimizer.physics.overlap import plate_distance

        return plate_distance(pose, self.size, other_pose, other.size)

    def cut_segments(self, pose: PlatePose) -> tuple[np.ndarray, np.ndarray]:
        """(origins [S, 3], ends [S, 3]) along which the plate at `pose` is tested against the scene: the 4
        edges, the 2 diagonals, PLATE_CUT_LINES interior lines along the width and as many along the height,
        then segments of the thickness along the normal through the 4 corners and the centre."""
        u, v, n = self.frame(pose)
        c = self.corners(pose)
        hw, hh = 0.5 * self.size[0], 0.5 * self.size[1]
        centre = np.array(pose.position, float)
        starts = [c[0], c[1], c[2], c[3], c[0], c[1]]
        ends = [c[1], c[2], c[3], c[0], c[2], c[3]]
        for f in np.linspace(-1.0, 1.0, PLATE_CUT_LINES + 2)[1:-1]:
            starts += [centre - hw * u + f * hh * v, centre + f * hw * u - hh * v]
            ends += [centre + hw * u + f * hh * v, centre + f * hw * u + hh * v]
        half_t = 0.5 * self.thickness_m * n
        for p in [*c, centre]:
            starts.append(p - half_t)
            ends.append(p + half_t)
        return np.array(starts, float), np.array(ends, float)

    # --- the surrogate's single bounce (Dr.Jit) ----------------------------------------------------------------
    def path_power_db(self, link, params, offsets: np.ndarray, edge_factor: float, edge_width_m, occlusion_db,
                      grad: bool = True, n_pose: int = 1) -> list:
        """Per transmitter of `link` (the surrogate: tx, tx_power_dbm, targets, wavelength, aperture,
        antennas), the soft-edged single-bounce power [dBm] per (target, offset) lane, target-major, as a
        Dr.Jit Float. params: (x, y, z, yaw_deg, pitch_deg); offsets [K, 5] scene-frame moves
        (`tolerance.world_offsets`). With n_pose > 1, `params` are per-lane Floats, `occlusion_db`
        [n_pose, num_tx, N] and the lanes pose-major (pose, target, offset)."""
        import drjit as dr
        import mitsuba as mi

        k_off = offsets.shape[0]
        n_tg = link.targets.shape[0]
        lam = link.wavelength

        def lanes(col):
            return to_float(np.tile(offsets[:, col], n_tg * n_pose))

        x, y, z, yaw_deg, pitch_deg = params
        d_x, d_y, d_z, d_yaw, d_pitch = (lanes(c) for c in range(5))  # scene-frame moves (`world_offsets`)
        cx, cy, cz = x + d_x, y + d_y, z + d_z
        u, v, n = frame_dr(yaw_deg + d_yaw, pitch_deg + d_pitch)
        tgt = [to_float(np.tile(np.repeat(link.targets[:, c], k_off), n_pose)) for c in range(3)]
        rel_r = (tgt[0] - cx, tgt[1] - cy, tgt[2] - cz)
        ar, br, sr = dot(rel_r, u), dot(rel_r, v), dot(rel_r, n)
        hw, hh = 0.5 * self.size[0], 0.5 * self.size[1]
        per_tx = []
        for t in range(link.tx.shape[0]):
            rel_t = (float(link.tx[t, 0]) - cx, float(link.tx[t, 1]) - cy, float(link.tx[t, 2]) - cz)
            at, bt, st = dot(rel_t, u), dot(rel_t, v), dot(rel_t, n)
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
            r_f = dr.sqrt(lam * len_d * frac_d * (1.0 - frac_d))
            if edge_width_m is not None:
                w = dr.opaque(mi.Float, max(edge_width_m, EDGE_WIDTH_MIN_M))
            else:
                w = dr.maximum(dr.opaque(mi.Float, float(edge_factor)) * r_f, EDGE_WIDTH_MIN_M)
            margin = SURROGATE_PULL_MARGIN_FRESNEL * r_f if link.aperture else 0.0
            soft = (log_sigmoid(dr, (hw + margin - aq) / w) + log_sigmoid(dr, (hw + margin + aq) / w)
                    + log_sigmoid(dr, (hh + margin - bq) / w) + log_sigmoid(dr, (hh + margin + bq) / w)
                    + log_sigmoid(dr, sr_s / w))
            gain_db = 20.0 * dr.log(lam / (4.0 * math.pi * length)) / math.log(10.0)
            p_db = float(link.tx_power_dbm[t]) + gain_db + DB_PER_NEPER_POWER * soft
            if link.aperture:  # PO level, its specular point held within the margin (beyond it: the pull)
                da = dr.clip(aq, -hw - margin, hw + margin) - aq
                db = dr.clip(bq, -hh - margin, hh + margin) - bq
                p_db = p_db + self._aperture_db((at + da, bt + db, st_e), (ar + da, br + db, sr_e), r_f, lam, grad,
                                                n_tg * k_off * n_pose)
            if link.antennas is not None:  # patterns toward the specular point, polarisation through the plate
                q = tuple((cx, cy, cz)[c] + aq * u[c] + bq * v[c] for c in range(3))
                p_db = p_db + self._antenna_db(link, t, q, tgt, n, k_off, n_pose)
            if occlusion_db is not None:
                p_db = p_db - occlusion_lanes(occlusion_db, t, n_pose, k_off)
            per_tx.append(p_db)
        return per_tx

    @staticmethod
    def _antenna_db(link, t: int, q, tgt, n, k_off: int, n_pose: int):
        """[dB] Tx t's field toward the specular point q, reflected by the plate (normal n), into each target's
        field toward q (`antenna.mirror_coupling_dr`); lanes as `path_power_db`'s."""
        import drjit as dr

        tx_specs, rx_specs = link.antennas

        def unit(vec):
            norm = dr.sqrt(dr.maximum(sum(dr.square(c) for c in vec), 1e-12))
            return tuple(c / norm for c in vec)

        tx_ports = antenna.field(tx_specs[t], unit(tuple(q[c] - float(link.tx[t, c]) for c in range(3))))
        rot = None  # the targets share a pattern; with look_at each has its own orientation: per-lane rotations
        if any(sp != rx_specs[0] for sp in rx_specs):
            mats = np.stack([antenna.rotation(sp.orientation_rad) for sp in rx_specs])  # [N, 3, 3]
            rot = [[to_float(np.tile(np.repeat(mats[:, i, j], k_off), n_pose)) for j in range(3)] for i in range(3)]
        rx_ports = antenna.field(rx_specs[0], unit(tuple(q[c] - tgt[c] for c in range(3))), rot)
        return antenna.mirror_coupling_dr(tx_ports, rx_ports, n)

    def _aperture_db(self, s, o, r_f, wavelength: float, grad: bool, lanes: int):
        """10 log10(|F|^2 + floor) [dB] per lane as a Dr.Jit Float: the truth's PO factor (numpy, float64)
        for the source s and observers o in plate coordinates (Dr.Jit, attached), entered into the AD graph
        with its analytic gradient (value + sum_q dlevel/dq (q - detach(q)): deterministic, no scatter).
        The floor lies PO_OFF_PLATE_RANGE_DB below the far-field factor (A cos th / lambda rho)^2 capped at 1
        (detached; lambda rho = r_f^2). Without `grad` the value alone (no derivatives computed)."""
        import drjit as dr

        q = list(s) + list(o)  # s_a, s_b, s_h, o_a, o_b, o_h
        dr.eval(*[dr.detach(c) for c in q], r_f)  # one kernel for all the host copies below
        q_np = [np.broadcast_to(np.array(dr.detach(c), float).reshape(-1), (lanes,)) for c in q]
        half = (np.full(lanes, 0.5 * self.size[0]), np.full(lanes, 0.5 * self.size[1]))
        f, df = (po.po_factor_local(q_np[:3], q_np[3:], *half, wavelength, gradient=True) if grad
                 else (po.po_factor_local(q_np[:3], q_np[3:], *half, wavelength), None))
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
