"""Tune's schedulers and stopper for the worlds (`optimizer.search.tune`).

- `RecordingASHA` / `MergingFIFO`: successive halving / none. Both stop the worse of two worlds whose poses
  come within the mounting tolerance (`search.merge`, `Merging`); ASHA also notes which worlds it pruned.
- `WorldStopper`: a world is done after its last step; every world stops when `RunState.stop_everything`.

What they note goes into the run's `RunState` (`optimizer.search.tune.state`), given to their constructors
and re-attached after `Tuner.restore` (`attach`).
"""

from __future__ import annotations

from ray import tune
from ray.tune.result import DONE, TRAINING_ITERATION
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from optimizer.records import JointPose
from optimizer.search.tune.result_keys import size_of, step_of, world_of
from optimizer.search.tune.state import RunState


class Merging:
    """The merge rule of both schedulers: when a world's pose comes within the mounting tolerance of another
    running world's (`reuse.same_mount`) with the same plate sizes, the one with the lower best score stops
    (a tie: the higher world number); the other goes on. `state.merged[world] = into`."""

    def _merge_init(self, tolerance, enabled: bool, state: RunState | None):
        self._tol = tolerance
        self._merge_on = bool(enabled)
        self._poses: dict[int, tuple[JointPose, float, object]] = {}
        self._doomed: dict[int, int] = {}
        self.state = state if state is not None else RunState()

    def attach(self, state: RunState, scene=None) -> None:
        self.state = state

    def _merges(self, trial, result) -> bool:
        """Whether this result stops its world as a duplicate."""
        from optimizer.search.reuse import same_mount

        world = world_of(trial)
        last = bool(result.get(DONE))
        if world in self._doomed:
            into = self._doomed.pop(world)
            if not last:
                self.state.merged[world] = into
                self._poses.pop(world, None)
                return True
        step = step_of(result)
        if not self._merge_on or step is None or last:
            return False
        mine, size = (step.best_score, -world), size_of(trial)
        for other, (pose, other_score, other_size) in list(self._poses.items()):
            if other == world or other in self._doomed or other_size != size or \
                    not same_mount(step.pose, pose, self._tol):
                continue
            if (other_score, -other) > mine:
                self.state.merged[world] = other
                self._poses.pop(world, None)
                return True
            self._doomed[other] = world
        self._poses[world] = (step.pose, step.best_score, size)
        return False

    def _forget(self, trial):
        self._poses.pop(world_of(trial), None)


class RecordingASHA(ASHAScheduler, Merging):
    """ASHA that notes which worlds it stopped (pruned), so an interrupted world is not mistaken for a
    pruned one (Tune marks both TERMINATED), and stops duplicates first (`Merging`)."""

    def __init__(self, *args, tolerance=None, merge: bool = False, state: RunState | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._merge_init(tolerance, merge, state)

    def on_trial_result(self, tune_controller, trial, result):
        if self._merges(trial, result):
            return TrialScheduler.STOP
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and not result.get(DONE):
            self.state.pruned.add(world_of(trial))
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

    def __init__(self, tolerance=None, merge: bool = False, state: RunState | None = None):
        super().__init__()
        self._merge_init(tolerance, merge, state)

    def on_trial_result(self, tune_controller, trial, result):
        return TrialScheduler.STOP if self._merges(trial, result) else TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller, trial, result):
        self._forget(trial)

    def on_trial_remove(self, tune_controller, trial):
        self._forget(trial)


class WorldStopper(tune.Stopper):
    """A world stops after `steps` steps (Tune's own iteration count, which survives a restore)."""

    def __init__(self, steps: int, state: RunState | None = None):
        self.steps = int(steps)
        self.state = state if state is not None else RunState()

    def attach(self, state: RunState, scene=None) -> None:
        self.state = state

    def __call__(self, trial_id, result) -> bool:
        return int(result.get(TRAINING_ITERATION, 0)) >= self.steps

    def stop_all(self) -> bool:
        return self.state.stop_everything
