"""Independent references for the plate's physical optics (written apart from optimizer.physics.po).

* `brute_force_po`: the Kirchhoff integral by the midpoint rule on square cells of lambda/CELLS, in world
  coordinates (no plate-local frame, no node heuristics).
* `fresnel_po`: the Fresnel-integral closed form, separable when the plane of incidence contains the plate's
  width axis: F = (j/2) dE_u dE_v, dE = E(t2) - E(t1), E(t) = C(t) - j S(t), with t the edges' distances
  from the specular point in units of sqrt(lambda rho / 2) (times cos th along the width axis),
  rho = d1 d2 / (d1 + d2).
* `rcs_factor`: the far-field flat-plate radar cross-section sigma = 4 pi A^2 cos^2 th / lambda^2 turned
  into a power factor over the image method: |F|^2 = sigma (d1 + d2)^2 / (4 pi d1^2 d2^2).
* `bistatic`: a source and observer at legs d1, d2 either side of the normal of a plate in the x-z plane.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import fresnel

CELLS = 20  # cells per wavelength of the brute-force midpoint rule


def brute_force_po(source, observer, centre, u, v, n, size_m, wavelength_m, cells=CELLS) -> complex:
    """F = E_PO / E_GO by the midpoint rule on cells of at most lambda/cells (world coordinates)."""
    source, observer, centre, u, v, n = (np.asarray(a, float) for a in (source, observer, centre, u, v, n))
    k = 2 * math.pi / wavelength_m
    nx = int(math.ceil(size_m[0] * cells / wavelength_m))
    ny = int(math.ceil(size_m[1] * cells / wavelength_m))
    xs = (np.arange(nx) + 0.5) / nx * size_m[0] - size_m[0] / 2
    ys = (np.arange(ny) + 0.5) / ny * size_m[1] - size_m[1] / 2
    cell = size_m[0] / nx * size_m[1] / ny
    image = source - 2 * np.dot(source - centre, n) * n
    length = np.linalg.norm(observer - image)
    total = 0j
    for rows in np.array_split(ys, max(1, nx * ny // 1_000_000 + 1)):
        p = centre + xs[:, None, None] * u + rows[None, :, None] * v
        d1, d2 = p - source, p - observer
        r1, r2 = np.linalg.norm(d1, axis=-1), np.linalg.norm(d2, axis=-1)
        cos_i, cos_s = np.abs(d1 @ n) / r1, np.abs(d2 @ n) / r2
        total += (np.exp(-1j * k * (r1 + r2 - length)) / (r1 * r2) * (cos_i + cos_s) / 2).sum() * cell
    return 1j / wavelength_m * total * length


def fresnel_po(d1, d2, theta_deg, size_m, spec_ab, wavelength_m) -> complex:
    """The Fresnel-integral closed form of F; plane of incidence along the width axis, specular point at
    plate coordinates `spec_ab` (a along the width, b along the height) [m]."""
    rho = d1 * d2 / (d1 + d2)
    scale = math.sqrt(2.0 / (wavelength_m * rho))
    c = math.cos(math.radians(theta_deg))

    def e(t):
        s, cc = fresnel(t)
        return cc - 1j * s

    hw, hh = size_m[0] / 2, size_m[1] / 2
    de_u = e((hw - spec_ab[0]) * c * scale) - e((-hw - spec_ab[0]) * c * scale)
    de_v = e((hh - spec_ab[1]) * scale) - e((-hh - spec_ab[1]) * scale)
    return 0.5j * de_u * de_v


def rcs_factor(d1, d2, theta_deg, area_m2, wavelength_m) -> float:
    sigma = 4 * math.pi * area_m2 ** 2 * math.cos(math.radians(theta_deg)) ** 2 / wavelength_m ** 2
    return sigma * (d1 + d2) ** 2 / (4 * math.pi * d1 ** 2 * d2 ** 2)


def bistatic(d1, d2, theta_deg, spec_ab=(0.0, 0.0)):
    """Source and observer [3] each for the plate at the origin in the x-z plane (normal +y, width +x,
    height +z): legs d1, d2 from the specular point at (x, z) = spec_ab, th either side of the normal, the
    plane of incidence the x-y plane."""
    t = math.radians(theta_deg)
    p = np.array([spec_ab[0], 0.0, spec_ab[1]])
    return (p + d1 * np.array([-math.sin(t), math.cos(t), 0.0]),
            p + d2 * np.array([math.sin(t), math.cos(t), 0.0]))


PLATE_FRAME = (np.zeros(3), np.array([1.0, 0, 0]), np.array([0, 0, 1.0]), np.array([0, 1.0, 0]))


def db(x) -> float:
    return 20.0 * math.log10(abs(x))
