"""Tune's callbacks for the worlds (`optimizer.search.tune`), and the driver's filters on Ray's logs.

- `Watch`: counts each world's crashes (its process died and Tune restarted it: a Ctrl-C and `resume` is
  no crash) and notices an object-store outage (`StoreUnreachable` in a world). An outage ends Tune's loop
  the way Ctrl-C does (Tune's own SIGUSR1 handler), so every world stays resumable; `run_worlds` then
  fails the run with one line. It also puts the worlds' outage notes on the console (`optimizer.search.outage`).
- `Progress`: the live table.

Both note into the run's `RunState` (`optimizer.search.tune.state`), given to their constructors.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from ray import tune

from optimizer.console import say
from optimizer.errors import StoreUnreachable
from optimizer.search.progress import ProgressView
from optimizer.search.tune.result_keys import ERROR_KEY, STEP_KEY, unwrap, world_of
from optimizer.search.tune.state import RunState
from optimizer.search.tune.status import last_error_line, world_status


def _error_text(trial) -> str:
    path = trial.error_file
    try:
        return Path(path).read_text(errors="replace") if path else ""
    except OSError:
        return ""


class Watch(tune.Callback):
    """Always on. Notes in the run's `RunState`: `crashes[world]`, restarts of a world whose process died;
    `outage`, the first store outage a world reported."""

    def __init__(self, state: RunState | None = None):
        self.state = state if state is not None else RunState()

    def attach(self, state: RunState, scene=None) -> None:
        self.state = state

    def _interrupt(self) -> None:
        """End Tune's loop as Ctrl-C does (the worlds stay resumable); failing that, stop every world."""
        handler = signal.getsignal(signal.SIGUSR1) if hasattr(signal, "SIGUSR1") else None
        if callable(handler) and getattr(handler, "__name__", "") == "signal_interrupt_tune_run":
            os.kill(os.getpid(), signal.SIGUSR1)
        else:
            self.state.stop_everything = True

    def _failed(self, trial, restarting: bool) -> None:
        text = _error_text(trial)
        line = last_error_line(text)
        if StoreUnreachable.__name__ in text:
            if self.state.outage is None:
                self.state.outage = line.split(f"{StoreUnreachable.__name__}: ", 1)[-1]
                self._interrupt()
            return
        world = world_of(trial)
        if restarting:
            self.state.crashes[world] = self.state.crashes.get(world, 0) + 1
        what = "restarting from its last checkpoint" if restarting else "failed (no restarts left)"
        say(f"world {world}: {line or 'its process died'}; {what}")

    def on_step_begin(self, iteration, trials, **info):
        from optimizer.search import outage

        outage.poll()  # the worlds' store outage notes, on the console

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
    once a world reported one (`state.outage`), what Tune says while it stops: the run reports the outage in
    one line."""

    def __init__(self, state: RunState):
        super().__init__()
        self.state = state

    def filter(self, record: logging.LogRecord) -> bool:
        if self.state.outage is not None and record.name.startswith("ray"):
            return False
        exc = record.exc_info[1] if record.exc_info else None
        return not (caused_by_outage(exc) or StoreUnreachable.__name__ in record.getMessage())


def quiet_outage_logs(state: RunState) -> None:
    """Put the outage filter on the handlers of Ray's logger in this (the driver's) process, once; it reads
    this run's `state`."""
    logger = logging.getLogger("ray")
    for handler in logger.handlers or logging.getLogger().handlers:
        mine = [f for f in handler.filters if isinstance(f, _OutageLogFilter)]
        if mine:
            mine[0].state = state
        else:
            handler.addFilter(_OutageLogFilter(state))


class _RestoreAdviceFilter(logging.Filter):
    """Drops Tune's "Resume experiment with: Tuner.restore(...)" after an interrupt: reflectopt says its own
    (`reflectopt resume RUN`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tuner.restore(" not in record.getMessage()


class _UnreportedWorldFilter(logging.Filter):
    """Drops Tune's "Failed to fetch metrics for N trial(s)" where every listed trial simply has no result file
    yet (a world interrupted before its first step: `collect` counts it unfinished, `resume` runs it); any
    other failure to read a world's metrics is still logged."""

    NOT_YET = "both result.json and progress.csv were not found"

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if not msg.startswith("Failed to fetch metrics"):
            return True
        listed = [ln for ln in msg.splitlines()[1:] if ln.startswith("- ")]
        return not listed or not all(self.NOT_YET in ln for ln in listed)


def quiet_restore_advice() -> None:
    """Put `_RestoreAdviceFilter` on Tune's run logger (where the advice is logged) and `_UnreportedWorldFilter`
    on its results' logger, once each."""
    for name, kind in (("ray.tune.tune", _RestoreAdviceFilter),
                       ("ray.tune.analysis.experiment_analysis", _UnreportedWorldFilter)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())


class Progress(tune.Callback):
    """The live table (`optimizer.search.progress.ProgressView`): each world's last result and its status."""

    def __init__(self, view: ProgressView, steps: int, state: RunState | None = None):
        self.view, self.steps = view, int(steps)
        self.state = state if state is not None else RunState()

    def attach(self, state: RunState, scene=None) -> None:
        self.state = state

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if ERROR_KEY in result:
            self.view.update(world_of(trial), status="failed", force=True)
        else:
            self.view.update(world_of(trial), result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = trial.last_result or {}
        cfg = unwrap(trial.config)
        world = world_of(trial)
        status = world_status(world, int(last.get(STEP_KEY, 0) or 0), int(cfg.get("steps") or self.steps),
                              merged=self.state.merged, pruned=None)
        self.view.update(world, status=status, force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.view.update(world_of(trial), status="failed", force=True)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.view.update(world_of(trial), status="restarting", force=True)
