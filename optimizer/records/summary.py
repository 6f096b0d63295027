"""A run's metadata (`run.json`, written first), its targets table and its summary (`summary.json`, last)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from optimizer.records.base import Record
from optimizer.records.collateral import Collateral
from optimizer.records.mount import Mount, WallFrame
from optimizer.records.pose import JointPose, PlatePose
from optimizer.records.stats import RssStats
from optimizer.records.tolerance import PlateTolerance, ToleranceCheck
from optimizer.records.world import ReusedSlot, WorldOutcome

RunStatus = Literal["running", "interrupted", "failed", "complete"]


class Overrides(Record):
    """What the command line changed (and what `resume` must restore)."""

    output: str
    device: str
    worlds: int
    scene: str


class RunMeta(Record):
    """`run.json`: written when a run starts and whenever its status changes."""

    name: str
    run_id: str
    run_uri: str
    status: RunStatus
    created_utc: str
    resumed_utc: str | None = None
    finished_utc: str | None = None
    experiment_sha256: str
    overrides: Overrides
    pruned: list[int] = Field(default_factory=list, description="worlds the pruner stopped")
    merged: dict[int, int] = Field(default_factory=dict, description="worlds stopped for coming within the "
                                                                     "tolerance of a better one: {world: into}")
    restarts: dict[int, int] = Field(default_factory=dict, description="times each world's process died and "
                                                                       "restarted from its checkpoint")
    error: str | None = Field(default=None, description="why the run failed (status failed)")
    ray_session: str | None = Field(default=None, description="the local Ray session this run started (so a "
                                                              "later run can stop what a killed one left)")


class RunLease(Record):
    """`lease.json`: the driver that owns a run folder (optimizer.store.lease), renewed while it runs."""

    pid: int
    host: str
    process_start: float | None = Field(default=None, description="the process's start time [s since the epoch] "
                                                                  "(a reused PID is not the holder)")
    command: str = Field(description="run | resume")
    token: str = Field(description="this holder's random id")
    started_utc: str
    heartbeat_utc: str
    heartbeat_unix: float = Field(description="[s since the epoch] last renewal")
    ttl_s: float = Field(gt=0, description="[s] the lease lapses this long after its last renewal")


class TargetRow(Record):
    """One row of `targets.csv`."""

    target: int = Field(ge=0)
    x: float
    y: float
    z: float
    baseline_rss_dbm: float | None = Field(description="[dBm]; null: no path")
    winner_rss_dbm: float | None = Field(description="[dBm]; null: no path")
    gain_db: float | None = Field(description="winner - baseline [dB]; null unless both have a path")
    covered_baseline: bool
    covered_winner: bool
    worst_rss_dbm: float | None = Field(default=None, description="worst over the winner's tolerance box [dBm]")
    covered_worst: bool | None = None
    plate: str | None = Field(default=None, description="the plate on this target's strongest path, if any")


class Gain(Record):
    """Winner minus baseline [dB], only where both sides have a path (never against a no-path floor)."""

    min: float | None = Field(description="of the min RSS; null when either worst target has no path")
    p5: float | None
    mean: float | None = Field(description="mean over the targets with a path on both sides")


class CoverageGain(Record):
    targets: int = Field(description="targets covered with the plate minus without")
    share: float = Field(description="coverage with the plate minus without")
    gained_path: int = Field(description="targets with no path without the plate that have one with it")


class Convergence(Record):
    """How far the winner's truth moves when the solver is pushed harder (should be small)."""

    min_rss_dbm: float | None = Field(description="at the run's settings [dBm]")
    depth_plus_1_db: float | None = Field(description="change of min RSS at max_depth + 1 [dB]")
    samples_x4_db: float | None = Field(description="change of min RSS at 4 x samples_per_src [dB]")
    coverage_depth_plus_1: float | None = None
    coverage_samples_x4: float | None = None
    warning: str | None = Field(default=None, description="set when a change exceeds the limit")


class WinnerPlate(Record):
    """One plate of the winning joint pose."""

    name: str = Field(description="the plate's name (reflectors[].name; plate-1, ... by default)")
    pose: PlatePose
    size_m: list[float] = Field(description="width, height [m]")
    tolerance: PlateTolerance | None = Field(default=None, description="the truth over this plate's mounting "
                                                                       "box (null: tolerance off)")
    mount: Mount | None = Field(default=None, description="how to mount it: wall, along, height, stand-off, "
                                                          "angles, rounded to the tolerance")


