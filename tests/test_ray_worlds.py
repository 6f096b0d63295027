"""Parallel worlds on a real local Ray cluster (127.0.0.1): GPU packing, independence, failures, pruning."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from optimizer.physics.metrics import rss_stats
from worlds_helpers import street

TINY = {"solver.max_depth": 1, "solver.samples_per_src": 5000, "device": "cpu"}


@pytest.fixture
def ray_cluster():
    """Head (no GPU) + 2 nodes declaring one GPU each, all on 127.0.0.1."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=True,
                      head_node_args={"num_cpus": 1, "num_gpus": 0, "node_ip_address": "127.0.0.1",
                                      "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=2, num_gpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def _driver(exp):
    from optimizer.physics.scene import RadioScene
    from optimizer.search.starts import initial_poses
    from optimizer.physics.metrics import focus_mask

    rs = RadioScene(exp, device="cpu", threads=2)
    base = rs.rss_dbm(None)
    starts = initial_poses(exp, rs, exp.search.worlds, focus_mask(base, -90, 10))
    return rs, base, starts


def _progress_rows(tmp: Path):
    rows = []
    for f in sorted(tmp.glob("worlds/world-*/result.json")):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return rows


def test_quarter_gpu_worlds_pack_four_per_node(ray_cluster, tmp_path):
    """9 worlds at 0.25 GPU on 2 one-GPU nodes: never more than 4 on a node at once, none on the GPU-less
    head, and the 9th waits until a slot frees."""
    from optimizer.search.tune import run_worlds
    from optimizer.spec import RunSpec

    exp = street(**TINY, **{"search.worlds": 9, "search.steps": 2, "search.prune": "off",
                            "resources.gpu_per_world": 0.25, "resources.cpu_per_world": 0.5})
    rs, base, starts = _driver(exp)
    out = run_worlds(RunSpec.of(exp), starts, base, str(tmp_path), progress=False)
    assert [o.status for o in out] == ["completed"] * 9
    rows = _progress_rows(tmp_path)
    spans = {}
    for r in rows:
        start = r["timestamp"] - r["time_total_s"]
        w = r["world"]
        lo, hi, node = spans.get(w, (start, r["timestamp"], r["node_id"]))
        spans[w] = (min(lo, start), max(hi, r["timestamp"]), node)
    head = ray_cluster.head_node.node_id
    nodes = {node for _, _, node in spans.values()}
    assert head not in nodes and len(nodes) == 2
    for node in nodes:
        mine = [(lo, hi) for lo, hi, n in spans.values() if n == node]
        peak = max(sum(1 for lo2, hi2 in mine if lo2 <= lo < hi2) for lo, _ in mine)
        assert peak <= 4
    first_end = min(hi for _, hi, _ in spans.values())
    last_start = max(lo for lo, _, _ in spans.values())
    assert last_start >= first_end - 0.5  # the 9th world started only after another had finished


@pytest.fixture
def kill_world_1(tmp_path):
    """World 1's process SIGKILLs itself once at step 2 (set before Ray starts so workers inherit it)."""
    from optimizer.constants import ENV_FAULT_KILL_WORLD as FAULT_ENV

    marker = tmp_path / "killed.pid"
    os.environ[FAULT_ENV] = f"1:2:{marker}"
    yield marker
    del os.environ[FAULT_ENV]


def test_worlds_are_independent_and_failures_resume(kill_world_1, local_ray, tmp_path):
    """Each world's reported truth equals a fresh single-world evaluation of its pose; a world whose
    process is killed mid-run resumes from its checkpoint and the failure is recorded."""
    from optimizer.search.tune import run_worlds
    from optimizer.spec import RunSpec

    exp = street(**TINY, **{"search.worlds": 3, "search.steps": 4, "search.prune": "off",
                            "search.max_failures": 2, "search.checkpoint_every": 1})
    rs, base, starts = _driver(exp)
    marker = kill_world_1
    out = run_worlds(RunSpec.of(exp), starts, base, str(tmp_path / "tune"), progress=False)
    assert marker.exists()  # the world's process really was killed
    assert [o.status for o in out] == ["completed"] * 3
    assert out[1].restarts == 1 and out[0].restarts == 0 and out[2].restarts == 0
    hist = out[1].history
    assert [r.step for r in hist] == [1, 2, 3, 4]  # no step lost or repeated
    thr = exp.objective.coverage_threshold_dbm
    for o in out:
        assert len(o.history) == 4
        for row in o.history:
            fresh = rss_stats(rs.rss_dbm(row.pose), thr)
            assert fresh.coverage == row.truth.coverage and fresh.no_path == row.truth.no_path
            for key in ("min_rss_dbm", "mean_rss_dbm"):
                a, b = getattr(fresh, key), getattr(row.truth, key)
                assert (a is None and b is None) or a == pytest.approx(b, abs=1e-3)


def _replay_asha(trajectories, steps, grace, rf):
    """ASHA's rule (Ray's _Bracket.on_result) replayed on worlds that ran one after another."""
    from optimizer.search.tune import rungs

    recorded = {r: [] for r in rungs(steps, grace, rf)}
    stop_at = {}
    for w in sorted(trajectories):
        stop_at[w] = steps
        for rung in sorted(recorded):
            s = trajectories[w][rung].best_score
            cutoff = np.nanpercentile(recorded[rung], (1 - 1 / rf) * 100) if recorded[rung] else None
            recorded[rung].append(s)
            if cutoff is not None and s < cutoff:
                stop_at[w] = rung
                break
    return stop_at


def test_successive_halving_prunes_the_predicted_worlds(local_ray, tmp_path):
    from optimizer.search.tune import run_worlds
    from optimizer.spec import RunSpec

    steps, grace, rf = 8, 2, 2
    exp = street(**TINY, **{"search.worlds": 6, "search.steps": steps, "search.concurrency": 1,
                            "search.starts": "uniform", "search.reuse": "off", "search.merge": False,
                            "search.prune": {"grace_steps": grace, "reduction_factor": rf}})
    rs, base, starts = _driver(exp)
    out = run_worlds(RunSpec.of(exp), starts, base, str(tmp_path), progress=False)
    traj = {o.world: {r.step: r for r in o.history} for o in out}
    predicted = _replay_asha(traj, steps, grace, rf)
    observed = {o.world: o.steps for o in out}
    assert observed == predicted
    assert any(v < steps for v in observed.values())  # something was pruned
    for o in out:
        assert o.status == ("completed" if o.steps == steps else "pruned")


# --- collecting the worlds (no Ray needed) ------------------------------------------------------------------
class _Checkpoint:
    def __init__(self, path=None, error=None):
        self.path, self.error = path, error

    def as_directory(self):
        import contextlib

        if self.error is not None:
            raise self.error
        return contextlib.nullcontext(self.path)


class _Result:
    def __init__(self, world, metrics, checkpoint=None, error=None):
        self.config = {"__world__": {"world": world}}
        self.metrics, self.checkpoint, self.error, self.metrics_dataframe = metrics, checkpoint, error, None


def test_collect_lists_every_failure_and_never_drops_a_world(tmp_path):
    """A world that stopped with a stated error, or whose final checkpoint cannot be read, is a listed failure
    (never silently gone); a store that does not answer is the run's error, not a world's."""
    from optimizer.errors import StoreUnreachable
    from optimizer.search.tune import collect

    exp = street(**TINY)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "world_state.json").write_text("{not json")
    grid = [_Result(0, {"error": "truth at (1, 2, 3) m: NaN received power at 1 of 15 targets", "world": 0}),
            _Result(1, {"step": 3, "world": 1}, checkpoint=_Checkpoint(bad)),
            _Result(2, {"step": 1, "world": 2}, checkpoint=_Checkpoint(tmp_path / "gone"))]
    out = collect(grid, exp.search.steps, 4, restarts={1: 2})
    assert [(o.world, o.status) for o in out] == [(0, "failed"), (1, "failed"), (2, "failed"), (3, "interrupted")]
    assert "NaN received power" in out[0].error
    assert "is not a world state" in out[1].error and out[1].restarts == 2
    assert "cannot be read" in out[2].error
    down = [_Result(0, {"step": 3}, checkpoint=_Checkpoint(error=StoreUnreachable("s3://b/k: read failed")))]
    with pytest.raises(StoreUnreachable):
        collect(down, exp.search.steps, 1)
