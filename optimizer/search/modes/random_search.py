"""`random` (comparison): truth at uniform random poses in the box; the first step takes the start.
Rejected draws (plates that overlap or cut the scene) are drawn again."""

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
            draws = [w.space.project_unit(w.rng.random(w.space.dim)) for _ in range(100)]
            ok = [u for u, why in zip(draws, w.space.rejections(draws)) if why is None]  # overlap, scene cut
            if ok:  # else the world stays where it is (never at a rejected pose)
                w.unit = ok[0]
        return w.truth(w.unit)
