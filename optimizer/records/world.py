"""What one world reports and keeps: a step of its history, its checkpoint state and its outcome."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from optimizer.records.base import Record, finite_or_none
from optimizer.records.pose import POSE_AXES, JointPose, PlatePose
from optimizer.records.stats import STAT_FIELDS, RssStats
from optimizer.records.tolerance import ToleranceCheck

WorldStatus = Literal["completed", "pruned", "merged", "failed", "interrupted"]
StartKind = Literal["explicit", "informed", "uniform", "exploit", "explore"]
ReuseKind = Literal["exploit", "explore"]


class WorldStep(Record):
    """One truth-checked step of one world: the pose it evaluated, the truth there, the best so far."""

    world: int = Field(ge=0)
    step: int = Field(ge=1, description="1-based step count of this world")
    pose: JointPose = Field(description="the pose evaluated by this step's truth")
    truth: RssStats = Field(description="ray-traced truth at `pose`")
    objective_dbm: float | None = Field(description="the objective's model value of the truth over the focus "
                                                     "targets (min: the soft-min [dBm])")
    surrogate_dbm: float | None = Field(default=None, description="the smooth model's objective [dBm], where "
                                                                  "the gradient mode has one")
    best: RssStats = Field(description="the best truth this world has seen so far")
    best_score: float = Field(description="ranking score of `best` (higher is better; see metrics.score)")
    best_pose: JointPose
    evaluations: int = Field(ge=0, description="truth evaluations this world has spent so far")
    step_s: float = Field(ge=0, description="wall time of this step [s]")

    # --- flat form: Tune's result dict, CSV rows ------------------------------------------------------------
    def to_flat(self) -> dict:
        """One level of scalar keys (Tune results, CSV). Plate k >= 1 gets the suffix `_k`."""
        out: dict = {"world": self.world, "step": self.step}
        out.update(_flat_pose(self.pose, ""))
        out.update({k: getattr(self.truth, k) for k in STAT_FIELDS})
        out["objective_dbm"] = self.objective_dbm
        out["surrogate_dbm"] = self.surrogate_dbm
        out.update({f"best_{k}": getattr(self.best, k) for k in STAT_FIELDS})
        out["best_score"] = self.best_score
        out.update(_flat_pose(self.best_pose, "best_"))
        out["evaluations"] = self.evaluations
        out["step_s"] = self.step_s
        return out

    @classmethod
    def from_flat(cls, row: dict) -> WorldStep:
        """Inverse of `to_flat` (tolerant of NaN for null, as pandas and CSV readers give it)."""
        def num(key):
            v = row.get(key)
            if v is None or v == "":
                return None
            return finite_or_none(v)

        def stats(prefix):
            return RssStats(min_rss_dbm=num(prefix + "min_rss_dbm"), p5_rss_dbm=num(prefix + "p5_rss_dbm"),
                            mean_rss_dbm=num(prefix + "mean_rss_dbm"), coverage=float(row[prefix + "coverage"]),
                            no_path=int(float(row[prefix + "no_path"])))

        return cls(world=int(float(row["world"])), step=int(float(row["step"])), pose=_parse_pose(row, ""),
                   truth=stats(""), objective_dbm=num("objective_dbm"), surrogate_dbm=num("surrogate_dbm"),
                   best=stats("best_"), best_score=float(row["best_score"]), best_pose=_parse_pose(row, "best_"),
                   evaluations=int(float(row["evaluations"])), step_s=float(row["step_s"]))

    @classmethod
    def flat_columns(cls, plates: int) -> list[str]:
        """The flat keys of a step with this many plates, in order (the CSV header)."""
        dummy = PlatePose(x=0, y=0, z=0, yaw_deg=0)
        stats = RssStats(min_rss_dbm=0, p5_rss_dbm=0, mean_rss_dbm=0, coverage=0, no_path=0)
        jp = JointPose(plates=[dummy] * plates)
        return list(cls(world=0, step=1, pose=jp, truth=stats, objective_dbm=0, best=stats, best_score=0,
                        best_pose=jp, evaluations=0, step_s=0).to_flat())


def _suffix(k: int) -> str:
    return "" if k == 0 else f"_{k}"


def _flat_pose(pose: JointPose, prefix: str) -> dict:
    out = {}
    for k, p in enumerate(pose.plates):
        for axis in POSE_AXES:
            out[f"{prefix}{axis}{_suffix(k)}"] = getattr(p, axis)
    return out


def _parse_pose(row: dict, prefix: str) -> JointPose:
    plates, k = [], 0
    while f"{prefix}x{_suffix(k)}" in row and _present(row.get(f"{prefix}x{_suffix(k)}")):
        plates.append(PlatePose(**{a: float(row[f"{prefix}{a}{_suffix(k)}"]) for a in POSE_AXES}))
        k += 1
    return JointPose(plates=plates)


def _present(v) -> bool:
    if v is None or v == "":
        return False
    try:
        return not math.isnan(float(v))
    except (TypeError, ValueError):
        return False


class Adam(Record):
    """Adam's moments on the unit-cube pose."""

    m: list[float]
    v: list[float]
    t: int = Field(ge=0)