class Winner(RssStats):
    """The winning pose and its truth, re-evaluated at `samples_per_src`."""

    pose: PlatePose = Field(description="the first plate's pose (see `plates` for all)")
    plates: list[WinnerPlate]
    joint_pose: JointPose
    world: int
    samples_per_src: int
    search_min_rss_dbm: float | None = Field(description="the world's own truth at its sample count [dBm]")
    pose_arg: str = Field(description="`--pose=` value that reproduces the pose exactly")
    size_arg: str | None = Field(default=None, description="with sizes_m: the `--size=` value of the chosen "
                                                           "sizes (null: no catalogue)")
    on_bounds: list[str] = Field(default_factory=list, description="bounds of the mounting box the pose lies on")
    tolerance: ToleranceCheck | None = None
    truth_convergence: Convergence | None = None
    notes: list[str] = Field(default_factory=list, description="what a person must know before mounting it")
    mount: Mount | None = Field(default=None, description="how to mount the first plate (see `plates[].mount` "
                                                          "for each): its wall, the distance along it from its "
                                                          "nearer end, the height above the ground, the stand-off, "
                                                          "the angle to the wall, the bearing, the pitch")


class SizeResult(Record):
    """With `sizes_m`: the best result of one size option (one size per plate) over the worlds that ran it."""

    size_m: list[list[float]] = Field(description="[width, height] [m] per plate")
    area_m2: float = Field(description="the plates' total area [m^2]")
    worlds: list[int] = Field(description="the worlds that ran this size")
    world: int | None = Field(description="the world with this size's best result (null: none ran)")
    holds: bool | None = Field(description="whether that result covers every target over the tolerance "
                                           "(tolerance off: at its pose; null: not checked, its worlds were "
                                           "pruned)")
    worst_min_rss_dbm: float | None = Field(description="its worst case over the tolerance box [dBm] (a world's "
                                                        "check stops at its first failing pose: the worst seen "
                                                        "until then; the chosen size: the winner's whole box)")
    worst_coverage: float | None = Field(description="the lowest coverage over the tolerance box (likewise)")
    min_rss_dbm: float | None = Field(description="its nominal min RSS, the world's own truth [dBm]")
    coverage: float | None = Field(description="its nominal coverage")
    chosen: bool = Field(description="the winner's size")


class Failure(Record):
    world: int
    restarts: int
    status: str
    error: str


class Counts(Record):
    worlds: int
    completed: int
    pruned: int
    failed: int
    merged: int = Field(default=0, description="worlds stopped as duplicates of a better one")
    reused: int = Field(default=0, description="worlds started in freed budget (search.reuse)")
    robust: int = Field(default=0, description="worlds whose best pose holds over the tolerance")


class RobustPhase(Record):
    """The robust phase after the search (`search.robust_phase: halving`, optimizer.search.robust_phase)."""

    mode: str = Field(description="search.robust_phase as run")
    candidates: int = Field(description="the completed worlds' distinct best poses, in the phase")
    checked: int = Field(description="candidates whose tolerance box was ray-traced (to the end or until refuted)")
    stopped: int = Field(description="candidates stopped: their bound (nominal, then the worst pose traced so far) "
                                     "could no longer beat the best confirmed worst case")
    polished: int = Field(description="candidates given the worst-case polish (each became the leader)")
    evaluations: int = Field(description="truth evaluations of the phase (also counted in `evaluations`)")
    parallel_tasks: int = Field(default=0, description="Ray tasks that checked boxes of challengers at once")
    model_worst_checks: int = Field(default=0, description="complete box checks traced in the model's order")
    model_worst_hits: int = Field(default=0, description="of those, the checks where the model's worst box pose "
                                                         "was the truth's worst")
    model_worst_ranks: list[int] = Field(default_factory=list, description="per such check, the truth's worst "
                                                                            "pose's place in the model's order "
                                                                            "(0: the model's worst)")
    refuted_after: list[int] = Field(default_factory=list, description="per check stopped by the leader's worst "
                                                                       "case, the box poses it traced (0: its "
                                                                       "nominal pose was no better)")


class Pruning(Record):
    enabled: bool
    reduction_factor: int | None
    grace_steps: int | None
    rungs: list[int]


