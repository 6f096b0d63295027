"""What Ray Tune calls back into during a run, beside the worlds themselves (`optimizer.search.tune`).

These classes live at module level so that Tune's pickled run state refers to them by name: a resumed run
(`Tuner.restore` brings back the callbacks, scheduler and stopper of the first run) uses the classes of
the resuming process, and their class-level state is the state `run_worlds` reads.

- `RecordingASHA`: ASHA that remembers which worlds it stopped (pruned).
- `Watch`: counts each world's crashes (its process died and Tune restarted it: a Ctrl-C and `resume` is
  no crash) and notices an object-store outage (`StoreUnreachable` in a world). An outage ends Tune's loop
  the way Ctrl-C does (Tune's own SIGUSR1 handler), so every world stays resumable; `run_worlds` then
  fails the run with one line.
- `WorldStopper`: a world is done after its last step.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from optimizer.errors import StoreUnreachable


def world_of(trial) -> int:
    config = trial.config or {}
    return int(config.get("__world__", config)["world"])


class RecordingASHA(ASHAScheduler):
    """ASHA that remembers which worlds it stopped (pruned), so an interrupted world is not mistaken for a
    pruned one (Tune marks both TERMINATED)."""

    pruned: set = set()

    def on_trial_result(self, tune_controller, trial, result):
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and int(result.get("step", 0)) < self._max_t:
            RecordingASHA.pruned.add(world_of(trial))
        return action


def _error_text(trial) -> str:
    path = trial.error_file
    try:
        return Path(path).read_text(errors="replace") if path else ""
    except OSError:
        return ""


def last_error_line(text: str) -> str:
    """The line of an error text that says what went wrong (its last non-empty line), at most 300 chars."""
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "")[:300]


class Watch(tune.Callback):
    """Always on. `crashes[world]`: restarts of a world whose process died; `outage`: the first store
    outage a world reported (None: none). Reset by `run_worlds` for each run or resume."""

    crashes: dict = {}
    outage: str | None = None
    stop_everything = False  # when Tune's interrupt handler is not there to end the loop

    @classmethod
    def reset(cls, crashes_before: dict | None = None) -> None:
        cls.crashes = {int(k): int(v) for k, v in (crashes_before or {}).items()}
        cls.outage = None
        cls.stop_everything = False

    @staticmethod
    def _interrupt() -> None:
        """End Tune's loop as Ctrl-C does (the worlds stay resumable); failing that, stop every world."""
        handler = signal.getsignal(signal.SIGUSR1) if hasattr(signal, "SIGUSR1") else None
        if callable(handler) and getattr(handler, "__name__", "") == "signal_interrupt_tune_run":
            os.kill(os.getpid(), signal.SIGUSR1)
        else:
            Watch.stop_everything = True

    def _failed(self, trial, restarting: bool) -> None:
        text = _error_text(trial)
        line = last_error_line(text)
        if StoreUnreachable.__name__ in text:
            if Watch.outage is None:
                Watch.outage = line.split(f"{StoreUnreachable.__name__}: ", 1)[-1]
                self._interrupt()
            return
        world = world_of(trial)
        if restarting:
            Watch.crashes[world] = Watch.crashes.get(world, 0) + 1
        what = "restarting from its last checkpoint" if restarting else "failed (no restarts left)"
        sys.stderr.write(f"[reflectopt] world {world}: {line or 'its process died'}; {what}\n")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._failed(trial, restarting=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._failed(trial, restarting=False)


def caused_by_outage(err: BaseException | None) -> bool:
    """Whether `err` (or what caused it, or the text of a remote error) is a store outage."""
    seen = 0
    while err is not None and seen < 20:
        if isinstance(err, StoreUnreachable) or StoreUnreachable.__name__ in str(err):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


class _OutageLogFilter(logging.Filter):
    """Drops Ray's records of a store outage (tracebacks of failed syncs, saves, unawaited results) and,
    once a world reported one, what Tune says while it stops: the run reports the outage in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if Watch.outage is not None and record.name.startswith("ray"):
            return False
        exc = record.exc_info[1] if record.exc_info else None
        return not (caused_by_outage(exc) or StoreUnreachable.__name__ in record.getMessage())


def quiet_outage_logs() -> None:
    """Put the outage filter on the handlers of Ray's logger in this (the driver's) process, once."""
    logger = logging.getLogger("ray")
    for handler in logger.handlers or logging.getLogger().handlers:
        if not any(isinstance(f, _OutageLogFilter) for f in handler.filters):
            handler.addFilter(_OutageLogFilter())


class WorldStopper(tune.Stopper):
    """A world stops after `steps` steps (Tune's own iteration count, which survives a restore)."""

    def __init__(self, steps: int):
        self.steps = int(steps)

    def __call__(self, trial_id, result) -> bool:
        return int(result.get("training_iteration", 0)) >= self.steps

    def stop_all(self) -> bool:
        return Watch.stop_everything
