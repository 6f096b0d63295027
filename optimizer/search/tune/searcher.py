"""Tune's source of worlds (`optimizer.search.tune`): the starts, then new worlds in the budget pruned or
merged ones freed (`search.reuse`, rules in `optimizer.search.reuse`)."""

from __future__ import annotations

import json

import numpy as np
from ray.tune.search import Searcher

from optimizer.records import JointPose
from optimizer.search.tune.result_keys import TRIAL_WRAP_KEY, WORLD_KEY, step_of


class WorldSearcher(Searcher):
    """Tune's source of worlds. First the starting worlds, in order; then, under `search.reuse`, a new
    world whenever the budget (`worlds x steps` world-steps) has room for a reused one
    (`reuse.reuse_steps`): the steps a finished world did not do (pruned, merged, failed) are free again.
    None (wait) while running worlds may still free some; FINISHED when none can. Its state (a JSON file
    beside Tune's experiment state) makes a resumed run continue the same plan."""

    def __init__(self, spec, configs: list[dict], reuse: str, steps: int, grace_steps: int | None, seed: int):
        super().__init__()
        from optimizer.search.reuse import reuse_steps

        self.spec = spec  # the run's `RunSpec` (picklable: Tune saves the searcher with the run)
        self.scene = None  # the driver's RadioScene (`attach`; never pickled)
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

    def attach(self, state=None, scene=None) -> None:
        """The driver's scene, against which reused worlds' starts are checked (a plate that cuts it is no
        start); after `Tuner.restore` too (`optimizer.search.tune.state.attach`)."""
        self.scene = scene

    def __getstate__(self):  # Tune pickles the searcher with the run: the scene stays out
        return {**self.__dict__, "scene": None}

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
        w = int(cfg[WORLD_KEY])
        st["trials"][trial_id] = w
        st["planned"][str(w)] = int(cfg.get("steps") or self.budget // len(self.configs))
        st.setdefault("size", {})[str(w)] = cfg.get("size")
        st["live"].append(w)
        return {TRIAL_WRAP_KEY: cfg}

    def on_trial_result(self, trial_id: str, result: dict):
        w = self.st["trials"].get(trial_id)
        step = step_of(result)
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
        exp = self.spec.exp
        space, tol = PoseSpace.of(exp, self.scene), self.spec.tolerances  # (rejects scene cuts)
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
        size = None
        if base.get("size") is not None:  # sizes_m: exploit keeps its parent's sizes, explore the least tried
            sizes = st.get("size", {})
            if parent is not None:
                size = sizes.get(str(parent))
            else:
                tried = [v for v in sizes.values() if v is not None]
                size = min(range(len(self.spec.options)), key=lambda k: (tried.count(k), k))
        return self.spec.trial_config(world, pose, kind, base["baseline_rss"], size=size, steps=self.reuse_len,
                                      parent=parent, freed_by=freed_by, scale=scale)

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
