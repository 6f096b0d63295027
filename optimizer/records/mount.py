"""The wall a plate is mounted on (`WallFrame`: the frame of its mounting tolerance) and the figures a person
needs to mount the winner there (`Mount`, `summary.json`'s `winner.mount`)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from optimizer.records.base import Record

FrameSource = Literal["site", "mesh", "bounds", "plate"]


class WallFrame(Record):
    """The frame a plate's mounting tolerance box is taken in: along the wall, off the wall, vertical.
    Found once per run per plate (`optimizer.physics.wall`), from its mounting box and the scene."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plate: str = Field(description="the plate's name")
    yaw_deg: float = Field(description="the frame's yaw [deg]: along the wall = (cos, sin, 0), off the wall = "
                                       "(-sin, cos, 0); a plate at this yaw lies parallel to the wall")
    source: FrameSource = Field(description="site: a wall of site.json; mesh: the nearest large vertical scene "
                                            "face behind the mounting box; bounds: the mounting box's long "
                                            "horizontal axis; plate: the plate at the middle of its yaw range")
    wall_id: str | None = Field(default=None, description="the wall's id (site) or scene object (mesh)")
    point: list[float] | None = Field(default=None, description="a point of the wall's face, plan [x, y] [m]")
    normal: list[float] | None = Field(default=None, description="the wall face's horizontal unit normal, "
                                                                 "towards the plate [x, y]")
    ends_m: list[float] | None = Field(default=None, description="the wall's two ends, along the wall from "
                                                                 "`point` [m]")


class Mount(Record):
    """How to mount one plate, measured the way an installer does, rounded to the mounting tolerance's
    resolution (`rounding`); what the site does not tell is null."""

    plate: str
    frame: WallFrame = Field(description="the wall (and the frame of the tolerance box)")
    wall_id: str | None = Field(description="the wall the plate is mounted on (null: not known)")
    along_m: float | None = Field(description="the plate centre's distance along the wall from its nearer end "
                                              "[m] (null: the wall's ends are not known)")
    from_end: list[float] | None = Field(default=None, description="that end, plan [x, y] [m]")
    height_m: float = Field(description="the plate centre's height above the ground below it [m]")
    ground: Literal["mesh", "z=0"] = Field(description="mesh: the first scene surface below the plate centre; "
                                                      "z=0: none found, the height is above z = 0")
    standoff_m: float | None = Field(description="the plate centre's distance from the wall's face [m] (null: "
                                                 "no wall known)")
    angle_to_wall_deg: float = Field(description="the angle between plate and wall in plan [deg] (0: parallel; "
                                                 "pitch is given apart)")
    bearing_deg: float | None = Field(description="compass bearing of the plate's normal, the side away from "
                                                  "the wall, clockwise from true north [deg] (null: the site is "
                                                  "not geo-referenced)")
    lat_deg: float | None = Field(default=None, description="the plate centre's latitude [deg, WGS 84] (null: "
                                                            "the site is not geo-referenced)")
    lon_deg: float | None = Field(default=None, description="the plate centre's longitude [deg, WGS 84] (null: "
                                                            "the site is not geo-referenced)")
    pitch_deg: float = Field(description="tilt of the normal upwards [deg]")
    yaw_deg: float = Field(description="the plate's yaw in the scene frame [deg]")
    size_m: list[float] = Field(description="plate width, height [m]")
    material: str
    tolerance: dict = Field(description="the mounting tolerance: ± position_m (along, off the wall, vertical), "
                                        "yaw_deg, pitch_deg")
    rounding: dict = Field(description="what the figures are rounded to: m, deg")
