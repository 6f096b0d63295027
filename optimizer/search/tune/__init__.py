"""Parallel worlds on Ray Tune: one `Trainable` per world, ASHA successive halving, checkpoints, restore.

Each world is a Tune trial (its own Ray actor process) holding a private scene copy; `step()` runs one
world step and returns the flat form of a `WorldStep` (plus the pruner's `score`); the checkpoint is the
world's `WorldState` as JSON, of fixed size. A world's history is read back from Tune's results.

A world whose numbers stop making sense (NaN or infinity in its truth or its model: `NumericsError`)
stops at once with that line as its error (a restart would only repeat it). A world whose process dies
is restarted from its last checkpoint (`search.max_failures`); `hooks.Watch` counts those restarts. An
object-store outage longer than the retry budget stops every world and fails the run (`StoreUnreachable`).
Credentials never travel in a trial's runtime environment (Ray logs those): each world's process takes
them from its own AWS chain.
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

from optimizer.constants import (ENV_FAULT_KILL_WORLD, NO_PATH_FLOOR_DBM, TRIAL_DIR_PREFIX, TUNE_EXPERIMENT,
                                 WORLD_STATE_FILE)
from optimizer.errors import NumericsError, StorageError, StoreUnreachable
from optimizer.records import JointPose, WorldState, WorldStep
from optimizer.search.progress import ProgressView

SCORE_KEY = "score"  # what the pruner compares: the best truth so far (optimizer.physics.metrics.score)
ERROR_KEY = "error"  # the result of a world that stopped with a stated error (and is done)
# Ray Tune copies these into every trial's runtime environment, and Ray writes runtime environments into its
# logs (runtime_env_agent.log, the dashboard): they are taken off Tune's list (see run_worlds).
CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN")

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

            from optimizer.search import outage

            outage.to_driver()  # this world's store outages reach the driver's console
            config = _unwrap(config)
            self.exp = parse_experiment(config["experiment"], "experiment")
            self.size_rank = None  # (area rank, distinct areas) of the world's plate sizes under sizes_m
            if config.get("size") is not None:
                from optimizer.experiment import catalogue

                opts, k = catalogue.options(self.exp), int(config["size"])
                self.exp = catalogue.sized(self.exp, opts[k])
                ranks = catalogue.area_ranks(opts)
                self.size_rank = (ranks[k], max(ranks) + 1)
            if config.get("steps"):  # a reused slot runs fewer steps (its schedules fit them)
                self.exp.search.steps = int(config["steps"])
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
            try:
                row = w.step().to_flat()
            except NumericsError as err:  # stated and deterministic: stop the world (a restart repeats it)
                return {ERROR_KEY: str(err), "world": w.world_id, "done": True,
                        SCORE_KEY: self._score() if w.best is not None else NO_PATH_FLOOR_DBM}
            row[SCORE_KEY] = self._score()
            row["pid"] = os.getpid()
            row["node_id"] = self._node_id
            row["device"] = w.rs.device
            row["done"] = w.step_index >= self.exp.search.steps
            row["t_end_unix"] = time.time()
            row["peak_host_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
            return row

        def _score(self) -> float:
            """What the pruner ranks: the best truth's score (under sizes_m: `Objective.sized_score`)."""
            best = self.world.best
            return best.score if self.size_rank is None else self.world.objective.sized_score(best.truth, *self.size_rank)

        def save_checkpoint(self, checkpoint_dir):
            Path(checkpoint_dir, WORLD_STATE_FILE).write_text(self.world.get_state().to_json(indent=None))
            return None

        def load_checkpoint(self, checkpoint):
            path = checkpoint if isinstance(checkpoint, str) else checkpoint.path
            st = WorldState.model_validate_json(Path(path, WORLD_STATE_FILE).read_text())
            self.world.set_state(st)  # a restore is a restart or a resume: hooks.Watch tells them apart

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
            if ERROR_KEY in result:
                view.update(int(_unwrap(trial.config)["world"]), status="failed", force=True)
            else:
                view.update(int(_unwrap(trial.config)["world"]), result)

        def on_trial_complete(self, iteration, trials, trial, **info):
            from optimizer.search.hooks import Merging

            last = trial.last_result or {}
            cfg = _unwrap(trial.config)
            world = int(cfg["world"])
            st = ("completed" if int(last.get("step", 0)) >= int(cfg.get("steps") or steps) else
                  "merged" if world in Merging.merged else "pruned")
            view.update(world, status=st, force=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            view.update(int(_unwrap(trial.config)["world"]), status="failed", force=True)

        def on_trial_recover(self, iteration, trials, trial, **info):
            view.update(int(_unwrap(trial.config)["world"]), status="restarting", force=True)

    return _Progress()


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


def _keep_credentials_out_of_runtime_envs() -> None:
    """Take the AWS credential variables off the list Tune copies into every trial's runtime environment."""
    from ray.tune.execution import class_cache

    names = class_cache.ENV_VARS_TO_PROPAGATE
    if isinstance(names, set):
        names.difference_update(CREDENTIAL_VARS)
    else:
        class_cache.ENV_VARS_TO_PROPAGATE = {n for n in names if n not in CREDENTIAL_VARS}


def run_worlds(exp: Experiment, exp_data: dict, starts, baseline_rss, storage_path: str, storage_filesystem=None,
               resume: bool = False, progress: bool = True, pruned_before=(), restarts_before=None,
               merged_before=None, radio_scene=None) -> list[Collected]:
    """Run (or resume) every world as a Tune trial; returns one `Collected` per world (the starts, then the
    worlds started in freed budget: `hooks.WorldSearcher`). `pruned_before`, `merged_before` ({world: into})
    and `restarts_before` ({world: restarts}) carry what an interrupted run had seen. Raises
    StoreUnreachable (one line) when the store stayed down longer than the retry budget. `radio_scene`: the
    driver's scene, against which reused worlds' starts are checked (a plate that cuts it is no start)."""
    from ray import tune

    from optimizer.experiment import catalogue
    from optimizer.physics.metrics import no_path_as_floor
    from optimizer.search.hooks import (Merging, MergingFIFO, RecordingASHA, Watch, WorldSearcher, WorldStopper,
                                        caused_by_outage, quiet_outage_logs, quiet_restore_advice)

    from optimizer.search import outage

    _keep_credentials_out_of_runtime_envs()
    quiet_outage_logs()
    outage.reset()
    quiet_restore_advice()
    s = exp.search
    res = exp.resources
    trainable = tune.with_resources(_trainable_class(), {"cpu": res.cpu_per_world, "gpu": res.gpu_per_world})
    RecordingASHA.pruned = set(int(w) for w in pruned_before)
    Merging.merged = {int(k): int(v) for k, v in (merged_before or {}).items()}
    Watch.reset(restarts_before)
    WorldSearcher.scene = radio_scene
    tol = [r.tolerance for r in exp.plates()]
    pruning = not (s.prune == "off" or s.steps <= s.prune.grace_steps)  # else no rung before the last step
    if not pruning:
        scheduler = MergingFIFO(tolerance=tol, merge=s.merge)
    else:
        scheduler = RecordingASHA(time_attr="training_iteration", max_t=s.steps, grace_period=s.prune.grace_steps,
                                  reduction_factor=s.prune.reduction_factor, brackets=1, tolerance=tol,
                                  merge=s.merge)
    view = ProgressView(s.steps)
    callbacks = [Watch()] + ([_callback_class(view, s.steps)] if progress else [])
    run_config = tune.RunConfig(
        name=TUNE_EXPERIMENT, storage_path=storage_path, storage_filesystem=storage_filesystem,
        stop=WorldStopper(s.steps),
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
        if catalogue.has_catalogue(exp):  # each world one size option, in turn (optimizer.experiment.catalogue)
            for cfg, k in zip(configs, catalogue.assign(len(configs), len(catalogue.options(exp)))):
                cfg["size"] = k
        searcher = WorldSearcher(configs, reuse=s.reuse if pruning or s.merge else "off", steps=s.steps,
                                 grace_steps=s.prune.grace_steps if pruning else None, seed=s.seed)
        tuner = tune.Tuner(
            trainable, param_space={},
            tune_config=tune.TuneConfig(metric=SCORE_KEY, mode="max", scheduler=scheduler, search_alg=searcher,
                                        num_samples=searcher.max_worlds, max_concurrent_trials=s.concurrency,
                                        trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
            run_config=run_config)
    try:
        grid = tuner.fit()
    except Exception as err:
        if Watch.outage is None and not caused_by_outage(err):
            raise
        raise StoreUnreachable(Watch.outage or _outage_line(err)) from None
    finally:
        outage.poll(force=True)  # what the worlds noted last
    if Watch.outage is not None:
        raise StoreUnreachable(Watch.outage)
    if progress:
        view.render()
    return collect(grid, exp, len(starts), RecordingASHA.pruned, Watch.crashes, Merging.merged)


def _trial_name(trial) -> str:
    """A world's Tune trial name and folder: world-NNN."""
    return f"{TRIAL_DIR_PREFIX}{_unwrap(trial.config)['world']:03d}"


def _outage_line(err: BaseException) -> str:
    from optimizer.search.hooks import last_error_line

    return last_error_line(str(err)).split(f"{StoreUnreachable.__name__}: ", 1)[-1]


def _error_line(err) -> str:
    from optimizer.search.hooks import last_error_line

    return last_error_line(str(err))


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


def collect(grid, exp, n_worlds: int, pruned=(), restarts=None, merged=None) -> list[Collected]:
    """Per-world outcome from the Tune results: final checkpoint state (authoritative) + status
    (completed | pruned | failed | interrupted). Worlds Tune never created (interrupted early) are
    reported as interrupted; a world whose final checkpoint cannot be read is failed with that error
    (never silently dropped); a world that stopped with a stated error (`ERROR_KEY`) is failed with it.
    `restarts`: {world: times its process died} (hooks.Watch)."""
    restarts = restarts or {}
    merged = merged or {}
    out = []
    for result in grid:
        cfg = _unwrap(result.config or {})
        state, unreadable = None, None
        if result.checkpoint is not None:
            try:
                state = _final_state(result.checkpoint)
            except ValueError as err:
                unreadable = str(err)
        last = result.metrics or {}
        steps_done = state.step_index if state is not None else int(last.get("step", 0) or 0)
        world = int(cfg.get("world", last.get("world", -1)))
        stated = last.get(ERROR_KEY)
        if result.error is not None or unreadable or stated:
            status = "failed"
        elif steps_done >= int(cfg.get("steps") or exp.search.steps):
            status = "completed"
        elif world in merged:
            status = "merged"  # stopped as a duplicate of a better world
        elif world in pruned:
            status = "pruned"  # stopped by the scheduler before its last step
        else:
            status = "interrupted"
        error = stated or unreadable or (None if result.error is None else _error_line(result.error))
        out.append(Collected(
            world=world, status=status, config=cfg, state=state, history=_history(result), steps=steps_done,
            restarts=int(restarts.get(world, 0)), error=error, peak_host_mb=last.get("peak_host_mb"),
            device=last.get("device"), merged_into=merged.get(world)))
    seen = {o.world for o in out}
    for w in range(n_worlds):
        if w not in seen:
            out.append(Collected(world=w, status="interrupted", config={"world": w}, state=None))
    out = [o for o in out if o.world >= 0]
    out.sort(key=lambda o: o.world)
    return out
