"""Antennas: the one place every transmitter's and target's pattern, polarisation and orientation come from.

The truth (`optimizer.physics.scene`), the surrogate (`optimizer.physics.surrogate`), the PO plate paths GO
drops (`optimizer.physics.plate_model`) and the informed starts (`optimizer.search.starts`) all take them from
here, and every pattern is Sionna's own (its registry, `sionna.rt.register_antenna_pattern`): a pattern
registered with Sionna works everywhere without other changes.

Conventions (Sionna's): a device's orientation (alpha, beta, gamma) [rad] rotates about z, then y, then x
(`sionna.rt.utils.rotation_matrix`); the antenna's boresight is its local +x. An experiment's `azimuth_deg`
(counter-clockwise from +x in the x-y plane) and `downtilt_deg` (below the horizon) are therefore the
orientation (radians(azimuth_deg), radians(downtilt_deg), 0); `look_at` gives the same two angles toward a
point (Sionna's `look_at_orientation`).

A field here is the world-frame (complex) vector C_theta theta_hat + C_phi phi_hat of one polarisation port
(|field|^2 = the gain, linear) in a direction pointing away from the antenna. A dual-polarised antenna (VH,
cross) has two ports: a transmitter splits its power equally over them (the gain is the ports' mean), a
target adds what its two ports receive (as `PlateModel.path_power` does with Sionna's coefficients).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from optimizer.constants import ANTENNA_DEFAULT_PATTERN, ANTENNA_DEFAULT_POLARIZATION, DB_PER_NEPER_POWER

BUILTIN_PATTERNS = ("iso", "dipole", "hw_dipole", "tr38901")  # Sionna RT's own (antenna_pattern_registry)
BUILTIN_POLARIZATIONS = ("V", "H", "VH", "cross")  # Sionna RT's own (polarization_registry)
GAIN_FLOOR = 1e-12  # linear: a pattern's null stands in as -120 dB (a finite log and gradient)


def _registered(kind: str) -> list[str]:
    """Names in Sionna's pattern or polarisation registry; only once `sionna.rt` is imported (importing it here
    would pick the Mitsuba variant before `backend.init` does): a pattern registered with Sionna was."""
    if "sionna.rt" not in sys.modules:
        return []
    from sionna.rt import antenna_pattern as ap

    return (ap.antenna_pattern_registry if kind == "pattern" else ap.polarization_registry).list()


def check_pattern(name: str) -> str:
    if name in BUILTIN_PATTERNS or name in _registered("pattern"):
        return name
    raise ValueError(f"{name!r} is not an antenna pattern; give one of {', '.join(BUILTIN_PATTERNS)} or a "
                     "pattern registered with sionna.rt.register_antenna_pattern")


def check_polarization(name: str) -> str:
    if name in BUILTIN_POLARIZATIONS or name in _registered("polarization"):
        return name
    raise ValueError(f"{name!r} is not a polarisation; give one of {', '.join(BUILTIN_POLARIZATIONS)}")


@dataclass(frozen=True)
class AntennaSpec:
    """One device's antenna: Sionna pattern and polarisation names, orientation (alpha, beta, gamma) [rad]."""

    pattern: str = ANTENNA_DEFAULT_PATTERN
    polarization: str = ANTENNA_DEFAULT_POLARIZATION
    orientation_rad: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def array_key(self) -> tuple[str, str]:
        """What Sionna's one scene-wide array holds (`tx_array`, `rx_array`): devices sharing it group together."""
        return (self.pattern, self.polarization)

    @property
    def is_default(self) -> bool:
        """Isotropic, vertically polarised, unrotated: today's antenna, whose numbers stay as they were."""
        return self == AntennaSpec()


