"""The worlds as Tune left them (`collect`): each world's final state from its last checkpoint (authoritative),
its history from Tune's results, and its status (`status.world_status`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from optimizer.constants import WORLD_STATE_FILE
from optimizer.errors import StorageError
from optimizer.records import WorldState, WorldStep
from optimizer.search.tune.result_keys import ERROR_KEY, STEP_KEY, WORLD_KEY, unwrap
from optimizer.search.tune.status import last_error_line, world_status


@dataclass
class Collected:
    """One world as Tune left it: its final state (authoritative), history and status."""

    world: int
    status: str
    config: dict
    state: WorldState | None
    history: list[WorldStep] = field(default_factory=list)
    steps: int = 0
    restarts: int = 0  # times its process died and Tune restarted it (not a Ctrl-C and resume)
    error: str | None = None
    peak_host_mb: float | None = None
    device: str | None = None
    merged_into: int | None = None


def _history(result) -> list[WorldStep]:
    """The world's steps from Tune's results, one per step (a step repeated after a restore: the last)."""
    df = result.metrics_dataframe
    if df is None or len(df) == 0 or STEP_KEY not in df.columns:
        return []
    by_step: dict[int, WorldStep] = {}
    for row in df.to_dict(orient="records"):
        try:
            if row.get(STEP_KEY) is None or (isinstance(row[STEP_KEY], float) and math.isnan(row[STEP_KEY])):
                continue
            step = WorldStep.from_flat(row)
        except (KeyError, ValueError, TypeError):
            continue
        by_step[step.step] = step
    return [by_step[k] for k in sorted(by_step)]


def _final_state(checkpoint) -> WorldState:
    """A world's state from its final checkpoint. A store that does not answer is the run's failure
    (StoreUnreachable, resumable); a checkpoint that cannot be read is the world's (ValueError)."""
    try:
        with checkpoint.as_directory() as d:
            return WorldState.model_validate_json(Path(d, WORLD_STATE_FILE).read_text())
    except StorageError:
        raise  # the store's trouble, not the world's: the run fails (resumable)
    except OSError as err:
        raise ValueError(f"its final checkpoint cannot be read ({err.strerror or err})") from None
    except ValueError as err:  # pydantic's ValidationError and bad JSON are ValueErrors
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"its final checkpoint is not a world state ({first[:200]})") from None


def collect(grid, steps: int, n_worlds: int, pruned=(), restarts=None, merged=None) -> list[Collected]:
    """Per-world outcome from the Tune results: final checkpoint state (authoritative) + status
    (completed | pruned | failed | interrupted). Worlds Tune never created (interrupted early) are
    reported as interrupted; a world whose final checkpoint cannot be read is failed with that error
    (never silently dropped); a world that stopped with a stated error (`ERROR_KEY`) is failed with it.
    `steps`: a world's planned steps (a reused world's own are in its config); `restarts`: {world: times its
    process died} (`callbacks.Watch`)."""
    restarts = restarts or {}
    merged = merged or {}
    out = []
    for result in grid:
        cfg = unwrap(result.config)
        state, unreadable = None, None
        if result.checkpoint is not None:
            try:
                state = _final_state(result.checkpoint)
            except ValueError as err:
                unreadable = str(err)
        last = result.metrics or {}
        steps_done = state.step_index if state is not None else int(last.get(STEP_KEY, 0) or 0)
        world = int(cfg.get("world", last.get(WORLD_KEY, -1)))
        stated = last.get(ERROR_KEY)
        status = world_status(world, steps_done, int(cfg.get("steps") or steps), merged=merged, pruned=pruned,
                              failed=result.error is not None or bool(unreadable) or bool(stated))
        error = stated or unreadable or (None if result.error is None else last_error_line(str(result.error)))
        out.append(Collected(
            world=world, status=status, config=cfg, state=state, history=_history(result), steps=steps_done,
            restarts=int(restarts.get(world, 0)), error=error, peak_host_mb=last.get("peak_host_mb"),
            device=last.get("device"), merged_into=merged.get(world)))
    seen = {o.world for o in out}
    for w in range(n_worlds):
        if w not in seen:
            out.append(Collected(world=w, status="interrupted", config={WORLD_KEY: w}, state=None))
    out = [o for o in out if o.world >= 0]
    out.sort(key=lambda o: o.world)
    return out
