"""Physical optics (PO) of a flat rectangular plate, and the infinite mirror's polarimetric gain (numpy).

A (virtual) point source S and a (virtual) observer O on the same side of a plate, unit source field
e^{-jkr}/r. The scalar Kirchhoff integral over the plate (the physical-optics field of a perfect,
flat reflector):

    E_PO = (j / lambda) * integral over the plate of  e^{-jk(r1 + r2)} / (r1 r2) * (cos th_i + cos th_s) / 2  dA

with r1 = |p - S|, r2 = |p - O|, th_i and th_s the angles of S and O from the plate normal at p.
Geometric optics (GO, the infinite mirror, the image method) gives E_GO = e^{-jkL} / L with L the unfolded
length (S mirrored in the plate's plane, to O). The PO factor F = E_PO / E_GO is what multiplies a plate
path's amplitude (|F|^2 its power); the material's reflection coefficient and the polarisation stay those
of the ray tracer. By stationary phase F -> 1 for a plate large against the first Fresnel zone with the
specular point well inside it; F = 1/2 with the specular point on a straight edge far from the others
(knife edge, -6 dB); in the far field |F|^2 -> sigma L^2 / (4 pi d1^2 d2^2) with the flat-plate radar
cross-section sigma = 4 pi A^2 cos^2 th / lambda^2 (legs d1, d2; L = d1 + d2).

The integral is a Gauss-Legendre product rule with the exact phase. The nodes per axis follow the phase's
variation across the plate (`NODES_PER_RADIAN` per radian of total variation along that axis, at least
`NODES_MIN`), rounded up to one of a few fixed counts so all paths of one evaluation run in a few
vectorised batches. Checked against a brute-force midpoint integral with lambda/20 cells (tests/test_po.py).

`po_factor_local` also gives F's analytic derivatives with respect to the source and observer (the
surrogate's gradient through the same factor). Also here: `mirror_gain`, the polarimetric power gain of
a single bounce off the infinite plane of a plate (for the plate paths GO drops and PO keeps).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from optimizer.constants import EPSILON_0_F_M

NODES_MIN = 6  # Gauss-Legendre nodes per axis, at least
NODES_PER_RADIAN = 0.5  # nodes per radian of the phase's total variation along an axis (about 3 per cycle)
NODES_MAX = 768  # cap per axis (a 4 m plate 1 m from both ends needs about 300)
NODE_COUNTS = (6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768)  # the batches' counts
TV_SAMPLES = 9  # phase samples per axis to measure its total variation (a 9 x 9 grid per path)
BATCH_NODES = 4_000_000  # [nodes] per vectorised batch (memory bound: ~100 MB of complex128 temporaries)


@lru_cache(maxsize=64)
def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the n-point Gauss-Legendre rule on [-1, 1]."""
    return np.polynomial.legendre.leggauss(int(n))


def plate_coordinates(points, centre, u, v, n):
    """(a, b, h) [N] each: `points` [N, 3] in the plate frame (h signed along the normal n)."""
    d = np.asarray(points, float) - np.asarray(centre, float)
    return ((d * u).sum(-1), (d * v).sum(-1), (d * n).sum(-1))


def unfolded_length(s, o):
    """|S' - O| [m] with S' = S mirrored in the plane (both given as (a, b, h >= 0))."""
    return np.sqrt((o[0] - s[0]) ** 2 + (o[1] - s[1]) ** 2 + (s[2] + o[2]) ** 2)


