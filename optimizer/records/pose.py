"""Plate poses: one plate (`PlatePose`) and all plates of a site together (`JointPose`).

Conventions: the plate centre is (x, y, z) [m]. At yaw 0 and pitch 0 the plate lies in the x-z plane with
its normal along +y, width along +x and height along +z. Yaw rotates about +z counter-clockwise [deg];
pitch tilts the normal up, a rotation about the plate's width axis [deg].
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from optimizer.records.base import Record

POSE_AXES = ("x", "y", "z", "yaw_deg", "pitch_deg")


class PlatePose(Record):
    """Where one plate is: centre [m] and orientation [deg]."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    x: float = Field(description="plate centre x [m]")
    y: float = Field(description="plate centre y [m]")
    z: float = Field(description="plate centre z [m]")
    yaw_deg: float = Field(description="rotation about +z [deg]; 0: normal along +y")
    pitch_deg: float = Field(default=0.0, description="tilt of the normal upwards [deg]")

    def __init__(self, *args, **kwargs):
        """`PlatePose(x, y, z, yaw_deg[, pitch_deg])` or by keyword."""
        if args:
            if len(args) > len(POSE_AXES):
                raise TypeError("a plate pose is x, y, z, yaw_deg[, pitch_deg]")
            kwargs.update(zip(POSE_AXES, args))
        super().__init__(**kwargs)

    @classmethod
    def from_seq(cls, seq) -> PlatePose:
        vals = [float(v) for v in seq]
        if len(vals) not in (4, 5):
            raise ValueError("a pose is x,y,z,yaw_deg[,pitch_deg]")
        return cls(**dict(zip(POSE_AXES, vals)))

    def as_list(self) -> list[float]:
        return [self.x, self.y, self.z, self.yaw_deg, self.pitch_deg]

    @property
    def position(self) -> tuple[float, float, float]:
        return (self.x, self.y, self.z)

    def __str__(self) -> str:
        """The pose to 1 mm and 0.01 deg (what a person mounts)."""
        return (f"({self.x:.3f}, {self.y:.3f}, {self.z:.3f}) m, yaw {self.yaw_deg:.2f} deg, "
                f"pitch {self.pitch_deg:.2f} deg")

    def cli_value(self) -> str:
        """`x,y,z,yaw_deg,pitch_deg` at full precision: `--pose=` with it reproduces this pose exactly."""
        return ",".join(repr(float(v)) for v in self.as_list())


class JointPose(Record):
    """All plates of a site, in the experiment's plate order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plates: list[PlatePose] = Field(min_length=1)

    @classmethod
    def single(cls, pose: PlatePose) -> JointPose:
        return cls(plates=[pose])

    @classmethod
    def of(cls, pose: JointPose | PlatePose | None) -> JointPose | None:
        """A joint pose from a joint pose or one plate's pose (None stays None)."""
        if pose is None or isinstance(pose, JointPose):
            return pose
        return cls(plates=[pose])

    @property
    def first(self) -> PlatePose:
        return self.plates[0]

    def __len__(self) -> int:
        return len(self.plates)

    def __str__(self) -> str:
        return "; ".join(str(p) for p in self.plates)

    def cli_value(self) -> str:
        """`--pose=` value: plates separated by ';'."""
        return ";".join(p.cli_value() for p in self.plates)

    @classmethod
    def parse(cls, text: str) -> JointPose:
        """`x,y,z,yaw[,pitch]` per plate, plates separated by ';' (ValueError when malformed)."""
        parts = [p for p in str(text).split(";") if p.strip()]
        if not parts:
            raise ValueError("empty pose")
        return cls(plates=[PlatePose.from_seq(p.split(",")) for p in parts])
