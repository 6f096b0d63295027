"""Field types every part of the experiment model shares: finite numbers within their physical ranges,
names, and the strict base model (unknown keys are errors)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

import math

from optimizer.constants import ANGLE_LIMIT_DEG, FREQUENCY_HZ_RANGE, MAX_BAND_FREQUENCIES, POSITION_LIMIT_M

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


def _frequency(v, where: str) -> float:
    """One frequency [Hz] of `frequency_hz`: a finite number within FREQUENCY_HZ_RANGE."""
    lo, hi = FREQUENCY_HZ_RANGE
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise ValueError(f"{where}must be a number [Hz] (e.g. 3.5e9)")
    try:
        f = float(v)
    except ValueError:
        raise ValueError(f"{where}{v!r} is not a number; give the frequency in Hz (e.g. 3.5e9)") from None
    if not math.isfinite(f):
        raise ValueError(f"{where}must be a finite number (not .nan or .inf)")
    if f <= 0.0:
        raise ValueError(f"{where}{f:g} is not positive; give the frequency in Hz (e.g. 3.5e9)")
    if not lo <= f <= hi:
        raise ValueError(f"{where}{f:g} Hz is outside {lo:g} .. {hi:g} Hz")
    return f


def check_frequency_hz(v) -> float | list[float]:
    """`frequency_hz`: one carrier [Hz], or a band: a list of 1 .. MAX_BAND_FREQUENCIES of them (each a truth
    solve); every entry finite, positive and within FREQUENCY_HZ_RANGE."""
    if not isinstance(v, (list, tuple)):
        return _frequency(v, "")
    if not v:
        raise ValueError("the list is empty; give one frequency [Hz] or a band, e.g. [3.3e9, 3.55e9, 3.8e9]")
    if len(v) > MAX_BAND_FREQUENCIES:
        raise ValueError(f"{len(v)} frequencies, more than {MAX_BAND_FREQUENCIES} (each costs a truth solve); "
                         "give fewer, e.g. the band's edges and centre")
    return [_frequency(f, f"entry {i + 1}: ") for i, f in enumerate(v)]


def _no_control_chars(v: str, what: str) -> str:
    if any(ord(c) < 32 for c in v):
        raise ValueError(f"holds a control character; give {what}")
    return v
