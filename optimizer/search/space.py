"""The search box of the plate poses and its map to the unit cube (what the optimiser moves in).

A joint pose's vector is the plates' vectors one after another: (x, y, z, yaw[, pitch]) per plate, pitch
only for plates with a `pitch_deg` range.

The box lives in *box coordinates*: a plate whose mounting box is in a wall's frame (`bounds.frame`,
`optimizer.experiment.box`) moves along the wall, off it and vertically (along, off, z, yaw[, pitch]); any
other plate in (x, y, z, yaw[, pitch]), where box coordinates and the pose vector are the same numbers.
`lo`/`hi`/`span` are in box coordinates; the unit cube maps linearly onto them, so every pose sampled,
stepped to or clipped (`project_unit`) lies in the wall's box. `from_unit`/`to_unit` and the other
conversions take and give pose vectors (scene coordinates).

A pose the search may not take is *rejected* (`PoseSpace.rejection`): plates that overlap each other
(`optimizer.physics.overlap`) or, given the scene, a plate that cuts through scene geometry
(`RadioScene.scene_cuts`). Such a pose is never ray-traced.
"""

from __future__ import annotations

import math

import numpy as np

from optimizer.physics.reflectors import kind_of
from optimizer.records import JointPose, PlatePose

AXIS_NAMES = ("x", "y", "z", "yaw", "pitch")


class PlateAxes:
    """One plate's part of the search box."""

    def __init__(self, reflector, offset: int):
        b = reflector.bounds
        self.frame = getattr(b, "frame", None)  # a `BoxFrame`: the box is in a wall's frame
        self.with_pitch = reflector.pitch_deg is not None
        lo, hi = b.box_range() if self.frame is not None else (list(b.min), list(b.max))
        lo, hi = lo + [reflector.yaw_deg.min], hi + [reflector.yaw_deg.max]
        self.axis_names = AXIS_NAMES if self.frame is None else ("along", "off") + AXIS_NAMES[2:]
        if self.with_pitch:
            lo.append(reflector.pitch_deg.min)
            hi.append(reflector.pitch_deg.max)
        self.lo = np.array(lo, float)
        self.hi = np.array(hi, float)
        self.dim = len(lo)
        self.offset = offset
        self.size_m = tuple(float(s) for s in reflector.size_m)
        self.kind = kind_of(reflector)  # its reflector kind (the overlap test)
        self.name = reflector.name
        yaw_range = reflector.yaw_deg.max - reflector.yaw_deg.min
        self.yaw_periodic = yaw_range >= 360.0 - 1e-9
        # The plate is two-sided: yaw and yaw + 180 deg are the same plate (pitch 0). A yaw range of at least
        # 180 deg therefore wraps with period 180 deg: the optimiser never sticks at a yaw bound.
        self.yaw_period = 360.0 if self.yaw_periodic else (
            180.0 if yaw_range >= 180.0 - 1e-9 and not self.with_pitch else None)

    @property
    def slice(self) -> slice:
        return slice(self.offset, self.offset + self.dim)

    def to_pose(self, vec) -> PlatePose:
        v = [float(x) for x in vec] + ([0.0] if self.dim == 4 else [])
        return PlatePose.from_seq(v)

    def to_vec(self, pose: PlatePose) -> np.ndarray:
        return np.array(pose.as_list()[: self.dim], float)


