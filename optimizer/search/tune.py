"""Parallel worlds on Ray Tune: one `Trainable` per world, ASHA successive halving, checkpoints, restore.

Each world is a Tune trial (its own Ray actor process) holding a private scene copy; `step()` runs one
world step and returns the flat form of a `WorldStep` (plus the pruner's `score`); the checkpoint is the
world's `WorldState` as JSON, of fixed size. A world's history is read back from Tune's results.
"""

from __future__ import annotations

import math
import os
import resource
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from optimizer.constants import ENV_FAULT_KILL_WORLD, TUNE_EXPERIMENT, WORLD_STATE_FILE
from optimizer.records import JointPose, WorldState, WorldStep
from optimizer.search.progress import ProgressView

SCORE_KEY = "score"  # what the pruner compares: the best truth so far (optimizer.physics.metrics.score)

if TYPE_CHECKING:
    from optimizer.experiment import Experiment


def _trainable_class():
    from ray import tune

    class WorldTrainable(tune.Trainable):
        """One world. Heavy state (the scene) is loaded once in `setup`."""

        def setup(self, config):
            import numpy as np

            from optimizer.experiment import parse_experiment
            from optimizer.physics import backend
            from optimizer.records import JointPose
            from optimizer.search.world import World

            config = _unwrap(config)
            self.exp = parse_experiment(config["experiment"], "experiment")
            res = self.exp.resources
            threads = max(1, int(round(res.cpu_per_world)))
            device = backend.resolve_device(self.exp.device, gpu_share=res.gpu_per_world)
            self.world = World(self.exp, config["world"], JointPose.model_validate(config["initial_pose"]),
                               baseline_rss=np.array(config["baseline_rss"], float), device=device,
                               threads=threads, start_kind=config.get("start_kind", "uniform"))
            import ray

            self._node_id = ray.get_runtime_context().get_node_id()

        def step(self):
            w = self.world
            fault = os.environ.get(ENV_FAULT_KILL_WORLD)
            if fault:
                wid, at, marker = fault.split(":", 2)
                if int(wid) == w.world_id and w.step_index == int(at) and not os.path.exists(marker):
                    Path(marker).write_text(str(os.getpid()))
                    os.kill(os.getpid(), signal.SIGKILL)
            row = w.step().to_flat()
            row[SCORE_KEY] = w.best.score
            row["restarts"] = w.restarts
            row["pid"] = os.getpid()
            row["node_id"] = self._node_id
            row["device"] = w.rs.device
            row["done"] = w.step_index >= self.exp.search.steps
            row["t_end_unix"] = time.time()
            row["peak_host_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
            return row

        def save_checkpoint(self, checkpoint_dir):
            Path(checkpoint_dir, WORLD_STATE_FILE).write_text(self.world.get_state().to_json(indent=None))
            return None

        def load_checkpoint(self, checkpoint):
            path = checkpoint if isinstance(checkpoint, str) else checkpoint.path
            st = WorldState.model_validate_json(Path(path, WORLD_STATE_FILE).read_text())
            self.world.set_state(st)
            self.world.restarts = st.restarts + 1

    return WorldTrainable


def rungs(steps: int, grace: int, rf: int) -> list[int]:
    out, r = [], grace
    while r < steps:
        out.append(r)
        r *= rf
    return out


def _callback_class(view: ProgressView, steps: int):
    from ray import tune

    class _Progress(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            view.update(int(_unwrap(trial.config)["world"]), result)

        def on_trial_complete(self, iteration, trials, trial, **info):
            last = trial.last_result or {}
            st = "completed" if int(last.get("step", 0)) >= steps else "pruned"
            view.update(int(_unwrap(trial.config)["world"]), status=st, force=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            view.update(int(_unwrap(trial.config)["world"]), status="failed", force=True)

        def on_trial_recover(self, iteration, trials, trial, **info):
            view.update(int(_unwrap(trial.config)["world"]), status="restarting", force=True)

    return _Progress()


def _asha_class():
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class RecordingASHA(ASHAScheduler):
        """ASHA that remembers which worlds it stopped (pruned), so an interrupted world is not mistaken
        for a pruned one (Tune marks both TERMINATED)."""

        pruned: set = set()

        def on_trial_result(self, tune_controller, trial, result):
            action = super().on_trial_result(tune_controller, trial, result)
            if action == TrialScheduler.STOP and int(result.get("step", 0)) < self._max_t:
                RecordingASHA.pruned.add(int(_unwrap(trial.config)["world"]))
            return action

    return RecordingASHA


@dataclass
class Collected:
    """One world as Tune left it: its final state (authoritative), history and status."""

    world: int
    status: str
    config: dict
    state: WorldState | None
    history: list[WorldStep] = field(default_factory=list)
    steps: int = 0
    restarts: int = 0
    error: str | None = None
    peak_host_mb: float | None = None
    device: str | None = None


def run_worlds(exp: Experiment, exp_data: dict, starts, baseline_rss, storage_path: str, storage_filesystem=None,
               resume: bool = False, progress: bool = True, pruned_before=()) -> list[Collected]:
    """Run (or resume) every world as a Tune trial; returns one `Collected` per start."""
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from optimizer.physics.metrics import no_path_as_floor

    s = exp.search
    res = exp.resources
    trainable = tune.with_resources(_trainable_class(), {"cpu": res.cpu_per_world, "gpu": res.gpu_per_world})
    asha = _asha_class()
    asha.pruned = set(int(w) for w in pruned_before)
    if s.prune == "off" or s.steps <= s.prune.grace_steps:  # no rung before the last step: nothing to prune
        scheduler = FIFOScheduler()
    else:
        scheduler = asha(time_attr="training_iteration", max_t=s.steps, grace_period=s.prune.grace_steps,
                         reduction_factor=s.prune.reduction_factor, brackets=1)
    view = ProgressView(s.steps)
    callbacks = [_callback_class(view, s.steps)] if progress else []
    run_config = tune.RunConfig(
        name=TUNE_EXPERIMENT, storage_path=storage_path, storage_filesystem=storage_filesystem,
        stop={"training_iteration": s.steps},
        failure_config=tune.FailureConfig(max_failures=s.max_failures),
        checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=s.checkpoint_every, num_to_keep=2,
                                                 checkpoint_at_end=True),
        callbacks=callbacks, verbose=0)
    exp_path = (storage_path.rstrip("/") + "/" + TUNE_EXPERIMENT)
    if resume:
        tuner = tune.Tuner.restore(exp_path, trainable=trainable, resume_unfinished=True, resume_errored=True,
                                   storage_filesystem=storage_filesystem)
    else:
        base = [float(v) for v in no_path_as_floor(baseline_rss)]
        configs = [{"experiment": exp_data, "world": i, "initial_pose": JointPose.of(p).model_dump(mode="json"),
                    "start_kind": kind, "baseline_rss": base} for i, (p, kind) in enumerate(starts)]
        tuner = tune.Tuner(
            trainable, param_space={"__world__": tune.grid_search(configs)},
            tune_config=tune.TuneConfig(metric=SCORE_KEY, mode="max", scheduler=scheduler,
                                        max_concurrent_trials=s.concurrency,
                                        trial_name_creator=lambda t: f"world-{_unwrap(t.config)['world']:03d}",
                                        trial_dirname_creator=lambda t: f"world-{_unwrap(t.config)['world']:03d}"),
            run_config=run_config)
    grid = tuner.fit()
    if progress:
        view.render()
    return collect(grid, exp, len(starts), asha.pruned)


def _unwrap(config: dict) -> dict:
    return config.get("__world__", config)


def _history(result) -> list[WorldStep]:
    """The world's steps from Tune's results, one per step (a step repeated after a restore: the last)."""
    df = result.metrics_dataframe
    if df is None or len(df) == 0 or "step" not in df.columns:
        return []
    by_step: dict[int, WorldStep] = {}
    for row in df.to_dict(orient="records"):
        try:
            if row.get("step") is None or (isinstance(row["step"], float) and math.isnan(row["step"])):
                continue
            step = WorldStep.from_flat(row)
        except (KeyError, ValueError, TypeError):
            continue
        by_step[step.step] = step
    return [by_step[k] for k in sorted(by_step)]


def collect(grid, exp, n_worlds: int, pruned=()) -> list[Collected]:
    """Per-world outcome from the Tune results: final checkpoint state (authoritative) + status
    (completed | pruned | failed | interrupted). Worlds Tune never created (interrupted early) are
    reported as interrupted."""
    out = []
    for result in grid:
        cfg = _unwrap(result.config or {})
        state = None
        if result.checkpoint is not None:
            try:
                with result.checkpoint.as_directory() as d:
                    state = WorldState.model_validate_json(Path(d, WORLD_STATE_FILE).read_text())
            except Exception:  # noqa: BLE001
                state = None
        last = result.metrics or {}
        steps_done = state.step_index if state is not None else int(last.get("step", 0) or 0)
        world = int(cfg.get("world", last.get("world", -1)))
        if result.error is not None:
            status = "failed"
        elif steps_done >= exp.search.steps:
            status = "completed"
        elif world in pruned:
            status = "pruned"  # stopped by the scheduler before its last step
        else:
            status = "interrupted"
        out.append(Collected(
            world=world, status=status, config=cfg, state=state, history=_history(result), steps=steps_done,
            restarts=state.restarts if state is not None else int(last.get("restarts", 0) or 0),
            error=None if result.error is None else str(result.error).strip().splitlines()[-1][:300],
            peak_host_mb=last.get("peak_host_mb"), device=last.get("device")))
    seen = {o.world for o in out}
    for w in range(n_worlds):
        if w not in seen:
            out.append(Collected(world=w, status="interrupted", config={"world": w}, state=None))
    out = [o for o in out if o.world >= 0]
    out.sort(key=lambda o: o.world)
    return out
