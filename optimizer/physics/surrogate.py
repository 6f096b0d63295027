"""Differentiable model of the plate paths (the gradient source; never a reported number), for one plate or
several: one plate is the one-element case.

* each plate's single bounce, by its reflector kind (`optimizer.physics.reflectors`, `path_power_db`: for
  `flat_plate` the image method with soft edges, occlusion penalty, optional PO aperture level and antennas);
* with several plates every plate -> plate double bounce (`optimizer.physics.double_bounce`);
* each path's worst case over its tolerance lanes (the box's corners as scene-frame moves: each plate's own
  for a single bounce, each of the two plates' in turn for a double bounce), a soft-min per target;
* the transmitters combined as `objective.combine` asks (`sinr`): the power sum over transmitters (`sum`,
  `best_server`: a smooth maximum within 3 dB of it), or, with `sinr`, each target's serving transmitter's
  paths over the others' power plus noise (a constant from one truth without the plates: dB SINR, the
  truth's unit);
* per target, the power sum of the paths (a lower bound of the worst case of the sum), and the objective
  (`optimizer.objectives`) of those per-target values, with its gradient w.r.t. every plate's
  (x, y, z, yaw_deg, pitch_deg) by reverse-mode AD.

Legs blocked by the scene (detached ray tests) cost a constant `OCCLUSION_PENALTY_DB` each: they shift the
soft-min's weights without zeroing any gradient. The objective is of the plate paths' own power (adding the
other paths' power masks the gradient: measured).
"""

from __future__ import annotations

import numpy as np

from optimizer import objectives
from optimizer.constants import DB_PER_NEPER_POWER
from optimizer.errors import NumericsError
from optimizer.physics.backend import to_float
from optimizer.physics.double_bounce import double_bounce_points, double_db
from optimizer.physics.reflectors import as_kind
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


def power_sum_db(dr, terms):
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


def _pad5(vec) -> np.ndarray:
    v = np.asarray(vec, float).reshape(-1)
    return np.append(v, 0.0) if v.size == 4 else v


