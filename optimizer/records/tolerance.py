"""The truth of a pose over its mounting tolerance: does coverage hold at every corner of the box?"""

from __future__ import annotations

from pydantic import Field

from optimizer.records.base import Record
from optimizer.records.pose import JointPose
from optimizer.records.stats import RssStats


class PlateTolerance(Record):
    """One plate's share of a tolerance check: its own box (the other plates at their nominal poses)."""

    name: str = Field(description="the plate's name")
    position_m: float = Field(ge=0, description="± position tolerance per axis [m]")
    yaw_deg: float = Field(ge=0, description="± yaw tolerance [deg]")
    pitch_deg: float = Field(ge=0, description="± pitch tolerance [deg]")
    poses_checked: int = Field(ge=0, description="poses of this plate's box whose truth was checked")
    complete: bool = Field(description="every pose of this plate's box was checked")
    holds: bool = Field(description="every target covered at every pose of this plate's box checked")
    worst_min_rss_dbm: float | None = Field(description="worst min RSS over this plate's box and the pose "
                                                        "itself [dBm]; null: a target lost every path")
    worst_coverage: float = Field(ge=0, le=1, description="lowest coverage over this plate's box")
    cut_by: str | None = Field(default=None, description="the scene object this plate cuts through at a pose of "
                                                         "its box (not traced; the box fails); null: none")


class ToleranceCheck(Record):
    """Ray-traced truth at every corner of the tolerance box around a pose and at seeded interior poses.

    Position offsets are in the frame of the wall the plate is mounted on (along the wall, off the wall,
    vertical; `summary.tolerance_frames` says which frame each plate's box used), the way a bracket errs;
    angles are offsets of the plate's yaw and pitch."""

    position_m: float = Field(ge=0, description="± position tolerance per axis [m]")
    yaw_deg: float = Field(ge=0, description="± yaw tolerance [deg]")
    pitch_deg: float = Field(ge=0, description="± pitch tolerance [deg]")
    poses_checked: int = Field(ge=0, description="poses whose truth was checked: the pose itself, the box's "
                                                    "corners and interior poses")
    nominal: RssStats = Field(description="truth at the pose itself")
    worst: RssStats = Field(description="per target, the worst value over the box; its statistics")
    nominal_min_rss_dbm: float | None = Field(description="= nominal.min_rss_dbm [dBm]")
    worst_min_rss_dbm: float | None = Field(description="worst min RSS over the box [dBm]; null: a target lost "
                                                        "every path somewhere in the box")
    worst_coverage: float = Field(ge=0, le=1, description="lowest coverage over the box")
    holds: bool = Field(description="every target covered at every pose checked")
    complete: bool = Field(default=True, description="every pose of the box was checked (a failing check may "
                                                     "stop at its first failure)")
    worst_offset: list[float] | None = Field(default=None, description="offset (along, off the wall, vertical [m], "
                                                                       "yaw, pitch [deg]) of the worst pose")
    margin_scale: float | None = Field(default=None, description="largest scale of the requested box over which "
                                                                 "coverage still holds (bisection on truth)")
    samples_per_src: int | None = Field(default=None, description="samples per source of these truths")
    pose: JointPose | None = Field(default=None, description="the pose checked")
    target_worst_dbm: list[float | None] = Field(default_factory=list, description="per target, the worst truth "
                                                                                  "over the box [dBm]; null: no path")
    failing_offsets: list[list[float]] = Field(default_factory=list, description="offsets at which a target lost "
                                                                                 "coverage, worst first")
    suggestions: list[str] = Field(default_factory=list, description="what would make coverage hold")
    cut_by: str | None = Field(default=None, description="\"plate 'NAME' cuts 'OBJECT'\" at a pose of the box: "
                                                         "the plate could not be mounted there, so the check "
                                                         "fails (that pose is not traced); null: none")
    cut_offset: list[float] | None = Field(default=None, description="offset (along, off the wall, vertical [m], yaw, "
                                                                     "pitch [deg]) of the first pose that cuts")
    plates: list[PlateTolerance] = Field(default_factory=list, description="per plate, its own box (each "
                                                                           "plate's box in turn, the others "
                                                                           "nominal)")
