"""The Tune trainable: one world (`optimizer.search.world.World`) per trial, in its own Ray actor process.

`step()` runs one world step and returns the flat form of a `WorldStep` (plus the pruner's `score`); the
checkpoint is the world's `WorldState` as JSON, of fixed size. A world whose numbers stop making sense (NaN
or infinity: `NumericsError`) stops at once with that line as its error (a restart would only repeat it).
"""

from __future__ import annotations

import os
import resource
import signal
import time
from pathlib import Path

from optimizer.constants import ENV_FAULT_KILL_WORLD, NO_PATH_FLOOR_DBM, WORLD_STATE_FILE
from optimizer.errors import NumericsError
from optimizer.records import WorldState
from optimizer.search.tune.result_keys import ERROR_KEY, SCORE_KEY, WORLD_KEY, unwrap


def trainable_class():
    from ray import tune
    from ray.tune.result import DONE

    class WorldTrainable(tune.Trainable):
        """One world. Heavy state (the scene) is loaded once in `setup`."""

        def setup(self, config):
            import numpy as np

            from optimizer.physics import backend
            from optimizer.records import JointPose
            from optimizer.search.world import World
            from optimizer.spec import RunSpec

            from optimizer.search import outage

            outage.to_driver()  # this world's store outages reach the driver's console
            config = unwrap(config)
            self.spec = RunSpec.of_trial(config)  # at the world's plate sizes and step count
            self.exp = self.spec.exp
            self.size_rank = self.spec.size_rank  # (area rank, distinct areas) of its plate sizes under sizes_m
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
                return {ERROR_KEY: str(err), WORLD_KEY: w.world_id, DONE: True,
                        SCORE_KEY: self._score() if w.best is not None else NO_PATH_FLOOR_DBM}
            row[SCORE_KEY] = self._score()
            row["pid"] = os.getpid()
            row["node_id"] = self._node_id
            row["device"] = w.rs.device
            row[DONE] = w.step_index >= self.exp.search.steps
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
            self.world.set_state(st)  # a restore is a restart or a resume: callbacks.Watch tells them apart

    return WorldTrainable