class PlateSurrogate:
    """Smooth model of every plate path (single bounces and, with several plates, plate -> plate double
    bounces) for fixed transmitters and targets."""

    def __init__(self, tx_positions, tx_power_dbm, targets, plates, wavelength_m: float, aperture: bool = False,
                 double_bounce: bool = True, antennas=None, sinr=None):
        """plates: per plate its reflector kind (`optimizer.physics.reflectors`) or its size [width, height]
        [m] (a flat plate). aperture: the single bounces' level by the truth's PO factor
        (`search.surrogate_level: po`). antennas: (transmitter specs, target specs)
        (`optimizer.physics.antenna.AntennaSpec`, one per device): the single bounces then include the Tx
        pattern toward the specular point, the target's from it and the polarisation match through the plate;
        None or all default: isotropic V. sinr: (serving transmitter [N], interference plus noise [N] [dBm])
        for `objective.combine: sinr` (`sinr_terms`); None: the power sum over transmitters [dBm]."""
        import drjit as dr
        import mitsuba as mi

        self.dr, self.mi = dr, mi
        self.tx = np.asarray(tx_positions, float).reshape(-1, 3)
        self.tx_power_dbm = np.asarray(tx_power_dbm, float).reshape(-1)
        self.targets = np.asarray(targets, float).reshape(-1, 3)
        self.kinds = [as_kind(p) for p in plates]
        self.sizes = [k.size for k in self.kinds]
        self.wavelength = float(wavelength_m)
        self.aperture = bool(aperture)
        self.sinr = None if sinr is None else (np.asarray(sinr[0], int), np.asarray(sinr[1], float))
        self.antennas = None
        if antennas is not None and not all(a.is_default for a in [*antennas[0], *antennas[1]]):
            self.antennas = (list(antennas[0]), list(antennas[1]))
        n = len(self.kinds)
        self.pairs = [(i, j) for i in range(n) for j in range(n) if i != j] if double_bounce else []

    @property
    def path_names(self) -> list[str]:
        """The modelled paths, in the order of `evaluate`'s `paths_dbm`: 'k' single bounce off plate k,
        'i>j' double bounce (0-based plate indices)."""
        return [str(k) for k in range(len(self.kinds))] + [f"{i}>{j}" for i, j in self.pairs]

    # --- one plate's pose given alone (the one-element joint pose) ---------------------------------------------
    def _joint(self, pose, occlusion_db, offsets, many: bool = False):
        """(joint vectors, occlusion per path, offsets per plate): a pose given as one plate's vector (of a
        one-plate model; `many`: [P, 5]) with its [T, N] occlusion (`many`: [P, T, N]) and [K, 5] offsets is
        the one-element joint pose."""
        first = pose[0][0] if many else pose[0]
        flat = np.ndim(first) == 0  # a number: the pose is one plate's vector (`many`: P of them)
        if not flat:
            return pose, occlusion_db, offsets, False
        if len(self.kinds) != 1:
            raise ValueError(f"a pose of one plate for a model of {len(self.kinds)} plates")
        if many:
            pose = [[v] for v in np.asarray(pose, float)]
            occlusion_db = None if occlusion_db is None else [[o] for o in np.asarray(occlusion_db, float)]
        else:
            pose = [pose]
            occlusion_db = None if occlusion_db is None else [occlusion_db]
        return pose, occlusion_db, (None if offsets is None else [offsets]), True

    def _offsets(self, offsets) -> list[np.ndarray]:
        return [np.zeros((1, 5)) if (offsets is None or offsets[k] is None) else np.asarray(offsets[k], float)
                .reshape(-1, 5) for k in range(len(self.kinds))]

    def _over_tx(self, per_tx, k: int, n_pose: int):
        """One path's lanes combined over transmitters: the power sum [dBm], or (sinr) the serving transmitter's
        over the interference plus noise [dB] (the paths' power sum is then the serving power's SINR)."""
        if self.sinr is None:
            return power_sum_db(self.dr, per_tx)
        serving, rest_db = (np.tile(np.repeat(a, k), n_pose) for a in self.sinr)
        out = to_float(-rest_db)
        for t, p in enumerate(per_tx):
            out = out + self.dr.select(to_float(serving == t) > 0.5, p, 0.0)
        return out

    def _paths_db(self, param_of, offs, n_pose: int, edge_factor: float, edge_width_m, occlusion_db, grad: bool,
                  corner_temperature_db: float):
        """Each path of `path_names` as a Dr.Jit Float per (pose, target) lane [dBm] (its worst case over its
        tolerance lanes) and its detached copy [n_pose * N]. param_of(k, lanes): plate k's five parameters for
        a path of `lanes` lanes per pose (scalars, or per-lane Floats, pose-major). occlusion_db: None or, per
        path, [num_tx, N] (one pose) or [n_pose, num_tx, N]. All paths' lanes are evaluated together (one
        kernel per lane count), then all their worst cases."""
        dr = self.dr
        n_plates, n_tg = len(self.kinds), self.targets.shape[0]
        raw, ks = [], []
        for k, kind in enumerate(self.kinds):
            occ = None if occlusion_db is None else occlusion_db[k]
            per_tx = kind.path_power_db(self, param_of(k, n_tg * offs[k].shape[0]), offs[k], edge_factor,
                                        edge_width_m, occ, grad, n_pose)
            raw.append(self._over_tx(per_tx, offs[k].shape[0], n_pose))
            ks.append(offs[k].shape[0])
        for m, (i, j) in enumerate(self.pairs):
            occ = None if occlusion_db is None else occlusion_db[n_plates + m]
            lanes_i = np.vstack([offs[i], np.zeros((offs[j].shape[0], 5))])
            lanes_j = np.vstack([np.zeros((offs[i].shape[0], 5)), offs[j]])
            if offs[i].shape[0] == 1 and offs[j].shape[0] == 1:
                lanes_i, lanes_j = offs[i], offs[j]
            n = n_tg * lanes_i.shape[0]
            per_tx = double_db(self, param_of(i, n), param_of(j, n), self.sizes[i], self.sizes[j], lanes_i, lanes_j,
                               edge_factor, edge_width_m, occ, n_pose)
            raw.append(self._over_tx(per_tx, lanes_i.shape[0], n_pose))
            ks.append(lanes_i.shape[0])
        dr.eval(*raw)
        paths = [p if k <= 1 else worst_over_lanes(p, np.array(dr.detach(p), dtype=float), n_pose * n_tg, k,
                                                   corner_temperature_db, evaluate=False)[0]
                 for p, k in zip(raw, ks)]
        dr.eval(*paths)
        return paths, [np.array(dr.detach(p), dtype=float) for p in paths]

    def evaluate(self, pose, edge_factor: float, occlusion_db=None, focus=None, temperature_db: float = 1.0,
                 grad: bool = True, edge_width_m: float | None = None, offsets=None,
                 corner_temperature_db: float = 0.5, bias_db=None, objective=None):
        """Per target the total plate power [dBm] (dB SINR with `sinr`), each path's [num_paths, N], the
        objective and its gradient w.r.t. each plate's (x, y, z, yaw_deg, pitch_deg) [dB per m / per deg]
        ([num_plates, 5]; [5] for a pose given as one plate's vector).

        pose: per plate x, y, z, yaw_deg[, pitch_deg] (of a one-plate model also that plate's vector alone).
        occlusion_db: None or a list, one [num_tx, N] penalty [dB] per path of `path_names` (a one-plate
        vector: its [num_tx, N]). focus: boolean mask of the targets in the objective (None: all).
        edge_width_m: a fixed edge width [m] instead of factor * Fresnel radius (tests, hard-edge limit).
        offsets: None or one [K, 5] array (or None) per plate (a one-plate vector: its array), its tolerance
        corners as scene-frame moves (`optimizer.physics.tolerance.world_offsets`).
        bias_db: [N] constant shifts [dB] added to each target's total before the objective (the truth
        correction of `search.residual_correction`); `power_dbm` is returned without it.
        objective: what the per-target values reduce to (`optimizer.objectives`; None: the soft-min of
        `temperature_db`)."""
        dr, mi = self.dr, self.mi
        plate_vecs, occlusion_db, offsets, flat = self._joint(pose, occlusion_db, offsets)
        vecs = [_pad5(v) for v in plate_vecs]
        offs = self._offsets(offsets)
        params = [[dr.opaque(mi.Float, float(x)) for x in v] for v in vecs]
        if grad:
            for ps in params:
                for p in ps:
                    dr.enable_grad(p)
        paths, paths_np = self._paths_db(lambda k, _lanes: params[k], offs, 1, edge_factor, edge_width_m,
                                         occlusion_db, grad, corner_temperature_db)
        total = power_sum_db(dr, paths)
        total_np = np.array(dr.detach(total), dtype=float)
        model = objectives.or_default(objective, temperature_db)
        if bias_db is not None:
            bias = np.asarray(bias_db, float).reshape(-1)
            obj = model.model_dr(total + to_float(bias), total_np + bias, focus)
        else:
            obj = model.model_dr(total, total_np, focus)
        value = float(np.array(dr.detach(obj)).reshape(-1)[0])
        gvec = np.zeros((len(vecs), 5))
        if grad:
            dr.backward(obj, flags=dr.ADFlag.Default | dr.ADFlag.AllowNoGrad)
            gvec = np.array([[float(np.array(dr.grad(p)).reshape(-1)[0]) for p in ps] for ps in params])
        if not (np.isfinite(value) and np.isfinite(gvec).all()):
            what = "objective" if not np.isfinite(value) else "gradient"
            raise NumericsError(f"surrogate at pose {[v.tolist() for v in vecs]}: the {what} is not finite "
                                f"({value if what == 'objective' else gvec.tolist()}); stopped")
        return {"power_dbm": total_np, "paths_dbm": np.stack(paths_np), "objective": value,
                "grad": gvec[0] if flat else gvec}

    def evaluate_many(self, poses, edge_factor: float, occlusion_db=None, focus=None, temperature_db: float = 1.0,
                      edge_width_m: float | None = None, offsets=None, corner_temperature_db: float = 0.5,
                      objective=None):
        """`evaluate` without the gradient for P poses at once, as one batch of lanes (pose-major, then target,
        then tolerance lane): the objective per pose (`objective`, [P]), the total (`power_dbm`, [P, N]) and
        each path's (`paths_dbm`, [P, num_paths, N]), each equal to what `evaluate` gives that pose.

        poses: P joint poses (lists of per-plate vectors; of a one-plate model also [P, 5] vectors).
        occlusion_db: None or P lists, one [num_tx, N] penalty per path (one-plate vectors: [P, num_tx, N])."""
        dr = self.dr
        poses, occlusion_db, offsets, _ = self._joint(poses, occlusion_db, offsets, many=True)
        vecs = np.array([[_pad5(v) for v in pv] for pv in poses], dtype=float)  # [P, plates, 5]
        n_p, n_tg = vecs.shape[0], self.targets.shape[0]
        offs = self._offsets(offsets)
        occ = None if occlusion_db is None else [np.stack([np.asarray(o[q], float) for o in occlusion_db])
                                                 for q in range(len(self.path_names))]
        paths, paths_np = self._paths_db(lambda k, lanes: [to_float(np.repeat(vecs[:, k, c], lanes)) for c in range(5)],
                                         offs, n_p, edge_factor, edge_width_m, occ, False, corner_temperature_db)
        total = power_sum_db(dr, paths)
        total_np = np.array(dr.detach(total), dtype=float).reshape(n_p, n_tg)
        value = objectives.or_default(objective, temperature_db).model_dr_many(total, total_np, focus)
        bad = np.flatnonzero(~np.isfinite(value))
        if bad.size:
            raise NumericsError(f"surrogate at pose {vecs[bad[0]].tolist()}: the objective is not finite "
                                f"({value[bad[0]]}); stopped")
        return {"power_dbm": total_np, "paths_dbm": np.stack([p.reshape(n_p, n_tg) for p in paths_np], axis=1),
                "objective": value}

    def specular_points(self, plate_vecs) -> list[list[np.ndarray]]:
        """Per path of `path_names`, the points of its bounces ([num_tx, N, 3] each, clamped onto the plates):
        the occlusion rays run Tx -> first point (-> second point) -> target."""
        poses = [PlatePose.from_seq(_pad5(v)) for v in plate_vecs]
        out = [[kind.specular_points(p, self.tx, self.targets)] for kind, p in zip(self.kinds, poses)]
        for i, j in self.pairs:
            pts = [double_bounce_points(poses[i], poses[j], self.sizes[i], self.sizes[j], tx, self.targets)
                   for tx in self.tx]
            out.append([np.stack([p[0] for p in pts]), np.stack([p[1] for p in pts])])
        return out


