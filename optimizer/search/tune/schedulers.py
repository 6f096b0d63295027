"""What Ray Tune calls back into during a run, beside the worlds themselves (`optimizer.search.tune`).

These classes live at module level so that Tune's pickled run state refers to them by name: a resumed run
(`Tuner.restore` brings back the callbacks, scheduler and stopper of the first run) uses the classes of
the resuming process, and their class-level state is the state `run_worlds` reads.

- `WorldSearcher`: hands Tune its worlds: the starts, then new worlds in the budget pruned or merged ones
  freed (`search.reuse`, rules in `optimizer.search.reuse`).
- `RecordingASHA` / `MergingFIFO`: the schedulers (successive halving / none). Both stop the worse of two
  worlds whose poses come within the mounting tolerance (`search.merge`); ASHA also remembers which worlds
  it pruned.
- `Watch`: counts each world's crashes (its process died and Tune restarted it: a Ctrl-C and `resume` is
  no crash) and notices an object-store outage (`StoreUnreachable` in a world). An outage ends Tune's loop
  the way Ctrl-C does (Tune's own SIGUSR1 handler), so every world stays resumable; `run_worlds` then
  fails the run with one line. It also puts the worlds' outage notes on the console (`optimizer.search.outage`).
- `WorldStopper`: a world is done after its last step.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import json

import numpy as np
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from optimizer.console import say
from optimizer.errors import StoreUnreachable
from optimizer.records import JointPose, WorldStep


def world_of(trial) -> int:
    config = trial.config or {}
    return int(config.get("__world__", config)["world"])


def size_of(trial):
    """The world's size option under sizes_m (None without a catalogue)."""
    config = trial.config or {}
    return config.get("__world__", config).get("size")


def _step_of(result: dict) -> WorldStep | None:
    """The typed step of a world's result (None for a result that is not one, e.g. a stated error)."""
    try:
        return WorldStep.from_flat(result) if result and result.get("step") is not None else None
    except (KeyError, ValueError, TypeError):
        return None


class Merging:
    """The merge rule of both schedulers: when a world's pose comes within the mounting tolerance of another
    running world's (`reuse.same_mount`) with the same plate sizes, the one with the lower best score stops
    (a tie: the higher world number); the other goes on. `merged[world] = into` (class level: what
    `run_worlds` reads)."""

    merged: dict = {}

    def _merge_init(self, tolerance, enabled: bool):
        self._tol = tolerance
        self._merge_on = bool(enabled)
        self._poses: dict[int, tuple[JointPose, float, object]] = {}
        self._doomed: dict[int, int] = {}

    def _merges(self, trial, result) -> bool:
        """Whether this result stops its world as a duplicate."""
        from optimizer.search.reuse import same_mount

        world = world_of(trial)
        last = bool(result.get("done"))
        if world in self._doomed:
            into = self._doomed.pop(world)
            if not last:
                Merging.merged[world] = into
                self._poses.pop(world, None)
                return True
        step = _step_of(result)
        if not self._merge_on or step is None or last:
            return False
        mine, size = (step.best_score, -world), size_of(trial)
        for other, (pose, other_score, other_size) in list(self._poses.items()):
            if other == world or other in self._doomed or other_size != size or \
                    not same_mount(step.pose, pose, self._tol):
                continue
            if (other_score, -other) > mine:
                Merging.merged[world] = other
                self._poses.pop(world, None)
                return True
            self._doomed[other] = world
        self._poses[world] = (step.pose, step.best_score, size)
        return False

    def _forget(self, trial):
        self._poses.pop(world_of(trial), None)


class RecordingASHA(ASHAScheduler, Merging):
    """ASHA that remembers which worlds it stopped (pruned), so an interrupted world is not mistaken for a
    pruned one (Tune marks both TERMINATED), and stops duplicates first (`Merging`)."""

    pruned: set = set()

    def __init__(self, *args, tolerance=None, merge: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._merge_init(tolerance, merge)

    def on_trial_result(self, tune_controller, trial, result):
        if self._merges(trial, result):
            return TrialScheduler.STOP
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and not result.get("done"):
            RecordingASHA.pruned.add(world_of(trial))
            self._forget(trial)
        return action

    def on_trial_complete(self, tune_controller, trial, result):
        self._forget(trial)
        super().on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial):
        self._forget(trial)
        super().on_trial_remove(tune_controller, trial)


