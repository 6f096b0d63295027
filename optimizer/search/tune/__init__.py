"""Parallel worlds on Ray Tune: one trial per world, ASHA successive halving, checkpoints, restore.

The glue by role: `trainable` (a world as a Tune trial), `searcher` (which worlds run), `schedulers` (pruning,
merging, stopping), `callbacks` (crashes, outages, the live table), `state` (what a run notes, through the
constructors), `result_keys`, `status` (a world's status) and `collect` (the worlds as Tune left them).
Each world is a Tune trial (its own Ray actor process) holding a private scene copy; its trial config is
the run's `RunSpec` (`optimizer.spec`). A world whose process dies is restarted from its last checkpoint
(`search.max_failures`); `callbacks.Watch` counts those restarts. An object-store outage longer than the
retry budget stops every world and fails the run (`StoreUnreachable`). Credentials never travel in a
trial's runtime environment (Ray logs those): each world's process takes them from its own AWS chain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optimizer.constants import TRIAL_DIR_PREFIX, TUNE_EXPERIMENT
from optimizer.errors import StoreUnreachable
from optimizer.search.progress import ProgressView
from optimizer.search.tune.status import last_error_line
from optimizer.search.tune.collect import Collected, collect
from optimizer.search.tune.result_keys import ERROR_KEY, SCORE_KEY, unwrap
from optimizer.search.tune.trainable import trainable_class

# Ray Tune copies these into every trial's runtime environment, and Ray writes runtime environments into its
# logs (runtime_env_agent.log, the dashboard): they are taken off Tune's list (see run_worlds).
CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN")

__all__ = ["CREDENTIAL_VARS", "Collected", "ERROR_KEY", "SCORE_KEY", "collect", "rungs", "run_worlds"]

if TYPE_CHECKING:
    from optimizer.spec import RunSpec


def rungs(steps: int, grace: int, rf: int) -> list[int]:
    out, r = [], grace
    while r < steps:
        out.append(r)
        r *= rf
    return out


def _keep_credentials_out_of_runtime_envs() -> None:
    """Take the AWS credential variables off the list Tune copies into every trial's runtime environment."""
    from ray.tune.execution import class_cache

    names = class_cache.ENV_VARS_TO_PROPAGATE
    if isinstance(names, set):
        names.difference_update(CREDENTIAL_VARS)
    else:
        class_cache.ENV_VARS_TO_PROPAGATE = {n for n in names if n not in CREDENTIAL_VARS}


def run_worlds(spec: RunSpec, starts, baseline_rss, storage_path: str, storage_filesystem=None,
               resume: bool = False, progress: bool = True, pruned_before=(), restarts_before=None,
               merged_before=None, radio_scene=None) -> list[Collected]:
    """Run (or resume) every world as a Tune trial; returns one `Collected` per world (the starts, then the
    worlds started in freed budget: `searcher.WorldSearcher`). `pruned_before`, `merged_before` ({world: into})
    and `restarts_before` ({world: restarts}) carry what an interrupted run had seen. Raises
    StoreUnreachable (one line) when the store stayed down longer than the retry budget. `radio_scene`: the
    driver's scene, against which reused worlds' starts are checked (a plate that cuts it is no start)."""
    from ray import tune
    from ray.tune.result import TRAINING_ITERATION

    from optimizer.experiment import catalogue
    from optimizer.physics.metrics import no_path_as_floor
    from optimizer.search.tune.callbacks import (Progress, Watch, caused_by_outage, quiet_outage_logs,
                                                 quiet_restore_advice)
    from optimizer.search.tune.schedulers import MergingFIFO, RecordingASHA, WorldStopper
    from optimizer.search.tune.searcher import WorldSearcher
    from optimizer.search.tune.state import RunState, attach

    from optimizer.search import outage

    state = RunState.before(pruned_before, merged_before, restarts_before)
    _keep_credentials_out_of_runtime_envs()
    quiet_outage_logs(state)
    outage.reset()
    quiet_restore_advice()
    exp = spec.exp
    s = exp.search
    res = exp.resources
    trainable = tune.with_resources(trainable_class(), {"cpu": res.cpu_per_world, "gpu": res.gpu_per_world})
    tol = spec.tolerances
    pruning = not (s.prune == "off" or s.steps <= s.prune.grace_steps)  # else no rung before the last step
    if not pruning:
        scheduler = MergingFIFO(tolerance=tol, merge=s.merge, state=state)
    else:
        scheduler = RecordingASHA(time_attr=TRAINING_ITERATION, max_t=s.steps, grace_period=s.prune.grace_steps,
                                  reduction_factor=s.prune.reduction_factor, brackets=1, tolerance=tol,
                                  merge=s.merge, state=state)
    view = ProgressView(s.steps)
    callbacks = [Watch(state)] + ([Progress(view, s.steps, state)] if progress else [])
    run_config = tune.RunConfig(
        name=TUNE_EXPERIMENT, storage_path=storage_path, storage_filesystem=storage_filesystem,
        stop=WorldStopper(s.steps, state),
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
        # under sizes_m each world one size option, in turn (optimizer.experiment.catalogue)
        sizes = catalogue.assign(len(starts), len(spec.options)) if spec.options else [None] * len(starts)
        configs = [spec.trial_config(i, p, kind, base, size=k) for i, ((p, kind), k) in enumerate(zip(starts, sizes))]
        searcher = WorldSearcher(spec, configs, reuse=s.reuse if pruning or s.merge else "off", steps=s.steps,
                                 grace_steps=s.prune.grace_steps if pruning else None, seed=s.seed)
        tuner = tune.Tuner(
            trainable, param_space={},
            tune_config=tune.TuneConfig(metric=SCORE_KEY, mode="max", scheduler=scheduler, search_alg=searcher,
                                        num_samples=searcher.max_worlds, max_concurrent_trials=s.concurrency,
                                        trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
            run_config=run_config)
    attach(tuner, state, radio_scene)  # the new parts, or those Tuner.restore unpickled from the first run
    try:
        grid = tuner.fit()
    except Exception as err:
        if state.outage is None and not caused_by_outage(err):
            raise
        raise StoreUnreachable(state.outage or _outage_line(err)) from None
    finally:
        outage.poll(force=True)  # what the worlds noted last
    if state.outage is not None:
        raise StoreUnreachable(state.outage)
    if progress:
        view.render()
    return collect(grid, s.steps, len(starts), state.pruned, state.crashes, state.merged)


def _trial_name(trial) -> str:
    """A world's Tune trial name and folder: world-NNN."""
    return f"{TRIAL_DIR_PREFIX}{unwrap(trial.config)['world']:03d}"


def _outage_line(err: BaseException) -> str:
    return last_error_line(str(err)).split(f"{StoreUnreachable.__name__}: ", 1)[-1]