class PoseSpace:
    """The joint search box of every plate."""

    def __init__(self, reflectors, scene=None):
        """`scene`: a `RadioScene` (anything with `scene_cuts`) whose geometry a pose must not cut; None:
        only plate-plate overlap is checked."""
        self.scene_cuts = getattr(scene, "scene_cuts", None)
        reflectors = list(reflectors) if isinstance(reflectors, (list, tuple)) else [reflectors]
        self.plates: list[PlateAxes] = []
        offset = 0
        for r in reflectors:
            ax = PlateAxes(r, offset)
            self.plates.append(ax)
            offset += ax.dim
        self.dim = offset
        self.lo = np.concatenate([p.lo for p in self.plates])  # box coordinates (see the module)
        self.hi = np.concatenate([p.hi for p in self.plates])
        self.span = np.where(self.hi > self.lo, self.hi - self.lo, 0.0)
        self._framed = [ax for ax in self.plates if ax.frame is not None]

    def overlaps(self, unit) -> bool:
        """Whether the plates of the unit-cube pose overlap each other (always False for one plate)."""
        if len(self.plates) < 2:
            return False
        from optimizer.physics.overlap import overlapping_pairs

        return bool(overlapping_pairs(self.unit_pose(unit), [ax.kind for ax in self.plates]))

    def rejections(self, units) -> list[str | None]:
        """Per unit-cube pose, why it is rejected ("plates overlap", or "plate 'NAME' cuts 'OBJECT'"), None
        where it is not; the scene test of every pose in one ray launch."""
        units = [np.asarray(u, float) for u in units]
        out: list[str | None] = ["plates overlap" if self.overlaps(u) else None for u in units]
        if self.scene_cuts is not None:
            todo = [i for i, r in enumerate(out) if r is None]
            for i, cut in zip(todo, self.scene_cuts([self.unit_pose(units[i]) for i in todo])):
                if cut is not None:
                    out[i] = f"plate {self.plates[cut[0]].name!r} cuts {cut[1]!r}"
        return out

    def rejection(self, unit) -> str | None:
        """Why the unit-cube pose is rejected, or None (see `rejections`)."""
        return self.rejections([unit])[0]

    def rejected(self, unit) -> bool:
        return self.rejection(unit) is not None

    @classmethod
    def of(cls, exp, scene=None) -> PoseSpace:
        return cls(exp.plates(), scene)

    # --- plate 0 shorthands (one-plate code paths) ---------------------------------------------------------
    @property
    def with_pitch(self) -> bool:
        return self.plates[0].with_pitch

    @property
    def yaw_periodic(self) -> bool:
        return self.plates[0].yaw_periodic

    @property
    def free(self) -> np.ndarray:
        """Mask of the coordinates that can move (zero-width bounds are fixed)."""
        return self.span > 0

    # --- conversions -------------------------------------------------------------------------------------------
    def to_vec(self, pose: JointPose | PlatePose) -> np.ndarray:
        if isinstance(pose, PlatePose):
            pose = JointPose.single(pose)
        if len(pose.plates) != len(self.plates):
            raise ValueError(f"a pose of {len(pose.plates)} plates for a search of {len(self.plates)}")
        return np.concatenate([ax.to_vec(p) for ax, p in zip(self.plates, pose.plates)])

    def to_pose(self, vec) -> JointPose:
        vec = np.asarray(vec, float)
        return JointPose(plates=[ax.to_pose(vec[ax.slice]) for ax in self.plates])

    def box_to_vec(self, box) -> np.ndarray:
        """Pose vectors ([..., dim], scene coordinates) of box coordinates (the same numbers without frames)."""
        box = np.asarray(box, float)
        if not self._framed:
            return box
        vec = box.copy()
        for ax in self._framed:
            i = ax.offset
            vec[..., i], vec[..., i + 1] = ax.frame.to_scene(box[..., i], box[..., i + 1])
        return vec

    def vec_to_box(self, vec) -> np.ndarray:
        """Box coordinates of pose vectors [..., dim] (the inverse of `box_to_vec`)."""
        vec = np.asarray(vec, float)
        if not self._framed:
            return vec
        box = vec.copy()
        for ax in self._framed:
            i = ax.offset
            box[..., i], box[..., i + 1] = ax.frame.to_frame(vec[..., i], vec[..., i + 1])
        return box

    def grad_to_unit(self, grad) -> np.ndarray:
        """A gradient with respect to the pose vector [dim], with respect to the unit cube (chain rule through
        the frames and the box's span)."""
        grad = np.asarray(grad, float)
        if self._framed:
            grad = grad.copy()
            for ax in self._framed:
                i = ax.offset
                grad[i], grad[i + 1] = ax.frame.turn_to_frame(grad[i], grad[i + 1])
        return grad * self.span

    def to_unit(self, vec) -> np.ndarray:
        box = self.vec_to_box(vec)
        return np.where(self.span > 0, (box - self.lo) / np.where(self.span > 0, self.span, 1.0), 0.5)

    def from_unit(self, unit) -> np.ndarray:
        return self.box_to_vec(self.lo + np.asarray(unit, float) * self.span)

    def unit_pose(self, unit) -> JointPose:
        return self.to_pose(self.from_unit(unit))

    def project_unit(self, unit) -> np.ndarray:
        unit = np.asarray(unit, float).copy()
        for ax in self.plates:
            k = ax.offset + 3
            if ax.yaw_period is not None:
                yaw = self.lo[k] + unit[k] * self.span[k]
                yaw = self.lo[k] + (yaw - self.lo[k]) % ax.yaw_period
                unit[k] = (yaw - self.lo[k]) / self.span[k]
        return np.clip(unit, 0.0, 1.0)

    def project(self, vec) -> np.ndarray:
        return self.from_unit(self.project_unit(self.to_unit(vec)))

    def contains(self, vec, tol=1e-6) -> bool:
        vec = self.vec_to_box(vec)
        for ax in self.plates:
            v = vec[ax.slice]
            yaw_ok = ax.yaw_periodic or (ax.lo[3] - tol <= v[3] <= ax.hi[3] + tol)
            box = [0, 1, 2] + ([4] if ax.dim > 4 else [])
            if not (yaw_ok and np.all(v[box] >= ax.lo[box] - tol) and np.all(v[box] <= ax.hi[box] + tol)):
                return False
        return True

    def on_bounds(self, vec, rel_tol: float = 1e-3) -> list[str]:
        """Which bounds of the box the pose lies on, e.g. ['x max', 'yaw min'] (periodic yaw has none; a box in a
        wall's frame: 'along min', 'off max')."""
        vec = self.vec_to_box(vec)
        out = []
        for i, ax in enumerate(self.plates):
            prefix = f"plate {i + 1} " if len(self.plates) > 1 else ""
            for k in range(ax.dim):
                lo, hi = ax.lo[k], ax.hi[k]
                if hi <= lo or (k == 3 and ax.yaw_period is not None):
                    continue
                tol = rel_tol * (hi - lo)
                val = vec[ax.offset + k]
                if val <= lo + tol:
                    out.append(f"{prefix}{ax.axis_names[k]} min ({lo:g})")
                elif val >= hi - tol:
                    out.append(f"{prefix}{ax.axis_names[k]} max ({hi:g})")
        return out

    def tolerance_unit(self, tol, fallback: float = 0.02) -> np.ndarray:
        """[dim] one mounting tolerance (`reflector.tolerance`, or a list of them: one per plate) per axis on
        the unit cube: position for x, y,
        z (along, off, z in a wall's frame), yaw_deg for yaw, pitch_deg for pitch; `fallback` (a share of the box) where the tolerance is 0;
        0 on fixed axes."""
        out = np.zeros(self.dim)
        tols = list(tol) if isinstance(tol, (list, tuple)) else [tol] * len(self.plates)
        for ax, t in zip(self.plates, tols):
            out[ax.slice] = [t.position_m] * 3 + [t.yaw_deg] + ([t.pitch_deg] if ax.dim > 4 else [])
        unit = np.where(self.free, out / np.where(self.span > 0, self.span, 1.0), 0.0)
        return np.where(self.free & (unit <= 0), fallback, unit)

    def sobol(self, n: int, seed: int) -> np.ndarray:
        """n quasi-random unit-cube points (scrambled Sobol, reproducible from the seed)."""
        from scipy.stats import qmc

        if n <= 0:
            return np.zeros((0, self.dim))
        sampler = qmc.Sobol(d=self.dim, scramble=True, seed=seed)
        m = int(math.ceil(math.log2(max(n, 2))))
        return sampler.random_base2(m)[:n]
