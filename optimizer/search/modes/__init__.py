"""Gradient modes: how a world moves its pose between truth checks. A registry, like Sionna's
`register_antenna_pattern`: a mode is a class with `step() -> ModeStep`; `World.step` keeps only the loop.

Built in: `surrogate` (the differentiable plate model; the default), `sionna` (Sionna's own autodiff, for
comparison), `spsa` (two truth evaluations per step) and `random` (truth at uniform poses). The
experiment's `search.gradient` accepts every registered name.

    from optimizer.search.modes import GradientMode, register_gradient_mode

    @register_gradient_mode
    class MyMode(GradientMode):
        name = "mine"
        def step(self): ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from optimizer.records import JointPose, RssStats
from optimizer.registry import GRADIENT_MODES


@dataclass
class ModeStep:
    """What a mode's step found: the truth it evaluated last (reported as the step's truth)."""

    pose: JointPose
    rss: np.ndarray  # [targets] dBm, -inf where no path
    stats: RssStats
    objective_dbm: float
    surrogate_dbm: float | None = None


class GradientMode:
    """Base class. `world` (an `optimizer.search.world.World`) gives the pose on the unit cube, Adam, truth
    evaluation and the RNG."""

    name: ClassVar[str] = ""
    #: whether the world evaluates the truth of its starting pose before the first step
    truth_of_start: ClassVar[bool] = True

    def __init__(self, world: Any):
        self.world = world

    def step(self) -> ModeStep:  # pragma: no cover - abstract
        raise NotImplementedError

    def state(self) -> dict:
        """The mode's own checkpoint state (JSON-able)."""
        return {}

    def load_state(self, state: dict) -> None:
        pass


def register_gradient_mode(cls: type[GradientMode]) -> type[GradientMode]:
    """Class decorator: make `cls` a value of `search.gradient` under `cls.name`."""
    if not cls.name:
        raise ValueError(f"{cls.__name__}: a gradient mode needs a `name`")
    return GRADIENT_MODES.register(cls.name, cls)


def gradient_modes() -> list[str]:
    """The registered mode names (the allowed values of `search.gradient`)."""
    return GRADIENT_MODES.names()


def make_mode(name: str, world: Any) -> GradientMode:
    return GRADIENT_MODES.get(name)(world)
