"""Plate pose, plate frame and the hard-edge image method (numpy; the independent reference model).

Conventions (also in README): the plate centre is (x, y, z) [m]. At yaw 0 and pitch 0 the plate lies in
the x-z plane with its normal along +y, width along +x and height along +z. Yaw rotates about +z
counter-clockwise; pitch tilts the normal up (rotation about the plate's width axis).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from optimizer.constants import SPEED_OF_LIGHT_M_S


@dataclass(frozen=True)
class Pose:
    x: float  # [m]
    y: float  # [m]
    z: float  # [m]
    yaw_deg: float  # [deg]
    pitch_deg: float = 0.0  # [deg]

    @classmethod
    def from_seq(cls, seq) -> Pose:
        vals = [float(v) for v in seq]
        if len(vals) not in (4, 5):
            raise ValueError("a pose is x,y,z,yaw_deg[,pitch_deg]")
        return cls(*vals)

    def as_array(self) -> np.ndarray:
        return np.array([self.x, self.y, self.z, self.yaw_deg, self.pitch_deg], dtype=float)

    def to_dict(self) -> dict:
        return {k: float(v) for k, v in asdict(self).items()}

    @property
    def position(self) -> np.ndarray:
        return np.array([self.x, self.y, self.z], dtype=float)

    def __str__(self) -> str:
        return f"({self.x:.2f}, {self.y:.2f}, {self.z:.2f}) m, yaw {self.yaw_deg:.1f} deg, pitch {self.pitch_deg:.1f} deg"


def wavelength_m(frequency_hz: float) -> float:
    return SPEED_OF_LIGHT_M_S / float(frequency_hz)


def plate_frame(yaw_deg: float, pitch_deg: float = 0.0):
    """Unit vectors (u: width axis, v: height axis, n: normal) of a plate at this orientation."""
    a, b = math.radians(yaw_deg), math.radians(pitch_deg)
    u = np.array([math.cos(a), math.sin(a), 0.0])
    n = np.array([-math.sin(a) * math.cos(b), math.cos(a) * math.cos(b), math.sin(b)])
    v = np.array([math.sin(a) * math.sin(b), -math.cos(a) * math.sin(b), math.cos(b)])
    return u, v, n


def plate_corners(pose: Pose, size_m) -> np.ndarray:
    """The 4 corners [m] of the plate, counter-clockwise seen from the normal side."""
    u, v, _ = plate_frame(pose.yaw_deg, pose.pitch_deg)
    hw, hh = 0.5 * size_m[0], 0.5 * size_m[1]
    c = pose.position
    return np.array([c - hw * u - hh * v, c + hw * u - hh * v, c + hw * u + hh * v, c - hw * u + hh * v])


def free_space_gain_db(length_m, wavelength: float):
    """Friis free-space gain between isotropic antennas, 20 log10(lambda / (4 pi d)) [dB]."""
    return 20.0 * np.log10(wavelength / (4.0 * math.pi * np.asarray(length_m, dtype=float)))


def image_method(pose: Pose, size_m, tx, rx, wavelength: float):
    """Single specular bounce off a finite, two-sided flat plate with hard edges.

    tx: [3], rx: [N, 3]. Returns dict with `exists` [N] bool, `length_m` [N] (unfolded path length),
    `gain_db` [N] (free-space gain over the unfolded length; -inf where no path) and `point` [N, 3]
    (the specular point on the plate plane).
    """
    rx = np.atleast_2d(np.asarray(rx, dtype=float))
    tx = np.asarray(tx, dtype=float)
    u, v, n = plate_frame(pose.yaw_deg, pose.pitch_deg)
    c = pose.position
    st = float(np.dot(tx - c, n))
    sr = (rx - c) @ n
    same_side = (st * sr) > 0
    st_a, sr_a = abs(st), np.abs(sr)
    at, bt = float(np.dot(tx - c, u)), float(np.dot(tx - c, v))
    ar, br = (rx - c) @ u, (rx - c) @ v
    with np.errstate(divide="ignore", invalid="ignore"):
        t = st_a / (st_a + sr_a)
    aq = at + (ar - at) * t
    bq = bt + (br - bt) * t
    inside = (np.abs(aq) <= 0.5 * size_m[0]) & (np.abs(bq) <= 0.5 * size_m[1])
    exists = same_side & inside & (st_a > 0)
    length = np.sqrt((ar - at) ** 2 + (br - bt) ** 2 + (st_a + sr_a) ** 2)
    gain = np.where(exists, free_space_gain_db(length, wavelength), -np.inf)
    point = c + aq[:, None] * u + bq[:, None] * v
    return {"exists": exists, "length_m": length, "gain_db": gain, "point": point}


def specular_yaw_pitch(center, tx, target_centroid, with_pitch: bool):
    """Orientation (yaw, pitch) [deg] whose normal bisects the directions to the Tx and to the targets."""
    d1 = np.asarray(tx, float) - center
    d2 = np.asarray(target_centroid, float) - center
    d1 /= max(np.linalg.norm(d1), 1e-9)
    d2 /= max(np.linalg.norm(d2), 1e-9)
    nvec = d1 + d2
    if not with_pitch:
        nvec[2] = 0.0
    norm = np.linalg.norm(nvec)
    if norm < 1e-9:  # Tx and targets in opposite directions: any plate through them is edge-on
        nvec, norm = np.array([0.0, 1.0, 0.0]), 1.0
    nvec /= norm
    yaw = math.degrees(math.atan2(-nvec[0], nvec[1]))
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, nvec[2])))) if with_pitch else 0.0
    return yaw, pitch


class PoseSpace:
    """The search box of the plate pose and its map to the unit cube (what the optimiser moves in)."""

    def __init__(self, reflector):
        b = reflector.bounds
        self.with_pitch = reflector.pitch_deg is not None
        lo = list(b.min) + [reflector.yaw_deg.min]
        hi = list(b.max) + [reflector.yaw_deg.max]
        if self.with_pitch:
            lo.append(reflector.pitch_deg.min)
            hi.append(reflector.pitch_deg.max)
        self.lo = np.array(lo, float)
        self.hi = np.array(hi, float)
        self.span = np.where(self.hi > self.lo, self.hi - self.lo, 0.0)
        yaw_range = reflector.yaw_deg.max - reflector.yaw_deg.min
        self.yaw_periodic = yaw_range >= 360.0 - 1e-9
        # The plate is two-sided: yaw and yaw + 180 deg are the same plate (pitch 0). A yaw range of at least
        # 180 deg therefore wraps with period 180 deg: the optimiser never sticks at a yaw bound.
        self.yaw_period = 360.0 if self.yaw_periodic else (
            180.0 if yaw_range >= 180.0 - 1e-9 and not self.with_pitch else None)
        self.dim = len(lo)

    @property
    def free(self) -> np.ndarray:
        """Mask of the coordinates that can move (zero-width bounds are fixed)."""
        return self.span > 0

    def to_vec(self, pose: Pose) -> np.ndarray:
        a = pose.as_array()
        return a[: self.dim]

    def to_pose(self, vec) -> Pose:
        vec = list(map(float, vec))
        if len(vec) == 4:
            vec.append(0.0)
        return Pose(*vec)

    def to_unit(self, vec) -> np.ndarray:
        vec = np.asarray(vec, float)
        return np.where(self.span > 0, (vec - self.lo) / np.where(self.span > 0, self.span, 1.0), 0.5)

    def from_unit(self, unit) -> np.ndarray:
        return self.lo + np.asarray(unit, float) * self.span

    def project_unit(self, unit) -> np.ndarray:
        unit = np.asarray(unit, float).copy()
        if self.yaw_period is not None:
            yaw = self.lo[3] + unit[3] * self.span[3]
            yaw = self.lo[3] + (yaw - self.lo[3]) % self.yaw_period
            unit[3] = (yaw - self.lo[3]) / self.span[3]
        return np.clip(unit, 0.0, 1.0)

    def project(self, vec) -> np.ndarray:
        return self.from_unit(self.project_unit(self.to_unit(vec)))

    def contains(self, vec, tol=1e-6) -> bool:
        vec = np.asarray(vec, float)[: self.dim]
        yaw_ok = self.yaw_periodic or (self.lo[3] - tol <= vec[3] <= self.hi[3] + tol)
        box = np.r_[0:3, 4:self.dim] if self.dim > 4 else np.r_[0:3]
        return bool(yaw_ok and np.all(vec[box] >= self.lo[box] - tol) and np.all(vec[box] <= self.hi[box] + tol))

    def sobol(self, n: int, seed: int) -> np.ndarray:
        """n quasi-random unit-cube points (scrambled Sobol, reproducible from the seed)."""
        from scipy.stats import qmc

        if n <= 0:
            return np.zeros((0, self.dim))
        sampler = qmc.Sobol(d=self.dim, scramble=True, seed=seed)
        m = int(math.ceil(math.log2(max(n, 2))))
        return sampler.random_base2(m)[:n]
