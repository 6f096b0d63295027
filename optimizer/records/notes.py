"""What a person must know about the winner before mounting it (`Winner.notes` holds their texts), typed by
kind so that what reads them picks by kind, never by the wording."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class NoteKind(StrEnum):
    TOLERANCE_FAILS = "tolerance_fails"  # coverage does not hold over the mounting tolerance (and what would)
    TOLERANCE_HOLDS = "tolerance_holds"  # it holds (the console says so in its own table)
    SIZE_CHOICE = "size_choice"  # sizes_m: the size chosen and why
    CONVERGENCE = "convergence"  # the truth moved with a deeper or denser trace
    PLATE_MODEL = "plate_model"  # the plate's paths are geometric optics
    NOT_NEEDED = "not_needed"  # the targets meet the objective's requirement without a plate
    NO_GAIN = "no_gain"  # the best pose found hardly raises the objective (NO_GAIN_DB)


@dataclass(frozen=True)
class WinnerNote:
    kind: NoteKind
    text: str

    @property
    def on_console(self) -> bool:
        """Whether the run's closing lines repeat it (a tolerance that holds is in the table above them)."""
        return self.kind is not NoteKind.TOLERANCE_HOLDS
