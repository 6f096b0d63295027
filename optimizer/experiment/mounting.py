"""How a plate may turn (`AngleRange`) and how precisely a person mounts it (`Tolerance`)."""

from __future__ import annotations

import math

from pydantic import Field, field_validator, model_validator

from optimizer.experiment.fields import Degrees, _Strict


class AngleRange(_Strict):
    min: Degrees = Field(description="[deg] the lowest angle")
    max: Degrees = Field(description="[deg] the highest angle")

    @model_validator(mode="after")
    def _ordered(self):
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max}); swap them")
        if self.max - self.min > 360:
            raise ValueError("range is wider than 360 degrees; use min: -180, max: 180")
        return self


TOLERANCE_WARN_POSITION_M = 0.5  # [m] a mounting tolerance above this is implausible: warn
TOLERANCE_WARN_ANGLE_DEG = 10.0  # [deg] likewise


class Tolerance(_Strict):
    """How precisely a person mounts the plate: +- per axis (along and off the wall and vertical [m]; yaw
    and pitch [deg]), on every axis, searched or not. 0 turns an axis off."""

    position_m: float = Field(default=0.05, description="[m]")
    yaw_deg: float = Field(default=1.0, description="[deg]")
    pitch_deg: float = Field(default=1.0, description="[deg]")

    @field_validator("position_m", "yaw_deg", "pitch_deg", mode="before")
    @classmethod
    def _finite_non_negative(cls, v, info):
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{info.field_name}={v!r} is not a number; give e.g. 0.05 (m) or 1.0 (deg), "
                             "0 turns it off") from None
        if not math.isfinite(x) or x < 0:
            raise ValueError(f"{info.field_name}={v!r} must be a finite number >= 0, e.g. 0.05 (m) or 1.0 (deg); "
                             "0 turns it off")
        return x

    @property
    def active(self) -> bool:
        return self.position_m > 0 or self.yaw_deg > 0 or self.pitch_deg > 0

    def warnings(self) -> list[str]:
        out = []
        if self.position_m > TOLERANCE_WARN_POSITION_M:
            out.append(f"reflector.tolerance.position_m={self.position_m:g} m is more than "
                       f"{TOLERANCE_WARN_POSITION_M:g} m: is that really the mounting tolerance?")
        for key in ("yaw_deg", "pitch_deg"):
            if getattr(self, key) > TOLERANCE_WARN_ANGLE_DEG:
                out.append(f"reflector.tolerance.{key}={getattr(self, key):g} deg is more than "
                           f"{TOLERANCE_WARN_ANGLE_DEG:g} deg: is that really the mounting tolerance?")
        return out
