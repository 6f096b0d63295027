"""One world: cold start to coverage, best-truth bookkeeping, determinism, the comparison gradient modes."""

import numpy as np
import pytest

from optimizer.experiment import with_overrides
from optimizer.records import PlatePose as Pose
from optimizer.physics.metrics import rss_stats
from worlds_helpers import street


@pytest.fixture(scope="module")
def scene():
    from optimizer.physics.scene import RadioScene

    exp = street(**{"solver.max_depth": 3, "solver.samples_per_src": 50000})
    return exp, RadioScene(exp, device="cpu", threads=2)


def test_cold_start_reaches_coverage(scene):
    """From a pose that covers no target (checked by ray tracing), the surrogate gradient reaches full
    coverage within 15 truth-checked steps."""
    from optimizer.search.world import World

    exp, rs = scene
    exp = with_overrides(exp, "test", {"search.steps": 15})
    cold = Pose(27.5, 8.4, 5.0, 95.0)
    rss0 = rs.rss_dbm(cold)
    base = rs.rss_dbm(None)
    assert rss_stats(rss0, -90).coverage == 0.0  # really cold
    assert rss_stats(base, -90).coverage < 1.0  # and the baseline leaves targets uncovered
    w = World(exp, 0, cold, radio_scene=rs, baseline_rss=base)
    for _ in range(exp.search.steps):
        w.step()
    best = w.best.truth
    assert best.coverage == 1.0
    assert best.min_rss_dbm > -90
    # the reported best is the truth at the reported pose
    again = rss_stats(rs.rss_dbm(w.best.pose), -90)
    assert again.min_rss_dbm == pytest.approx(best.min_rss_dbm, abs=1e-6)
    assert w.evaluations == exp.search.steps + 1
    # best is monotone in the history
    bests = [r.best_score for r in w.history]
    assert all(b2 >= b1 for b1, b2 in zip(bests, bests[1:]))


def test_world_is_deterministic_and_restores(scene):
    """Same seed and start -> same trajectory; a world restored from its state continues identically."""
    from optimizer.search.world import World

    exp, rs = scene
    base = rs.rss_dbm(None)
    start = Pose(22.0, 8.0, 5.0, 120.0)
    a = World(exp, 3, start, radio_scene=rs, baseline_rss=base)
    b = World(exp, 3, start, radio_scene=rs, baseline_rss=base)
    ra = [a.step() for _ in range(3)]
    rb = [b.step() for _ in range(2)]
    c = World(exp, 3, start, radio_scene=rs, baseline_rss=base)
    c.set_state(b.get_state())
    rb.append(c.step())
    for x, y in zip(ra, rb):
        fx, fy = x.to_flat(), y.to_flat()
        for key in ("x", "y", "yaw_deg", "min_rss_dbm", "best_min_rss_dbm", "best_score"):
            assert fx[key] == pytest.approx(fy[key], abs=1e-9)


@pytest.mark.parametrize("mode,evals_per_step", [("spsa", 2), ("random", 1), ("sionna", 1)])
def test_comparison_modes_count_truth_evaluations(scene, mode, evals_per_step):
    from optimizer.search.world import World

    exp, rs = scene
    exp = with_overrides(exp, "test", {"search.gradient": mode, "solver.samples_per_src": 5000})
    w = World(exp, 1, Pose(24.0, 8.0, 5.0, 140.0), radio_scene=rs, baseline_rss=rs.rss_dbm(None))
    w.step()
    w.step()
    first = 0 if mode == "random" else 1
    assert w.evaluations == first + 2 * evals_per_step
    assert np.isfinite(w.best.score)


def test_informed_starts_see_transmitter_and_targets(scene):
    """Informed starts put the plate where the Tx is visible, facing the specular orientation."""
    from optimizer.search.space import PoseSpace
    from optimizer.search.starts import initial_poses

    exp, rs = scene
    exp = with_overrides(exp, "test", {"search.starts": "informed"})
    poses = initial_poses(exp, rs, 4)
    assert len(poses) == 4 and all(kind == "informed" for _, kind in poses)
    space = PoseSpace.of(exp)
    tx = np.array(exp.transmitters[0].position)
    for p, _ in poses:
        assert space.contains(space.to_vec(p))
        assert rs.visible(tx[None], np.array(p.first.position)[None])[0]
    # reproducible
    again = initial_poses(exp, rs, 4)
    assert [p for p, _ in poses] == [p for p, _ in again]