class BestSoFar(Record):
    pose: JointPose
    truth: RssStats
    score: float
    step: int = Field(ge=0)


class WorldState(Record):
    """A world's checkpoint: small and of fixed size (its history lives in the Tune results, not here)."""

    world: int = Field(ge=0)
    start_kind: StartKind
    initial_pose: JointPose
    unit: list[float] = Field(description="the current pose on the unit cube of the search box")
    adam: Adam
    step_index: int = Field(ge=0, description="steps done")
    evaluations: int = Field(ge=0)
    best: BestSoFar | None = None
    last: RssStats | None = Field(default=None, description="truth of the last step")
    rng: dict = Field(description="numpy bit-generator state")
    wall_s: float = Field(default=0.0, ge=0)
    restarts: int = Field(default=0, ge=0, description="times this world resumed after its process died")
    device: str | None = Field(default=None, description="cpu | cuda: where this world's truth ran")
    mode_state: dict = Field(default_factory=dict, description="the gradient mode's own state")
    candidates: list[BestSoFar] = Field(default_factory=list, description="the best distinct poses seen, for the "
                                                                          "final tolerance check (bounded)")
    tolerance: ToleranceCheck | None = Field(default=None, description="truth over the mounting tolerance of "
                                                                       "this world's best pose")


class WorldOutcome(Record):
    """How one world ended, as `summary.json` lists it."""

    world: int = Field(ge=0)
    status: WorldStatus
    start_kind: StartKind | None = None
    parent: int | None = Field(default=None, description="a reused slot's parent: the world whose best pose it "
                                                         "perturbed (exploit); null for explore and the starts "
                                                         "(`summary.reused` names the slot each took)")
    planned_steps: int | None = Field(default=None, description="steps the world was given (a reused slot: fewer)")
    merged_into: int | None = Field(default=None, description="status merged: the world it came too close to")
    size_m: list[list[float]] | None = Field(default=None, description="with sizes_m: the world's plate sizes, "
                                                                      "[width, height] [m] per plate")
    initial_pose: JointPose | None = None
    final_pose: JointPose | None = None
    best_pose: JointPose | None = None
    best: RssStats | None = None
    score: float | None = Field(default=None, description="ranking score of the world's result")
    steps: int = Field(ge=0)
    evaluations: int = Field(ge=0)
    restarts: int = Field(ge=0)
    error: str | None = None
    device: str | None = None
    peak_host_mb: float | None = None
    tolerance: ToleranceCheck | None = None

    @property
    def holds(self) -> bool | None:
        return None if self.tolerance is None else self.tolerance.holds


class ReusedSlot(Record):
    """A world started in the budget a pruned or merged world left (`search.reuse`)."""

    world: int = Field(ge=0, description="the new world")
    kind: ReuseKind = Field(description="exploit: near the best poses so far; explore: where no world has been")
    parent: int | None = Field(description="exploit: the world whose best pose it perturbed; explore: null")
    freed_by: int = Field(description="the pruned or merged world whose budget it uses")
    start_pose: JointPose
    steps: int = Field(ge=1, description="steps it was given")
    scale: float | None = Field(default=None, description="exploit: perturbation in units of the mounting "
                                                          "tolerance (or of 2 % of the box where it is off)")
