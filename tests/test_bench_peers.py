"""benchmarks/planner_peers.py builds valid experiments for both modes (no ray tracing, no search) and judges a
case by its stated rule."""

import importlib.util
import math
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from optimizer.experiment import load_experiment
from worlds_helpers import EXAMPLES, REPO

sys.path.insert(0, str(REPO / "benchmarks"))
spec = importlib.util.spec_from_file_location("planner_peers", REPO / "benchmarks" / "planner_peers.py")
pp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pp)

ARGS = SimpleNamespace(worlds=3, steps=2, samples=7000)


@pytest.fixture
def cases(tmp_path, monkeypatch):
    """build_cases on two shipped examples instead of the generated suite (a relative scene and a built-in)."""
    src = [("corridor", EXAMPLES / "indoor-corridor.yaml"), ("street", EXAMPLES / "street-corner.yaml")]
    monkeypatch.setattr(pp, "suite_cases", lambda seed, n: src[:n])

    def build(mode, seed=1):
        return pp.build_cases(mode, seed, 2, ARGS, tmp_path / f"s{seed}"), src
    return build


def test_antenna_cases_aim_a_sector_near_the_cluster(cases):
    built, src = cases("antenna")
    again, _ = cases("antenna")
    other, _ = cases("antenna", seed=2)
    for (name, path), (_, orig), (_, path2), (_, path3) in zip(built, src, again, other, strict=True):
        exp = load_experiment(path)  # valid: the product's own loader
        assert (exp.search.worlds, exp.search.steps, exp.solver.samples_per_src) == (3, 2, 7000)
        tx, ant = exp.transmitters[0], exp.transmitters[0].antenna
        assert (ant.pattern, ant.polarization) == ("tr38901", "V")
        d = np.mean(load_experiment(orig).target_points(), axis=0) - np.asarray(tx.position)
        off = (ant.azimuth_deg - math.degrees(math.atan2(d[1], d[0])) + 180) % 360 - 180
        assert abs(off) <= 60.0 + 0.01 and 4.0 <= ant.downtilt_deg <= 10.0, (name, off, ant.downtilt_deg)
        assert exp.objective.kind == "min"
        assert load_experiment(path2).transmitters[0].antenna == ant  # seeded
        assert load_experiment(path3).transmitters[0].antenna != ant  # by the suite seed


def test_percentile_cases_cover_the_cluster_with_an_area(cases):
    built, src = cases("percentile")
    for (name, path), (_, orig) in zip(built, src, strict=True):
        exp = load_experiment(path)
        assert (exp.objective.kind, exp.objective.p) == ("percentile", 5.0)
        assert exp.targets.area and not exp.targets.points and exp.targets.region is None
        area = np.asarray(exp.target_points())
        cluster = np.asarray(load_experiment(orig).target_points())
        poly = np.asarray(exp.targets.area[0].polygon)
        step = exp.targets.area[0].spacing_m
        assert step == pp.TARGET_SPACING_M == 1.5  # the suite's target lattice
        assert np.allclose(poly.min(axis=0), cluster[:, :2].min(axis=0) - step)  # grown by one step
        assert np.allclose(poly.max(axis=0), cluster[:, :2].max(axis=0) + step)
        assert np.all(area[:, 2] == cluster[0, 2])
        if name == "corridor":  # targets on the suite's 1.5 m lattice: each is a point of the area
            for p in cluster:
                assert np.min(np.linalg.norm(area - p, axis=1)) < 1e-6, (name, p)
        assert exp.objective.coverage_threshold_dbm == load_experiment(orig).objective.coverage_threshold_dbm


def test_verdict_gap_and_peer_margin():
    assert pp.verdict(-70.0, -69.6, -70.2) == (True, pytest.approx(0.4), pytest.approx(-0.2))
    assert not pp.verdict(-70.0, -69.4, None)[0]  # 0.6 dB below the reference
    assert not pp.verdict(-70.0, -75.0, -69.7)[0]  # 0.3 dB behind the best peer
    assert pp.verdict(-70.0, None, None)[0]  # no reference figure: judged on the peers alone
    assert not pp.verdict(None, -70.0, -80.0)[0]  # the product without a figure misses


def test_a_case_is_informative_when_some_method_lifts_the_worst_case():
    row = {"ref_fig": -104.3, "product": -75.3, "no_plate": -100.0,
           "peers": {"random": {"mean": -104.3}, "grid": {"mean": None}}}
    assert pp.informative(row)  # the product lifts it, whatever the (small) reference found
    flat = {**row, "product": -99.8}
    assert not pp.informative(flat)  # nobody beats the no-plate value by more than LIFT_DB
    assert not pp.informative({**row, "no_plate": None})