def test_gradient_modes_are_a_registry(scene):
    """A mode registered under a name is a valid `search.gradient` and drives the world's loop; an unknown
    name is one line listing the registered ones."""
    from optimizer.errors import ConfigError
    from optimizer.search.modes import GradientMode, gradient_modes, register_gradient_mode
    from optimizer.search.world import World

    @register_gradient_mode
    class Hold(GradientMode):
        name = "test-hold"
        truth_of_start = False

        def step(self):
            return self.world.truth(self.world.unit)

    exp, rs = scene
    assert {"surrogate", "sionna", "spsa", "random", "test-hold"} <= set(gradient_modes())
    held = street(**{"search.gradient": "test-hold", "solver.samples_per_src": 5000})
    w = World(held, 0, Pose(24.0, 8.0, 5.0, 140.0), radio_scene=rs)
    rows = [w.step() for _ in range(2)]
    assert rows[0].pose == rows[1].pose and w.evaluations == 2
    with pytest.raises(ConfigError, match=r"search.gradient: unknown gradient mode 'magic'; one of surrogate"):
        street(**{"search.gradient": "magic"})


def test_one_device_rule(monkeypatch):
    """Explicit device wins; a world with no GPU share runs on the CPU; REFLECTOPT_DEVICE=cpu (the chart's
    value) reaches every process; otherwise a visible GPU is used."""
    from optimizer.physics import backend

    monkeypatch.setattr(backend, "gpu_visible", lambda: True)
    monkeypatch.delenv("REFLECTOPT_DEVICE", raising=False)
    assert backend.resolve_device("cpu", gpu_share=1.0) == "cpu"
    assert backend.resolve_device("cuda", gpu_share=0.0) == "cuda"
    assert backend.resolve_device("auto", gpu_share=0.0) == "cpu"
    assert backend.resolve_device("auto", gpu_share=0.25) == "cuda"
    assert backend.resolve_device("auto", gpu_share=None) == "cuda"
    monkeypatch.setenv("REFLECTOPT_DEVICE", "cpu")
    assert backend.resolve_device("auto", gpu_share=0.25) == "cpu"
    monkeypatch.setattr(backend, "gpu_visible", lambda: False)
    monkeypatch.setenv("REFLECTOPT_DEVICE", "cuda")
    assert backend.resolve_device("auto", gpu_share=0.25) == "cpu"  # no GPU to be had


# --- numbers that are not numbers ---------------------------------------------------------------------------
def test_nan_stops_the_world_with_a_stated_error(scene, monkeypatch):
    """NaN from the ray tracer or from the surrogate stops the world with a line saying so; it never becomes
    a -200 dBm floor or a zero gradient."""

    from optimizer.errors import NumericsError
    from optimizer.physics.metrics import no_path_as_floor
    from optimizer.search.world import World

    exp, rs = scene
    base = rs.rss_dbm(None)
    w = World(exp, 0, Pose(22.0, 8.0, 5.0, 120.0), radio_scene=rs, baseline_rss=base)
    w.step()
    best = w.best
    real = rs.plate_model.power

    def nan_power(paths, only_diffracted=False):  # the solver's power [rx, tx] with a NaN in it
        p = np.array(real(paths, only_diffracted), float)
        p[3, 0] = np.nan
        return p

    monkeypatch.setattr(rs.plate_model, "power", nan_power)
    with pytest.raises(NumericsError, match=r"truth at \(.*NaN received power at 1 of 15 targets \(target 3\)"):
        w.step()
    assert w.best is best  # nothing recorded
    monkeypatch.setattr(rs.plate_model, "power", real)
    w.mode.surrogate.tx[0, 0] = np.nan  # a broken model input
    with pytest.raises(NumericsError, match=r"surrogate at pose .*: the (objective|gradient) is not finite"):
        w.step()
    with pytest.raises(NumericsError, match="NaN"):
        rss_stats([-80.0, float("nan")], -90)
    with pytest.raises(NumericsError, match="NaN"):
        no_path_as_floor([float("nan")])
    assert rss_stats([-80.0, -np.inf], -90).no_path == 1  # no path (-inf) is not an error
