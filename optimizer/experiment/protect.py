"""`objective.protect`: the points and areas a plate must not take coverage from (the model, and the points it
gives; the rule and the search's penalty are in `optimizer.objectives.protect`)."""

from __future__ import annotations

from pydantic import Field, model_validator

from optimizer.constants import COLLATERAL_MARGIN_DB, MAX_TARGETS, PROTECT_MAP_SPACING_M
from optimizer.experiment.fields import Vec3, _Strict
from optimizer.experiment.targets import Areas


class Protect(_Strict):
    """`objective.protect` (optimizer.objectives.protect): points and areas the plate must not take coverage from.
    A protected point is lost when it is covered without the plate, falls below the coverage threshold with it
    and loses more than `max_loss_db` (the collateral report's rule). A pose holds when no protected point is
    lost, or with `max_area_m2`, when the lost area points stand for at most that area (explicit points must
    never be lost)."""

    points: list[Vec3] | None = Field(default=None, max_length=MAX_TARGETS,
                                      description="protected points [[x, y, z], ...] [m]")
    area: Areas | None = Field(default=None, description="protected polygon areas {polygon, z, spacing_m} (one "
                                    "or a list); each point stands for a spacing_m x spacing_m cell")
    max_loss_db: float = Field(default=COLLATERAL_MARGIN_DB, ge=0, le=200,
                               description="[dB] a protected point falling below the threshold is lost only if it "
                                           "loses more than this (default: the collateral report's margin)")
    max_area_m2: float | None = Field(default=None, ge=0, le=1e8,
                                      description="[m^2] the lost area allowed (area points x their cell); alone, "
                                                  "the protected area is the report's radio-map rectangle sampled "
                                                  f"every {PROTECT_MAP_SPACING_M:g} m")

    @model_validator(mode="after")
    def _some(self):
        if self.points is not None and not self.points:
            raise ValueError("points: the list is empty; give protected points [[x, y, z], ...] or leave points out")
        if self.area is not None and not self.area:
            raise ValueError("area: the list is empty; give a polygon area or leave area out")
        if not self.points and not self.area and self.max_area_m2 is None:
            raise ValueError("nothing to protect: give points, area and/or max_area_m2")
        return self


def points_of(exp) -> tuple[list[list[float]], list[float]]:
    """The protected points [m] of `objective.protect` ([] without it) and the area each stands for [m^2]
    (0: an explicit point, which must never be lost); see `optimizer.objectives.protect`."""
    import numpy as np

    from optimizer.experiment import areas

    pr = exp.objective.protect
    if pr is None:
        return [], []
    pts = [list(map(float, p)) for p in pr.points or []]
    cells = [0.0] * len(pts)
    shapes = [(a.polygon, a.z, a.spacing_m) for a in pr.area or []]
    if not pr.points and not pr.area:  # max_area_m2 alone: the report's map rectangle
        from optimizer.experiment.areas import map_area

        targets = np.asarray(exp.target_points(), float)
        x0, x1, y0, y1 = map_area(exp, targets)
        shapes = [([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float(np.median(targets[:, 2])), PROTECT_MAP_SPACING_M)]
    for poly, z, spacing in shapes:
        grid = areas.sample(poly, z, spacing).tolist()
        pts += grid
        cells += [spacing * spacing] * len(grid)
    return pts, cells