def orientation_rad(antenna, position) -> tuple[float, float, float]:
    """Sionna's orientation [rad] of an experiment `Antenna` (None: unrotated) at `position` [m]."""
    if antenna is None:
        return (0.0, 0.0, 0.0)
    if antenna.look_at is not None:
        d = np.asarray(antenna.look_at, float) - np.asarray(position, float)
        return (math.atan2(d[1], d[0]) if math.hypot(d[0], d[1]) > 0 else 0.0,
                math.atan2(-d[2], math.hypot(d[0], d[1])), 0.0)
    return (math.radians(antenna.azimuth_deg), math.radians(antenna.downtilt_deg), 0.0)


def spec_of(antenna, position) -> AntennaSpec:
    if antenna is None:
        return AntennaSpec()
    return AntennaSpec(antenna.pattern, antenna.polarization, orientation_rad(antenna, position))


def transmitter_specs(exp) -> list[AntennaSpec]:
    return [spec_of(t.antenna, t.position) for t in exp.transmitters]


def target_specs(exp, targets=None) -> list[AntennaSpec]:
    pts = exp.target_points() if targets is None else targets
    return [spec_of(exp.targets.antenna, p) for p in pts]


def all_default(exp) -> bool:
    return all(s.is_default for s in transmitter_specs(exp)) and all(s.is_default for s in target_specs(exp))


def groups(specs: list[AntennaSpec]) -> list[list[int]]:
    """Indices of the devices sharing one Sionna array (pattern, polarisation), in order of first appearance."""
    out: dict[tuple[str, str], list[int]] = {}
    for i, s in enumerate(specs):
        out.setdefault(s.array_key, []).append(i)
    return list(out.values())


def planar_array(spec: AntennaSpec):
    """Sionna's one-element array of `spec`'s pattern and polarisation."""
    import sionna.rt as rt

    return rt.PlanarArray(num_rows=1, num_cols=1, pattern=spec.pattern, polarization=spec.polarization)


@lru_cache(maxsize=32)
def _pattern(pattern: str, polarization: str):
    from sionna.rt.antenna_pattern import antenna_pattern_registry

    return antenna_pattern_registry.get(pattern)(polarization=polarization)


def rotation(orientation) -> np.ndarray:
    """[3, 3] Sionna's rotation matrix of `orientation` (alpha, beta, gamma) [rad] (local -> world)."""
    a, b, c = (float(x) for x in orientation)
    sa, ca, sb, cb, sc, cc = math.sin(a), math.cos(a), math.sin(b), math.cos(b), math.sin(c), math.cos(c)
    return np.array([[ca * cb, ca * sb * sc - sa * cc, ca * sb * cc + sa * sc],
                     [sa * cb, sa * sb * sc + ca * cc, sa * sb * cc - ca * sc],
                     [-sb, cb * sc, cb * cc]])


def field(spec: AntennaSpec, d, rot=None):
    """Per polarisation port, the world-frame field (re, im), each a 3-tuple, of `spec` in the unit directions
    d (a 3-tuple of Dr.Jit Floats, away from the antenna): differentiable in d. `rot`: a [3][3] of floats or
    per-lane Dr.Jit Floats instead of the spec's own orientation (devices of one pattern, several orientations)."""
    import drjit as dr

    r = rotation(spec.orientation_rad).tolist() if rot is None else rot
    loc = [r[0][k] * d[0] + r[1][k] * d[1] + r[2][k] * d[2] for k in range(3)]  # R^T d
    rho = dr.sqrt(dr.maximum(dr.square(loc[0]) + dr.square(loc[1]), 1e-12))
    theta = dr.acos(dr.clip(loc[2], -1.0 + 1e-6, 1.0 - 1e-6))
    phi = dr.atan2(loc[1], loc[0])
    cp, sp = loc[0] / rho, loc[1] / rho
    ct = dr.clip(loc[2], -1.0, 1.0)
    th_l, ph_l = (ct * cp, ct * sp, -rho), (-sp, cp, 0.0)
    th = [r[k][0] * th_l[0] + r[k][1] * th_l[1] + r[k][2] * th_l[2] for k in range(3)]
    ph = [r[k][0] * ph_l[0] + r[k][1] * ph_l[1] for k in range(3)]
    out = []
    for port in _pattern(spec.pattern, spec.polarization).patterns:
        c_t, c_p = port(theta, phi)
        out.append((tuple(dr.real(c_t) * th[k] + dr.real(c_p) * ph[k] for k in range(3)),
                    tuple(dr.imag(c_t) * th[k] + dr.imag(c_p) * ph[k] for k in range(3))))
    return out


