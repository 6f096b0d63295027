"""Typed run records: everything a run writes and reads, as pydantic models.

A world reports `WorldStep`s and keeps a `WorldState`; the driver turns them into `WorldOutcome`s and a
`Summary`; `RunMeta` is `run.json`, `TargetRow` a row of `targets.csv`. `optimizer.store.runstore` writes
and reads them (JSON, CSV, Parquet) in one place; `reflectopt schema` prints their JSON Schema.
"""

from optimizer.records.base import Record, finite_or_none
from optimizer.records.collateral import Collateral
from optimizer.records.mount import FrameSource, Mount, WallFrame
from optimizer.records.notes import NoteKind, WinnerNote
from optimizer.records.pose import POSE_AXES, JointPose, PlatePose
from optimizer.records.stats import STAT_FIELDS, RssStats
from optimizer.records.summary import (BandFrequency, Convergence, CoverageGain, Counts, Failure, Gain, Overrides,
                                       Pruning, ObjectiveResult, RobustPhase, RunLease, RunMeta, RunStatus, SizeResult, Summary,
                                       TargetRow, Winner, WinnerPlate)
from optimizer.records.tolerance import PlateTolerance, ToleranceCheck
from optimizer.records.world import (Adam, BestSoFar, ReusedSlot, ReuseKind, StartKind, WorldOutcome, WorldState,
                                     WorldStatus, WorldStep)

__all__ = ["POSE_AXES", "STAT_FIELDS", "Adam", "BandFrequency", "BestSoFar", "Collateral", "Convergence",
           "CoverageGain", "Counts", "Failure", "FrameSource", "Gain", "JointPose", "Mount", "NoteKind",
           "ObjectiveResult", "Overrides", "PlatePose", "PlateTolerance", "Pruning", "Record", "RobustPhase",
           "RssStats", "RunLease", "RunMeta", "RunStatus", "ReusedSlot", "SizeResult", "ReuseKind", "StartKind",
           "Summary", "TargetRow", "ToleranceCheck", "WallFrame", "Winner", "WinnerNote", "WinnerPlate",
           "WorldOutcome", "WorldState", "WorldStatus", "WorldStep", "finite_or_none"]
