"""`random` (comparison): truth at uniform random poses in the box; the first step takes the start."""

from __future__ import annotations

from optimizer.search.modes import GradientMode, ModeStep, register_gradient_mode


@register_gradient_mode
class RandomMode(GradientMode):
    name = "random"
    truth_of_start = False

    def step(self) -> ModeStep:
        w = self.world
        if w.step_index == 0 and w.last is None:
            w.unit = w.space.project_unit(w.space.to_unit(w.space.to_vec(w.initial_pose)))
        else:
            w.unit = w.space.project_unit(w.rng.random(w.space.dim))
            for _ in range(100):  # plates that overlap: drawn again (one plate never overlaps)
                if not w.space.overlaps(w.unit):
                    break
                w.unit = w.space.project_unit(w.rng.random(w.space.dim))
        return w.truth(w.unit)