def gain_dr(spec: AntennaSpec, d, rot=None):
    """The gain (linear, the ports' mean) in the unit directions d (Dr.Jit), differentiable."""
    ports = field(spec, d, rot)
    g = 0.0
    for re, im in ports:
        g = g + sum(re[k] * re[k] + im[k] * im[k] for k in range(3))
    return g / len(ports)


def field_np(spec: AntennaSpec, directions) -> np.ndarray:
    """complex [ports, N, 3]: `field` in numpy for directions [N, 3] (normalised here). The default antenna is
    the zenith unit vector itself (the isotropic V pattern, in float64)."""
    d = np.atleast_2d(np.asarray(directions, float))
    d = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-300)
    if spec.is_default:
        rho = np.sqrt(np.maximum(d[:, 0] ** 2 + d[:, 1] ** 2, 1e-24))
        return np.stack([d[:, 2] * d[:, 0] / rho, d[:, 2] * d[:, 1] / rho, -rho], axis=-1)[None].astype(complex)
    import mitsuba as mi

    ports = field(spec, tuple(mi.Float(np.ascontiguousarray(d[:, k], np.float32)) for k in range(3)))
    return np.stack([np.stack([np.array(re[k], float) + 1j * np.array(im[k], float) for k in range(3)], axis=-1)
                     for re, im in ports])


def fields_np(specs: list[AntennaSpec], directions) -> np.ndarray:
    """`field_np` with one spec per direction (devices of one pattern, each its own orientation): [ports, N, 3]."""
    d = np.atleast_2d(np.asarray(directions, float))
    if all(s == specs[0] for s in specs):
        return field_np(specs[0], d)
    return np.concatenate([field_np(s, d[i:i + 1]) for i, s in enumerate(specs)], axis=1)


def gain_db(spec: AntennaSpec, directions) -> np.ndarray:
    """[N] the gain [dBi] (ports' mean) in directions [N, 3] away from the antenna."""
    f = field_np(spec, directions)
    g = (np.abs(f) ** 2).sum(-1).mean(0)
    return 10.0 * np.log10(np.maximum(g, GAIN_FLOOR))


def mirror_coupling_dr(tx_ports, rx_ports, n):
    """The power coupling [dB] (Dr.Jit) of a transmitter's field, reflected by a perfectly conducting plane of
    unit normal n (E -> 2 (n.E) n - E), into a receiver's: mean over the Tx ports, sum over the Rx ports of
    |f_rx . E_r|^2. `tx_ports`: `field` toward the specular point; `rx_ports`: the receiver's `field` toward it."""
    import drjit as dr

    acc = 0.0
    for e_re, e_im in tx_ports:
        dn_re = sum(n[k] * e_re[k] for k in range(3))
        dn_im = sum(n[k] * e_im[k] for k in range(3))
        r_re = [2.0 * dn_re * n[k] - e_re[k] for k in range(3)]
        r_im = [2.0 * dn_im * n[k] - e_im[k] for k in range(3)]
        for g_re, g_im in rx_ports:
            v_re = sum(g_re[k] * r_re[k] - g_im[k] * r_im[k] for k in range(3))
            v_im = sum(g_re[k] * r_im[k] + g_im[k] * r_re[k] for k in range(3))
            acc = acc + dr.square(v_re) + dr.square(v_im)
    return DB_PER_NEPER_POWER * dr.log(dr.maximum(acc / len(tx_ports), GAIN_FLOOR))
