"""`spsa` (comparison): simultaneous-perturbation gradient from two truth evaluations per step."""

from __future__ import annotations

import numpy as np

from optimizer.constants import SPSA_C0
from optimizer.search.modes import GradientMode, ModeStep, register_gradient_mode


@register_gradient_mode
class SpsaMode(GradientMode):
    name = "spsa"

    def step(self) -> ModeStep:
        w = self.world
        space = w.space
        delta = np.where(space.free, w.rng.choice([-1.0, 1.0], space.dim), 0.0)
        c = SPSA_C0 / (w.step_index + 1) ** 0.101
        up = w.truth(space.project_unit(w.unit + c * delta))
        down = w.truth(space.project_unit(w.unit - c * delta))
        g = (up.objective_dbm - down.objective_dbm) / (2 * c) * delta
        w.adam_ascent(g, w.learning_rate(w.progress()))
        return up if w.objective.score(up.stats) >= w.objective.score(down.stats) else down
