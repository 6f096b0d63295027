"""Transmitters and their antennas (`optimizer.physics.antenna` turns them into Sionna's arrays)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_serializer, model_validator

from optimizer.constants import ANTENNA_DEFAULT_PATTERN, ANTENNA_DEFAULT_POLARIZATION, TX_POWER_DBM_RANGE
from optimizer.experiment.fields import Degrees, Vec3, _Strict


class Antenna(_Strict):
    """A device's antenna (optimizer.physics.antenna): a pattern and polarisation of Sionna's registries and
    where its boresight points: `azimuth_deg` (in the x-y plane, counter-clockwise from +x) and `downtilt_deg`
    (below the horizon), or `look_at` (a point [m]). The default is isotropic, vertically polarised."""

    pattern: str = Field(default=ANTENNA_DEFAULT_PATTERN, description="iso, dipole, hw_dipole, tr38901 or a "
                                                                      "pattern registered with Sionna")
    polarization: str = Field(default=ANTENNA_DEFAULT_POLARIZATION, description="V, H, VH or cross")
    azimuth_deg: Degrees = Field(default=0.0, description="[deg] boresight in the x-y plane, counter-clockwise from +x")
    downtilt_deg: Annotated[float, Field(ge=-90, le=90)] = Field(default=0.0, description="[deg] boresight below the horizon")
    look_at: Vec3 | None = Field(default=None, description="[m] the boresight aims here (instead of the angles)")

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str):
        from optimizer.physics.antenna import check_pattern

        return check_pattern(v)

    @field_validator("polarization")
    @classmethod
    def _polarization(cls, v: str):
        from optimizer.physics.antenna import check_polarization

        return check_polarization(v)

    @model_validator(mode="after")
    def _one_aim(self):
        if self.look_at is not None and (self.azimuth_deg != 0.0 or self.downtilt_deg != 0.0):
            raise ValueError("look_at: given together with azimuth_deg/downtilt_deg; keep one")
        return self

    def is_default(self) -> bool:
        return self == Antenna()


def _check_look_at(antenna: Antenna | None, position, what: str):
    if antenna is not None and antenna.look_at is not None and all(
            abs(float(a) - float(b)) < 1e-9 for a, b in zip(antenna.look_at, position)):
        raise ValueError(f"{what}antenna.look_at: equals the position; give a point the boresight aims at")


class Transmitter(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="the transmitter's name in results and reports")
    position: Vec3 = Field(description="[m] x, y, z in the scene (or {lat, lon, height_m} on a site)")
    power_dbm: float = Field(default=30.0, ge=TX_POWER_DBM_RANGE[0], le=TX_POWER_DBM_RANGE[1],
                             description="[dBm] transmit power")
    antenna: Antenna = Field(default_factory=Antenna, description="pattern, polarisation, boresight "
                                                                  "(default: isotropic, V)")

    @model_validator(mode="after")
    def _aim(self):
        _check_look_at(self.antenna, self.position, "")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        # The default antenna is left out: an experiment without antennas hashes as it always did.
        data = handler(self)
        if isinstance(data, dict) and self.antenna.is_default():
            data.pop("antenna", None)
        return data
