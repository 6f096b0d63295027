"""A plate's mounting box (`reflector.bounds`): where the plate centre may go.

Axis-aligned in the scene, `{min: [x, y, z], max: [x, y, z]}`, or in the frame of a wall:

    bounds: {min: [...], max: [...],
             frame: {origin_m: [x, y], along_deg: θ, along_m: [a, b], off_m: [s0, s1]}}

The frame's axes are *along* the wall (from `origin_m`, the wall's start point, in the direction `along_deg`,
counter-clockwise from +x), *off* the wall (the along axis turned 90 degrees clockwise: the outward normal of
a site.json wall, whose face is on the right of start -> end) and vertical (z, from min/max). The box is
along_m x off_m x z; `min`/`max` are then its plan extent (the axis-aligned box around it, for drawings and
quick distance tests) and must agree with the frame. A mounting box given by wall on a wall that is not
parallel to x or y becomes such a box (`optimizer.sites.wallbox`), and the search moves in it
(`optimizer.search.space`): every pose it samples, steps to or clips to lies on the wall's box.

The box coordinates of a plate centre are (along, off, z) in a frame, (x, y, z) otherwise.
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
from pydantic import Field, field_validator, model_validator

from optimizer.experiment.fields import Degrees, Metres, Vec2, Vec3, _Strict

FRAME_EXTENT_TOL_M = 1e-5  # [m] min/max of a framed box may differ from the frame's plan extent by this much

Range = Annotated[list[Metres], Field(min_length=2, max_length=2)]  # [from, to] [m]


class BoxFrame(_Strict):
    """The frame of a mounting box on a wall, and the box's extent along and off the wall (see the module)."""

    origin_m: Vec2 = Field(description="[m] scene (x, y) of the frame's origin: the wall's start point")
    along_deg: Degrees = Field(description="[deg] the along axis, counter-clockwise from the scene's +x")
    along_m: Range = Field(description="[m] [from, to] along the wall from the origin")
    off_m: Range = Field(description="[m] [from, to] in front of the wall: along the along axis turned 90 degrees "
                                     "clockwise (the wall's outward normal)")

    @field_validator("along_m", "off_m")
    @classmethod
    def _ordered(cls, v):
        if v[0] > v[1]:
            raise ValueError(f"{v[0]} is above {v[1]}; swap them")
        return v

    @property
    def axes(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((ux, uy), (nx, ny)): the unit vectors along and off the wall in the scene."""
        a = math.radians(self.along_deg)
        ux, uy = math.cos(a), math.sin(a)
        return (ux, uy), (uy, -ux)

    def to_scene(self, along, off):
        """Scene (x, y) [m] of frame coordinates (numpy arrays broadcast)."""
        (ux, uy), (nx, ny) = self.axes
        return self.origin_m[0] + along * ux + off * nx, self.origin_m[1] + along * uy + off * ny

    def to_frame(self, x, y):
        """Frame (along, off) [m] of scene points (numpy arrays broadcast)."""
        return self.turn_to_frame(x - self.origin_m[0], y - self.origin_m[1])

    def turn_to_frame(self, dx, dy):
        """A scene direction or gradient (dx, dy) in the frame's axes (along, off)."""
        (ux, uy), (nx, ny) = self.axes
        return dx * ux + dy * uy, dx * nx + dy * ny

    def corners(self) -> np.ndarray:
        """[4, 2] the box's corners in plan (scene x, y), in order round it."""
        (a0, a1), (o0, o1) = self.along_m, self.off_m
        x, y = self.to_scene(np.array([a0, a1, a1, a0], float), np.array([o0, o0, o1, o1], float))
        return np.column_stack([x, y])


class Box3(_Strict):
    min: Vec3 = Field(description="[m] the lowest x, y, z of the plate centre")
    max: Vec3 = Field(description="[m] the highest x, y, z of the plate centre")
    frame: BoxFrame | None = Field(default=None, description="the box in a wall's frame (along, off, vertical): "
                                   "min/max are then its plan extent; set by a mounting box given by wall")

    @model_validator(mode="after")
    def _ordered(self):
        for i, axis in enumerate("xyz"):
            if self.min[i] > self.max[i]:
                raise ValueError(f"min.{axis} ({self.min[i]}) is above max.{axis} ({self.max[i]}); swap them")
        if self.frame is not None:
            c = self.frame.corners()
            lo, hi = c.min(axis=0), c.max(axis=0)
            if (np.abs(lo - self.min[:2]).max() > FRAME_EXTENT_TOL_M or
                    np.abs(hi - self.max[:2]).max() > FRAME_EXTENT_TOL_M):
                raise ValueError(f"min/max x, y ({self.min[:2]}, {self.max[:2]}) are not the plan extent of the "
                                 f"frame's box; give min: [{lo[0]:.6f}, {lo[1]:.6f}, {self.min[2]:g}], "
                                 f"max: [{hi[0]:.6f}, {hi[1]:.6f}, {self.max[2]:g}]")
        return self

    @property
    def axis_names(self) -> tuple[str, str, str]:
        return ("x", "y", "z") if self.frame is None else ("along", "off", "z")

    def box_range(self) -> tuple[list[float], list[float]]:
        """(lo, hi) of the plate centre in box coordinates (see the module)."""
        if self.frame is None:
            return list(self.min), list(self.max)
        f = self.frame
        return [f.along_m[0], f.off_m[0], self.min[2]], [f.along_m[1], f.off_m[1], self.max[2]]

    def to_box(self, xyz) -> list[float]:
        """Box coordinates of a scene point (x, y, z)."""
        if self.frame is None:
            return [float(v) for v in xyz]
        a, o = self.frame.to_frame(float(xyz[0]), float(xyz[1]))
        return [a, o, float(xyz[2])]
