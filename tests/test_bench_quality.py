"""Helpers of benchmarks/optimizer_quality.py that decide its figures (no ray tracing): the pattern search,
the grid sized to a budget, the reference's cache key and the product's evaluations-to-target count."""

import importlib.util
import math

import numpy as np

from worlds_helpers import REPO, street

spec = importlib.util.spec_from_file_location("optimizer_quality", REPO / "benchmarks" / "optimizer_quality.py")
oq = importlib.util.module_from_spec(spec)
spec.loader.exec_module(oq)


def test_pattern_search_finds_a_quadratic_maximum():
    centre = np.array([1.3, -0.7, 0.0, 12.0])
    calls = []

    def f(x):
        calls.append(1)
        return -float(np.sum((np.asarray(x) - centre) ** 2))

    x, fx = oq.pattern_search(f, np.zeros(4), np.array([1.0, 1.0, 0.0, 4.0]), np.full(4, -20.0), np.full(4, 20.0), 4)
    assert np.all(np.abs(x - centre) <= [1 / 16, 1 / 16, 0, 4 / 16]) and x[2] == 0.0  # a fixed axis stays
    x2, _ = oq.pattern_search(f, np.zeros(4), np.array([1.0, 1.0, 0.0, 4.0]), np.full(4, -20.0),
                              np.full(4, 20.0), 4, max_moves=1)
    assert np.count_nonzero(x2) == 1  # one move only


def test_budget_grid_fits_the_budget():
    space = oq.PoseSpace.of(street())
    for n in (20, 100, 400):
        poses = oq.budget_grid(space, n)
        assert n / 4 <= len(poses) <= n, (n, len(poses))


def test_reference_key_ignores_search_and_output():
    a = street()
    b = street(**{"search.worlds": 7, "search.steps": 11, "output": "/tmp/elsewhere"})
    c = street(**{"objective.coverage_threshold_dbm": -80})
    assert oq.reference_key(a) == oq.reference_key(b) != oq.reference_key(c)


def test_product_evals_to_counts_worlds_in_lock_step(tmp_path):
    rows = ["world,step,min_rss_dbm,evaluations", "0,1,-90,2", "0,2,-70,3", "1,1,,2", "1,2,-61,3", "1,3,-59,9"]
    (tmp_path / "trajectories.csv").write_text("\n".join(rows) + "\n")
    assert oq.product_evals_to(tmp_path, -60.6) == 6  # step 2 of both worlds: 3 + 3
    assert oq.product_evals_to(tmp_path, -59.2) == 12  # step 3: world 0 done at 3, world 1 at 9
    assert oq.product_evals_to(tmp_path, -55.0) is None
    assert oq.peer_evals_to([None, -70.0, -59.0], -59.2) == 3
    assert oq.gap(-60.0, None) is None and math.isclose(oq.gap(-60.0, -61.5), 1.5)