def node_counts(s, o, half_w, half_h, k: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes per axis [N] each, from the phase k (r1 + r2)'s total variation along the
    width and the height axes (the largest over TV_SAMPLES lines, each sampled at TV_SAMPLES points)."""
    t = np.linspace(-1.0, 1.0, TV_SAMPLES)
    x = half_w[:, None, None] * t[None, None, :]  # [N, 1, S] along the width
    y = half_h[:, None, None] * t[None, :, None]  # [N, S, 1]
    sa, sb, sh = (c[:, None, None] for c in s)
    oa, ob, oh = (c[:, None, None] for c in o)
    phase = k * (np.sqrt((x - sa) ** 2 + (y - sb) ** 2 + sh ** 2) + np.sqrt((x - oa) ** 2 + (y - ob) ** 2 + oh ** 2))
    tv_w = np.abs(np.diff(phase, axis=2)).sum(axis=2).max(axis=1)
    tv_h = np.abs(np.diff(phase, axis=1)).sum(axis=1).max(axis=1)
    counts = np.asarray(NODE_COUNTS)

    def snap(tv):
        n = np.clip(np.ceil(NODES_MIN + NODES_PER_RADIAN * tv), NODES_MIN, NODES_MAX)
        return counts[np.searchsorted(counts, n)]

    return snap(tv_w), snap(tv_h)


def po_factor_local(s, o, half_w, half_h, wavelength_m: float, gradient: bool = False):
    """The PO factor F [N] (complex) in plate coordinates: sources s and observers o as (a, b, h) [N] each
    [m] with heights h > 0 on the same side, plates of half sizes half_w, half_h [N] [m]. With `gradient`
    also dF/d(s_a, s_b, s_h, o_a, o_b, o_h) [N, 6] [1/m] (analytic, by the same quadrature; the surrogate's
    reverse-mode gradient).

    F = (j L / lambda) * integral of e^{-jk(r1 + r2 - L)} A dA,  A = (h_s / r1 + h_o / r2) / (2 r1 r2),
    L = |S' - O| (the unfolded length)."""
    s = tuple(np.asarray(c, float) for c in s)
    o = tuple(np.asarray(c, float) for c in o)
    half_w, half_h = np.asarray(half_w, float), np.asarray(half_h, float)
    num = s[0].size
    k = 2.0 * math.pi / float(wavelength_m)
    length = unfolded_length(s, o)
    nw, nh = node_counts(s, o, half_w, half_h, k)
    out = np.zeros(num, complex)
    grad = np.zeros((num, 6), complex) if gradient else None
    pairs = np.stack([nw, nh], axis=1)
    for cw, ch in {tuple(p) for p in pairs.tolist()}:
        sel = np.flatnonzero((pairs[:, 0] == cw) & (pairs[:, 1] == ch))
        xw, ww = gauss_legendre(cw)
        xh, wh = gauss_legendre(ch)
        per = max(1, BATCH_NODES // (cw * ch * (4 if gradient else 1)))
        for start in range(0, sel.size, per):
            i = sel[start:start + per]
            hw, hh = half_w[i, None, None], half_h[i, None, None]
            x = hw * xw[None, :, None]  # [B, cw, 1]
            y = hh * xh[None, None, :]  # [B, 1, ch]
            sa, sb, sh = (c[i, None, None] for c in s)
            oa, ob, oh = (c[i, None, None] for c in o)
            big_l = length[i, None, None]
            r1 = np.sqrt((x - sa) ** 2 + (y - sb) ** 2 + sh ** 2)
            r2 = np.sqrt((x - oa) ** 2 + (y - ob) ** 2 + oh ** 2)
            amp = (sh / r1 + oh / r2) / (2.0 * r1 * r2)
            wave = np.exp(-1j * k * ((r1 - big_l) + r2)) * (ww[:, None] * wh[None, :]) * (hw * hh)
            q = (amp * wave).sum(axis=(1, 2))  # the integral over e^{-jkL}
            out[i] = 1j * length[i] / float(wavelength_m) * q
            if not gradient:
                continue
            # d/dq of r1 (source terms) and r2 (observer terms); dA/dr; dL/dq
            dr = [-(x - sa) / r1, -(y - sb) / r1, sh / r1, -(x - oa) / r2, -(y - ob) / r2, oh / r2]
            da_dr1 = -sh / (r1 ** 3 * r2) - oh / (2.0 * r1 ** 2 * r2 ** 2)
            da_dr2 = -oh / (r1 * r2 ** 3) - sh / (2.0 * r1 ** 2 * r2 ** 2)
            da_explicit = {2: 1.0 / (2.0 * r1 ** 2 * r2), 5: 1.0 / (2.0 * r1 * r2 ** 2)}
            li = length[i]
            dl = np.stack([-(o[0][i] - s[0][i]) / li, -(o[1][i] - s[1][i]) / li, (s[2][i] + o[2][i]) / li,
                           (o[0][i] - s[0][i]) / li, (o[1][i] - s[1][i]) / li, (s[2][i] + o[2][i]) / li], axis=1)
            for j in range(6):
                d_amp = (da_dr1 if j < 3 else da_dr2) * dr[j] + da_explicit.get(j, 0.0)
                dq = ((d_amp - 1j * k * amp * dr[j]) * wave).sum(axis=(1, 2)) + 1j * k * dl[:, j] * q
                grad[i, j] = 1j / float(wavelength_m) * (dl[:, j] * q + li * dq)
    return (out, grad) if gradient else out


def po_factor(source, observer, centre, u, v, n, size_m, wavelength_m: float) -> np.ndarray:
    """The PO factor F = E_PO / E_GO [N] (complex) of a rectangular plate for N source/observer pairs.

    source, observer: [N, 3] [m] (the virtual source and observer of each path); centre, u, v, n: the
    plate's centre and unit width, height and normal axes, [3] or [N, 3]; size_m: (width, height) [m],
    [2] or [N, 2]. A pair on opposite sides of the plane, or on it, has no reflection: F = 0.
    """
    source = np.atleast_2d(np.asarray(source, float))
    observer = np.atleast_2d(np.asarray(observer, float))
    num = source.shape[0]
    frame = [np.broadcast_to(np.asarray(a, float), (num, 3)) for a in (centre, u, v, n)]
    size = np.broadcast_to(np.asarray(size_m, float), (num, 2))
    s = plate_coordinates(source, *frame)
    o = plate_coordinates(observer, *frame)
    ok = np.flatnonzero((s[2] * o[2]) > 0)
    out = np.zeros(num, complex)
    if ok.size:
        out[ok] = po_factor_local((s[0][ok], s[1][ok], np.abs(s[2][ok])), (o[0][ok], o[1][ok], np.abs(o[2][ok])),
                                  0.5 * size[ok, 0], 0.5 * size[ok, 1], wavelength_m)
    return out


# --- the infinite mirror: polarimetric gain of one bounce off the plate's plane ------------------------------
def theta_hat(direction: np.ndarray) -> np.ndarray:
    """[N, 3] the zenith unit vector of directions [N, 3] (a vertically polarised antenna's field)."""
    d = direction / np.linalg.norm(direction, axis=-1, keepdims=True)
    cos_t = d[:, 2]
    rho = np.sqrt(np.maximum(d[:, 0] ** 2 + d[:, 1] ** 2, 1e-24))
    return np.stack([cos_t * d[:, 0] / rho, cos_t * d[:, 1] / rho, -rho], axis=-1)


def fresnel_coefficients(cos_theta, relative_permittivity: float, conductivity_s_m: float, frequency_hz: float):
    """TE and TM Fresnel reflection coefficients of a half-space (vacuum side), the convention in which a
    perfect conductor has r_te = -1, r_tm = +1. A metal slab of the plates' thickness is a half-space to
    far better than 0.01 dB (its skin depth is microns)."""
    eta = relative_permittivity - 1j * conductivity_s_m / (2.0 * math.pi * frequency_hz * EPSILON_0_F_M)
    c = np.asarray(cos_theta, float)
    a = np.sqrt(eta - (1.0 - c * c))
    return (c - a) / (c + a), (eta * c - a) / (eta * c + a)


def mirror_gain(tx, rx, point, normal, relative_permittivity: float, conductivity_s_m: float,
                frequency_hz: float, tx_field=None, rx_field=None) -> np.ndarray:
    """|f_rx . R f_tx|^2 [N]: the power a receiver takes from a transmitter's wave reflected at `point` (the
    specular point [N, 3]) off a plane of normal `normal` ([3] or [N, 3]) and the given material; the
    free-space loss over the unfolded length is not included. R = r_te s s^T + r_tm (2 n n^T - I) p p^T (s:
    TE unit vector, p: the incident TM unit vector; a perfect conductor reflects E to (2 n n^T - I) E).
    tx_field, rx_field: complex [ports, N, 3], the antennas' fields toward the specular point
    (`optimizer.physics.antenna.field_np`; the power is the mean over the Tx ports and the sum over the Rx
    ports); default: isotropic and vertically polarised, the zenith unit vectors."""
    tx, rx, point = (np.atleast_2d(np.asarray(a, float)) for a in (tx, rx, point))
    num = point.shape[0]
    tx, rx = np.broadcast_to(tx, (num, 3)), np.broadcast_to(rx, (num, 3))
    nrm = np.broadcast_to(np.asarray(normal, float), (num, 3))
    ki = point - tx
    ki /= np.linalg.norm(ki, axis=-1, keepdims=True)
    ko = rx - point
    nrm = nrm * np.sign((-ki * nrm).sum(-1, keepdims=True) + 1e-300)  # the normal facing the incoming wave
    cos_i = np.clip((-ki * nrm).sum(-1), 0.0, 1.0)
    s = np.cross(ki, nrm)
    s_len = np.linalg.norm(s, axis=-1, keepdims=True)
    fallback = np.cross(nrm, np.array([0.0, 0.0, 1.0]))  # normal incidence: any tangential direction
    fallback[np.linalg.norm(fallback, axis=-1) < 1e-9] = [1.0, 0.0, 0.0]
    s = np.where(s_len > 1e-9, s / np.maximum(s_len, 1e-300), fallback / np.linalg.norm(fallback, axis=-1,
                                                                                         keepdims=True))
    p = np.cross(s, ki)
    r_te, r_tm = fresnel_coefficients(cos_i, relative_permittivity, conductivity_s_m, frequency_hz)
    p_r = 2.0 * (p * nrm).sum(-1, keepdims=True) * nrm - p
    if tx_field is None and rx_field is None:  # the isotropic V default, as it always was
        e_tx = theta_hat(ki)
        e_s, e_p = (e_tx * s).sum(-1), (e_tx * p).sum(-1)
        e_r = (r_te * e_s)[:, None] * s + (r_tm * e_p)[:, None] * p_r
        return np.abs((theta_hat(ko) * e_r).sum(-1)) ** 2
    tx_ports = theta_hat(ki)[None].astype(complex) if tx_field is None else np.asarray(tx_field, complex)
    rx_ports = theta_hat(ko)[None].astype(complex) if rx_field is None else np.asarray(rx_field, complex)
    out = np.zeros(num)
    for e_tx in tx_ports:
        e_s, e_p = (e_tx * s).sum(-1), (e_tx * p).sum(-1)
        e_r = (r_te * e_s)[:, None] * s + (r_tm * e_p)[:, None] * p_r
        for e_rx in rx_ports:
            out += np.abs((e_rx * e_r).sum(-1)) ** 2
    return out / len(tx_ports)

