"""The base of every run record: strict pydantic models whose JSON never holds NaN or infinity."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    """A typed thing a run writes or reads. Unknown keys are errors (a renamed field cannot slip by)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False, ser_json_inf_nan="null")

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent) + "\n"


def finite_or_none(value) -> float | None:
    """A float for JSON: None where it is missing or not finite (no path, nothing measured)."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None