def surrogate_for(exp, targets, sinr=None, aperture: bool | None = None, rs=None, objective=None):
    """The one factory of the plate surrogate of an experiment: its transmitters and antennas, its plates'
    kinds, `targets` [N, 3] (the truth's, after an area's drop), the PO level as `search.surrogate_level` asks
    (or as `aperture` says), and with `combine: sinr` the `sinr` terms (`sinr_terms`) given, or else traced
    from `rs` (the truth without the plates) at each frequency (None without either: power sum).

    A band (`frequency_hz` a list): one model per frequency, reduced by the soft-min at the temperature of
    `objective` (`optimizer.physics.band`); one frequency: the `PlateSurrogate` itself."""
    from optimizer.physics import antenna
    from optimizer.physics.band import band_surrogate
    from optimizer.physics.reflectors import kinds

    def make(wavelength: float, frequency_hz: float) -> PlateSurrogate:
        terms = sinr if sinr is not None or rs is None else sinr_terms(exp, rs, frequency_hz)
        return PlateSurrogate([t.position for t in exp.transmitters], [t.power_dbm for t in exp.transmitters],
                              targets, kinds(exp), wavelength,
                              aperture=exp.search.surrogate_level == "po" if aperture is None else aperture,
                              antennas=(antenna.transmitter_specs(exp), antenna.target_specs(exp, targets)),
                              sinr=terms)

    return band_surrogate(make, exp, objective)


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
