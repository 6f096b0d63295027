"""Compass search bookkeeping, shared by a world's two truth polishes (`World.polish` on the pose's own
truth, `optimizer.search.robust` on the worst case over its tolerance box): the directions are + then -
along each free axis in turn, and a full cycle of directions without a move halves the step."""

from __future__ import annotations

import numpy as np


def direction(free: np.ndarray, k: int) -> tuple[int, float]:
    """The axis and sign of direction `k` (0 .. 2 * len(free) - 1) over the free axes `free`."""
    return int(free[(k // 2) % free.size]), (1.0 if k % 2 == 0 else -1.0)


def failed(free: np.ndarray, k: int, fails: int, delta: float) -> tuple[int, int, float]:
    """After a direction without a move: the next direction, the failures in a row, and the step (halved,
    with the count reset, once every direction has failed)."""
    k, fails = (k + 1) % (2 * free.size), fails + 1
    if fails >= 2 * free.size:
        return k, 0, 0.5 * delta
    return k, fails, delta
