"""Where the signal is wanted: points, a rectangular region, polygon areas (sampled in `areas`), and the
targets' shared antenna."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from optimizer.constants import MAX_TARGET_WEIGHT, MAX_TARGETS, POSITION_LIMIT_M
from optimizer.experiment.devices import Antenna, _check_look_at
from optimizer.experiment.fields import Metres, Vec2, Vec3, _Strict


Weight = Annotated[float, Field(gt=0, le=MAX_TARGET_WEIGHT)]  # a target's weight (percentile, coverage)


class Region(_Strict):
    min: Vec2 = Field(description="[m] the grid's lowest x, y")
    max: Vec2 = Field(description="[m] the grid's highest x, y")
    z: Metres = Field(default=1.5, description="[m] the targets' height")
    spacing_m: float = Field(default=2.0, gt=0, le=POSITION_LIMIT_M, description="[m] the grid's spacing")

    @model_validator(mode="after")
    def _ordered(self):
        if self.min[0] > self.max[0] or self.min[1] > self.max[1]:
            raise ValueError("min must be below max in x and y")
        n = ((self.max[0] - self.min[0]) / self.spacing_m + 1) * ((self.max[1] - self.min[1]) / self.spacing_m + 1)
        if not n <= MAX_TARGETS:  # a float product: a tiny spacing overflows to inf rather than raising
            count = f"{math.floor(n):.3g}" if math.isfinite(n) else "too many"
            raise ValueError(f"region gives {count} targets (limit {MAX_TARGETS}); raise spacing_m")
        return self


class Area(_Strict):
    """Targets over a polygon (optimizer.experiment.areas): grid points at `spacing_m` inside it at height `z`;
    those inside buildings are dropped when the scene loads."""

    polygon: list[Vec2] = Field(description="corners [[x, y], ...] [m], in order, at least 3, not crossing")
    z: Metres = Field(default=1.5, description="[m] the targets' height")
    spacing_m: float = Field(default=2.0, gt=0, le=POSITION_LIMIT_M, description="[m] the grid's spacing")
    weight: float = Field(default=1.0, gt=0, le=MAX_TARGET_WEIGHT,
                          description="each of its points' weight in percentile and coverage (default 1)")

    @model_validator(mode="after")
    def _simple(self):
        from optimizer.experiment import areas

        why = areas.polygon_problem(self.polygon)
        if why:
            raise ValueError(why)
        n = areas.grid_count(self.polygon, self.spacing_m)
        if not n <= MAX_TARGETS:
            count = f"{math.floor(n):.3g}" if math.isfinite(n) else "too many"
            raise ValueError(f"area gives up to {count} targets (limit {MAX_TARGETS}); raise spacing_m")
        if not len(areas.sample(self.polygon, self.z, self.spacing_m)):
            raise ValueError(f"no grid point at spacing_m {self.spacing_m:g} lies in the polygon; lower spacing_m")
        return self



Areas = Annotated[list[Area], BeforeValidator(lambda v: [v] if isinstance(v, dict) else v)]  # one area or a list

class Targets(_Strict):
    points: list[Vec3] = Field(default=[], max_length=MAX_TARGETS, description="[m] explicit target points [x, y, z]")
    region: Region | None = Field(default=None, description="a rectangular grid of targets {min, max, z, spacing_m}")
    area: Areas | None = Field(default=None, description="one polygon area {polygon, z, spacing_m} or a list")
    weights: list[Weight] | None = Field(default=None, description="one weight per explicit point, in order "
                                         "(default 1 each; percentile and coverage weigh targets, min does not)")
    antenna: Antenna | None = Field(default=None, description="every target's antenna (default: isotropic, "
                                                              "V); `look_at` aims each target at one point")

    @model_validator(mode="after")
    def _some(self):
        if not self.points and self.region is None and not self.area:
            raise ValueError("no targets: give points: [[x, y, z], ...], region: {min, max, z, spacing_m} and/or "
                             "area: {polygon: [[x, y], ...], z, spacing_m}")
        for p in self.points:
            _check_look_at(self.antenna, p, "")
        if self.weights is not None and len(self.weights) != len(self.points):
            raise ValueError(f"weights: {len(self.weights)} given for {len(self.points)} points; give one weight per "
                             "point of targets.points, in order")
        return self

    def weighted(self) -> bool:
        """Whether any target weighs other than 1."""
        return self.weights is not None and any(w != 1.0 for w in self.weights) or any(
            a.weight != 1.0 for a in self.area or [])
