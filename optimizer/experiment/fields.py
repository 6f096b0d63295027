"""Field types every part of the experiment model shares: finite numbers within their physical ranges,
names, and the strict base model (unknown keys are errors)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from optimizer.constants import ANGLE_LIMIT_DEG, POSITION_LIMIT_M

Metres = Annotated[float, Field(ge=-POSITION_LIMIT_M, le=POSITION_LIMIT_M)]  # a coordinate [m]
Degrees = Annotated[float, Field(ge=-ANGLE_LIMIT_DEG, le=ANGLE_LIMIT_DEG)]  # [deg]
Vec3 = Annotated[list[Metres], Field(min_length=3, max_length=3)]
Vec2 = Annotated[list[Metres], Field(min_length=2, max_length=2)]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]  # numpy and Dr.Jit take non-negative 32-bit seeds
NAME_RE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class _Strict(BaseModel):
    # Frozen: a change is a new model (`model_copy(update=...)`, `loading.with_overrides`), never an edit.
    # Every float finite (no .nan / .inf, whatever YAML spells them as); each field states its range.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _no_control_chars(v: str, what: str) -> str:
    if any(ord(c) < 32 for c in v):
        raise ValueError(f"holds a control character; give {what}")
    return v