class MergingFIFO(FIFOScheduler, Merging):
    """No pruning (`search.prune: off`); duplicates still stop (`Merging`)."""

    def __init__(self, tolerance=None, merge: bool = False):
        super().__init__()
        self._merge_init(tolerance, merge)

    def on_trial_result(self, tune_controller, trial, result):
        return TrialScheduler.STOP if self._merges(trial, result) else TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller, trial, result):
        self._forget(trial)

    def on_trial_remove(self, tune_controller, trial):
        self._forget(trial)


class WorldSearcher(Searcher):
    """Tune's source of worlds. First the starting worlds, in order; then, under `search.reuse`, a new
    world whenever the budget (`worlds x steps` world-steps) has room for a reused one
    (`reuse.reuse_steps`): the steps a finished world did not do (pruned, merged, failed) are free again.
    None (wait) while running worlds may still free some; FINISHED when none can. Its state (a JSON file
    beside Tune's experiment state) makes a resumed run continue the same plan."""

    scene = None  # the driver's RadioScene (class level: never pickled with Tune's state), set by run_worlds

    def __init__(self, configs: list[dict], reuse: str, steps: int, grace_steps: int | None, seed: int):
        super().__init__()
        from optimizer.search.reuse import reuse_steps

        self.configs = configs
        self.reuse = reuse
        self.budget = len(configs) * int(steps)
        self.reuse_len = reuse_steps(int(steps), grace_steps)
        self.seed = int(seed)
        self.st = {"next": 0, "trials": {}, "planned": {}, "done": {}, "live": [], "best": {}, "visited": [],
                   "current": {}, "reused": [], "size": {}}

    @property
    def max_worlds(self) -> int:
        return len(self.configs) + (0 if self.reuse == "off" else self.budget // max(1, self.reuse_len) + 1)

    # --- Tune's calls ------------------------------------------------------------------------------------------
    def suggest(self, trial_id: str):
        st = self.st
        if st["next"] < len(self.configs):
            cfg = dict(self.configs[st["next"]])
            st["next"] += 1
        else:
            cfg = self._reused()
            if cfg is None:
                return Searcher.FINISHED if not st["live"] or self.reuse == "off" else None
        w = int(cfg["world"])
        st["trials"][trial_id] = w
        st["planned"][str(w)] = int(cfg.get("steps") or self.budget // len(self.configs))
        st.setdefault("size", {})[str(w)] = cfg.get("size")
        st["live"].append(w)
        return {"__world__": cfg}

    def on_trial_result(self, trial_id: str, result: dict):
        w = self.st["trials"].get(trial_id)
        step = _step_of(result)
        if w is None or step is None:
            return
        self.st["done"][str(w)] = int(step.step)
        # the pruner's score (under sizes_m it ranks covering small plates first), else the world's own
        best = float(result.get("score", step.best_score))
        self.st["best"][str(w)] = [best, step.best_pose.model_dump(mode="json")]
        self.st["current"][str(w)] = step.pose.model_dump(mode="json")
        self.st["visited"].append(step.pose.model_dump(mode="json"))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        w = self.st["trials"].get(trial_id)
        if w is None:
            return
        if w in self.st["live"]:
            self.st["live"].remove(w)
        self.st["current"].pop(str(w), None)
        if result:
            self.on_trial_result(trial_id, result)
            self.st["current"].pop(str(w), None)

    # --- the plan ----------------------------------------------------------------------------------------------
    def _committed(self) -> int:
        st = self.st
        return sum(st["planned"][str(w)] if w in st["live"] else st["done"].get(str(w), 0)
                   for w in st["trials"].values())

    def _reused(self) -> dict | None:
        from optimizer.experiment import catalogue, parse_experiment
        from optimizer.search import reuse
        from optimizer.search.space import PoseSpace

        st = self.st
        if self.reuse == "off" or self.budget - self._committed() < self.reuse_len:
            return None
        finished = [w for w in st["trials"].values() if w not in st["live"]]
        freed = [w for w in finished if st["done"].get(str(w), 0) < st["planned"][str(w)]]
        used = {r["freed_by"] for r in st["reused"]}
        freed_by = next((w for w in freed if w not in used), freed[-1] if freed else None)
        if freed_by is None:
            return None
        base = self.configs[0]
        exp = parse_experiment(base["experiment"], "experiment")
        space, tol = PoseSpace.of(exp, WorldSearcher.scene), reuse.tolerances(exp)  # (rejects scene cuts)
        n = len(st["reused"])
        world = len(self.configs) + n
        rng = np.random.default_rng([self.seed, 9, n])
        kind = reuse.kind_for(self.reuse, n)
        ranked = sorted(((v[0], -int(k), int(k)) for k, v in st["best"].items()), reverse=True)
        parent, scale = None, None
        if kind == "exploit" and ranked:
            n_exploit = sum(r["kind"] == "exploit" for r in st["reused"])  # exploit slots cycle over the best
            parent = ranked[n_exploit % min(reuse.EXPLOIT_PARENTS, len(ranked))][2]
            avoid = [JointPose.model_validate(p) for p in st["current"].values()]
            pose, scale = reuse.exploit_start(space, tol, JointPose.model_validate(st["best"][str(parent)][1]), avoid,
                                              rng)
        else:
            kind = "explore"
            visited = [space.to_unit(space.to_vec(JointPose.model_validate(p))) for p in st["visited"]]
            pose = reuse.explore_start(space, np.array(visited), rng)
            if pose is None:  # every candidate rejected (overlap, scene cut): no reused world
                return None
        st["reused"].append({"world": world, "kind": kind, "parent": parent, "freed_by": freed_by,
                             "start_pose": pose.model_dump(mode="json"), "steps": self.reuse_len, "scale": scale})
        cfg = dict(base, world=world, initial_pose=pose.model_dump(mode="json"), start_kind=kind,
                   steps=self.reuse_len, parent=parent, freed_by=freed_by, scale=scale)
        if base.get("size") is not None:  # sizes_m: exploit keeps its parent's sizes, explore the least tried
            sizes = st.get("size", {})
            if parent is not None:
                cfg["size"] = sizes.get(str(parent))
            else:
                tried = [v for v in sizes.values() if v is not None]
                n_opts = len(catalogue.options(exp))
                cfg["size"] = min(range(n_opts), key=lambda k: (tried.count(k), k))
        return cfg

    # --- state (resume) ----------------------------------------------------------------------------------------
    def get_state(self) -> dict:
        return self.st

    def set_state(self, state: dict):
        self.st = state

    def save(self, checkpoint_path: str):
        with open(checkpoint_path, "w") as f:
            json.dump(self.st, f)

    def restore(self, checkpoint_path: str):
        with open(checkpoint_path) as f:
            self.st = json.load(f)


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


class _RestoreAdviceFilter(logging.Filter):
    """Drops Tune's "Resume experiment with: Tuner.restore(...)" after an interrupt: reflectopt says its own
    (`reflectopt resume RUN`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tuner.restore(" not in record.getMessage()


def quiet_restore_advice() -> None:
    """Put `_RestoreAdviceFilter` on Tune's run logger (where the advice is logged), once."""
    logger = logging.getLogger("ray.tune.tune")
    if not any(isinstance(f, _RestoreAdviceFilter) for f in logger.filters):
        logger.addFilter(_RestoreAdviceFilter())


class WorldStopper(tune.Stopper):
    """A world stops after `steps` steps (Tune's own iteration count, which survives a restore)."""

    def __init__(self, steps: int):
        self.steps = int(steps)

    def __call__(self, trial_id, result) -> bool:
        return int(result.get("training_iteration", 0)) >= self.steps

    def stop_all(self) -> bool:
        return Watch.stop_everything
