"""`summary.collateral`: the area the plate takes away (covered without it, not with it), from the radio maps."""

from __future__ import annotations

from pydantic import Field

from optimizer.records.base import Record


class Collateral(Record):
    """Cells of the report's radio maps (outside buildings) covered without the plate that the plate leaves
    below the threshold: its shadow and the energy it sends elsewhere. Geometric-optics plate, Monte Carlo
    maps: a cell that falls below the threshold counts only if it loses more than `margin_db` (see README,
    "Collateral loss")."""

    area_m2: float = Field(ge=0, description="collateral area: cells covered without the plate, not with it [m^2]")
    cells: int = Field(ge=0, description="collateral cells")
    area_any_drop_m2: float = Field(default=0.0, ge=0, description="the same without the noise margin: every cell "
                                                                   "covered without the plate, not with it [m^2] "
                                                                   "(an upper figure: it includes drops within the "
                                                                   "maps' noise)")
    covered_area_m2: float = Field(ge=0, description="area covered without the plate, outside buildings [m^2]")
    worst_loss_db: float | None = Field(description="largest drop (baseline - winner) over the cells covered "
                                                    "without the plate [dB]; null: none covered")
    worst_no_path: bool = Field(default=False, description="the worst cell has no path with the plate (its loss "
                                                           "is counted down to the no-path floor)")
    worst_xy_m: list[float] | None = Field(description="x, y of the worst cell's centre [m]")
    centroid_xy_m: list[float] | None = Field(description="x, y of the collateral cells' centroid [m]; null: none")
    threshold_dbm: float = Field(description="coverage threshold of the maps [dBm]")
    margin_db: float = Field(ge=0, description="noise margin a cell's drop must exceed to count [dB]")
    cell_m: float = Field(gt=0, description="radio map cell size [m]")
    height_m: float = Field(description="height of the map plane [m]")
    samples_per_tx: int = Field(ge=0, description="rays per transmitter of each map")
    map: str = Field(description="the picture (heatmaps/collateral.png); the cells: `collateral` in "
                                 "heatmaps/radio_maps.npz")
    constraint_held: bool | None = Field(default=None, description="objective.protect: the winner keeps it on its "
                                         "protected points (summary.objective.protect.held) and, with max_area_m2, "
                                         "these maps' area_m2 is within it; null without objective.protect")
    constraint_margin_m2: float | None = Field(default=None, description="objective.protect.max_area_m2 - area_m2 "
                                               "[m^2] (negative: over); null without max_area_m2")