class ObjectiveResult(Record):
    """What the run maximised (`objective.kind`, optimizer.objectives) and its truth value at the baseline and at
    the winner (final sample count): min and percentile in dBm (null: a target without a path decides it),
    coverage as the share of targets covered."""

    kind: str = Field(description="min, percentile or coverage (optimizer.registry.OBJECTIVES)")
    params: dict = Field(description="the kind's parameters (p [%], required [share], threshold [dBm], ...)")
    baseline: float | None = Field(description="the objective's truth value without the plate")
    winner: float | None = Field(description="the objective's truth value at the winning pose")


class BandFrequency(Record):
    """One frequency of a band (`frequency_hz` a list): the truth at the final sample count at that frequency
    alone, baseline and winner. The run's own figures (`baseline`, `winner`, `objective`) take each target's
    worst over the band."""

    frequency_hz: float = Field(description="[Hz]")
    objective_baseline: float | None = Field(description="the objective's truth value without the plate")
    objective_winner: float | None = Field(description="the objective's truth value at the winning pose")
    baseline: RssStats = Field(description="truth without the plate at this frequency")
    winner: RssStats = Field(description="truth at the winning pose at this frequency")


class Summary(Record):
    """`summary.json`: everything a run found. Written last: its presence marks a complete run."""

    name: str = Field(description="the experiment's name")
    run_id: str = Field(description="sortable UTC timestamp + random suffix")
    experiment_sha256: str = Field(description="hash of the experiment's meaning as submitted")
    created_utc: str
    finished_utc: str
    wall_time_s: float = Field(description="the whole run [s], report included")
    scene: str = Field(description="the scene as the run resolved it")
    frequency_hz: float | list[float] = Field(description="[Hz] the carrier, or the band's frequencies")
    band: list[BandFrequency] = Field(default_factory=list, description="a band: per frequency, baseline and "
                                                                        "winner (empty for one frequency)")
    device: str = Field(description="where the worlds' truth ran (cpu, cuda, or both: 'cpu+cuda')")
    output: str = Field(description="the run folder or s3:// URI")
    threshold_dbm: float = Field(description="coverage threshold [dBm]")
    targets_count: int
    targets_dropped: int = Field(default=0, description="targets.area points dropped: inside buildings")
    solver: dict = Field(description="every effective PathSolver setting of the truth")
    baseline: RssStats = Field(description="truth without the plate, at the winner's sample count")
    winner: Winner = Field(description="the winning pose and its truth")
    objective: ObjectiveResult | None = Field(default=None, description="the objective, at baseline and winner")
    gain_db: Gain = Field(description="winner minus baseline [dB], only where both sides have a path")
    coverage_gain: CoverageGain = Field(description="targets covered (and given a path) by the plate")
    worlds: list[WorldOutcome] = Field(description="every world: start, status, best pose and truth")
    failures: list[Failure] = Field(description="worlds that failed or whose process died and resumed")
    reused: list[ReusedSlot] = Field(default_factory=list, description="each world started in a freed slot, with "
                                                                      "its parent")
    sizes: list[SizeResult] = Field(default_factory=list, description="with sizes_m: each size option tried "
                                                                     "(smallest total area first) and its best "
                                                                     "result; empty without a catalogue")
    counts: Counts
    evaluations: int = Field(description="truth evaluations of the whole run (worlds and driver)")
    pruning: Pruning = Field(description="successive halving: rungs [steps]")
    robust_phase: RobustPhase | None = Field(default=None, description="the tolerance checks and worst-case "
                                                                       "polish after the search (halving)")
    world_steps: int = Field(description="steps done by all worlds together")
    peak_host_mb_per_world: float | None = Field(description="largest peak host memory of a world [MB]")
    search: dict = Field(description="the search settings as run")
    resources: dict = Field(description="CPU and GPU share per world")
    versions: dict = Field(description="versions of the libraries that shape the numbers")
    report_time_s: float | None = Field(default=None, description="time spent drawing the report [s]")
    collateral: Collateral | None = Field(default=None, description="the area covered without the plate that it "
                                                                    "leaves uncovered, from the report's radio "
                                                                    "maps (null: no maps drawn)")
    tolerance_frames: list[WallFrame] = Field(default_factory=list, description="per plate, the frame its "
                                                                               "mounting tolerance box was taken "
                                                                               "in: its wall (site, mesh), else "
                                                                               "the mounting box's long axis")
