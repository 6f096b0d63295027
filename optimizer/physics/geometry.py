"""Plate frame, the specular point and the hard-edge image method (numpy; the independent reference model).

Pose conventions are those of `optimizer.records.pose`: at yaw 0 and pitch 0 the plate lies in the x-z
plane with its normal along +y; yaw rotates about +z; pitch tilts the normal up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optimizer.constants import SPEED_OF_LIGHT_M_S
from optimizer.records import PlatePose


def wavelength_m(frequency_hz: float) -> float:
    return SPEED_OF_LIGHT_M_S / float(frequency_hz)


def plate_frame(yaw_deg: float, pitch_deg: float = 0.0):
    """Unit vectors (u: width axis, v: height axis, n: normal) of a plate at this orientation."""
    a, b = math.radians(yaw_deg), math.radians(pitch_deg)
    u = np.array([math.cos(a), math.sin(a), 0.0])
    n = np.array([-math.sin(a) * math.cos(b), math.cos(a) * math.cos(b), math.sin(b)])
    v = np.array([math.sin(a) * math.sin(b), -math.cos(a) * math.sin(b), math.cos(b)])
    return u, v, n


def position(pose: PlatePose) -> np.ndarray:
    return np.array([pose.x, pose.y, pose.z], dtype=float)


def plate_corners(pose: PlatePose, size_m) -> np.ndarray:
    """The 4 corners [m] of the plate, counter-clockwise seen from the normal side."""
    u, v, _ = plate_frame(pose.yaw_deg, pose.pitch_deg)
    hw, hh = 0.5 * size_m[0], 0.5 * size_m[1]
    c = position(pose)
    return np.array([c - hw * u - hh * v, c + hw * u - hh * v, c + hw * u + hh * v, c - hw * u + hh * v])


def free_space_gain_db(length_m, wavelength: float):
    """Friis free-space gain between isotropic antennas, 20 log10(lambda / (4 pi d)) [dB]."""
    return 20.0 * np.log10(wavelength / (4.0 * math.pi * np.asarray(length_m, dtype=float)))


@dataclass
class Specular:
    """Where a single bounce off the plate's plane meets it, in plate coordinates, per receiver."""

    a: np.ndarray  # [N] along the width axis from the centre [m]
    b: np.ndarray  # [N] along the height axis [m]
    side_tx: float  # signed distance of the Tx from the plane [m]
    side_rx: np.ndarray  # [N] signed distances of the receivers [m]
    length_m: np.ndarray  # [N] unfolded path length Tx -> plane -> Rx [m]
    frame: tuple  # (u, v, n)
    centre: np.ndarray

    def point(self, size_m=None) -> np.ndarray:
        """[N, 3] the specular points; with `size_m`, clamped onto the plate."""
        a, b = self.a, self.b
        if size_m is not None:
            a = np.clip(a, -0.5 * size_m[0], 0.5 * size_m[0])
            b = np.clip(b, -0.5 * size_m[1], 0.5 * size_m[1])
        u, v, _ = self.frame
        return self.centre + a[:, None] * u + b[:, None] * v


def specular_point(pose: PlatePose, tx, rx) -> Specular:
    """The one specular-point helper: mirror the Tx in the plate's plane; where the line from that image
    to each receiver crosses the plane (receivers on the Tx's side; elsewhere the point is where it would be
    with the receiver mirrored to that side)."""
    rx = np.atleast_2d(np.asarray(rx, dtype=float))
    tx = np.asarray(tx, dtype=float)
    u, v, n = plate_frame(pose.yaw_deg, pose.pitch_deg)
    c = position(pose)
    st = float(np.dot(tx - c, n))
    sr = (rx - c) @ n
    st_a, sr_a = abs(st), np.maximum(np.abs(sr), 1e-12)
    t = st_a / (st_a + sr_a)
    at, bt = float(np.dot(tx - c, u)), float(np.dot(tx - c, v))
    ar, br = (rx - c) @ u, (rx - c) @ v
    length = np.sqrt((ar - at) ** 2 + (br - bt) ** 2 + (st_a + np.abs(sr)) ** 2)
    return Specular(a=at + (ar - at) * t, b=bt + (br - bt) * t, side_tx=st, side_rx=sr, length_m=length,
                    frame=(u, v, n), centre=c)


def image_method(pose: PlatePose, size_m, tx, rx, wavelength: float):
    """Single specular bounce off a finite, two-sided flat plate with hard edges.

    tx: [3], rx: [N, 3]. Returns dict with `exists` [N] bool, `length_m` [N] (unfolded path length),
    `gain_db` [N] (free-space gain over the unfolded length; -inf where no path) and `point` [N, 3]
    (the specular point on the plate plane).
    """
    sp = specular_point(pose, tx, rx)
    same_side = (sp.side_tx * sp.side_rx) > 0
    inside = (np.abs(sp.a) <= 0.5 * size_m[0]) & (np.abs(sp.b) <= 0.5 * size_m[1])
    exists = same_side & inside & (abs(sp.side_tx) > 0)
    gain = np.where(exists, free_space_gain_db(sp.length_m, wavelength), -np.inf)
    return {"exists": exists, "length_m": sp.length_m, "gain_db": gain, "point": sp.point()}


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
