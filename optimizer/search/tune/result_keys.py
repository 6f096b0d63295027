"""The keys of a world's Tune result beside the flat `WorldStep` (`optimizer.records.WorldStep.to_flat`), and
of its trial config. Ray's own keys (`done`, `training_iteration`) are Ray's constants, imported from
`ray.tune.result` where they are used (never retyped; this module stays free of Ray's import time)."""

from __future__ import annotations

SCORE_KEY = "score"  # what the pruner compares: the best truth so far (optimizer.physics.metrics.score)
ERROR_KEY = "error"  # the result of a world that stopped with a stated error (and is done)
WORLD_KEY = "world"  # the world's number (also in its trial config)
STEP_KEY = "step"  # the world's step count (`WorldStep.step`)
TRIAL_WRAP_KEY = "__world__"  # the searcher's suggestion wraps the world's trial config under this key


def unwrap(config: dict | None) -> dict:
    """A world's trial config from Tune's (the searcher's suggestion wraps it)."""
    config = config or {}
    return config.get(TRIAL_WRAP_KEY, config)


def world_of(trial) -> int:
    return int(unwrap(trial.config)[WORLD_KEY])


def size_of(trial):
    """The world's size option under sizes_m (None without a catalogue)."""
    return unwrap(trial.config).get("size")


def step_of(result: dict):
    """The typed step (`WorldStep`) of a world's result (None for a result that is not one, e.g. a stated
    error)."""
    from optimizer.records import WorldStep

    try:
        return WorldStep.from_flat(result) if result and result.get(STEP_KEY) is not None else None
    except (KeyError, ValueError, TypeError):
        return None
