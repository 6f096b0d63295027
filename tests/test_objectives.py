"""The objective kinds (optimizer.objectives, issues 21 and 24): each truth value against numpy on hand-made RSS
arrays, each model against a central finite difference, the Dr.Jit model against the numpy one, the `min`
ranking against its formula written out here, and the tolerance rule ("holds") per kind."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optimizer.constants import NO_PATH_FLOOR_DBM
from optimizer.objectives import default
from optimizer.physics.metrics import rss_stats
from optimizer.registry import OBJECTIVES
from worlds_helpers import street

RSS = np.array([-95.0, -80.5, -70.25, -88.0, -60.0, -91.5, -89.9, -75.0, -102.0, -84.0])
NO_PATH = np.array([-np.inf, -80.5, -70.25, -88.0, -60.0])


def _obj(kind, **params):
    return OBJECTIVES.get(kind).with_settings(temperature_db=2.0, threshold_dbm=-90.0, **params)


def test_registry_lists_min_first():
    """Whichever built-in module a process imports first (here, in a fresh one: `min`, which registers the
    others while it loads), the built-ins list in their modules' order."""
    import subprocess
    import sys

    from worlds_helpers import REPO

    assert OBJECTIVES.names()[:3] == ["min", "percentile", "coverage"]
    assert street().objective.kind == "min"
    code = "import optimizer.objectives.min; from optimizer.registry import OBJECTIVES; print(OBJECTIVES.names())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.stdout.strip() == "['min', 'percentile', 'coverage']", out.stderr


def test_min_truth_is_the_minimum():
    assert _obj("min").truth(RSS) == np.min(RSS)
    assert _obj("min").truth(NO_PATH) is None  # a target without a path decides it


@pytest.mark.parametrize("p", [0.0, 5.0, 12.5, 50.0, 95.0, 100.0])
def test_percentile_truth_is_numpy_linear_interpolation(p):
    """Linear interpolation: sorted ascending, rank (n - 1) p / 100 between its neighbours (written out here,
    and numpy's default method agrees)."""
    s = np.sort(RSS)
    rank = (s.size - 1) * p / 100.0
    lo, hi = math.floor(rank), math.ceil(rank)
    by_hand = s[lo] + (s[hi] - s[lo]) * (rank - lo)
    got = _obj("percentile", p=p).truth(RSS)
    assert got == pytest.approx(by_hand, abs=1e-12)
    assert got == pytest.approx(np.percentile(RSS, p, method="linear"), abs=1e-12)


def test_percentile_without_a_path_counts_the_floor():
    # p = 50 of five values: the third lowest, above the no-path target; p = 0: the no-path target itself
    assert _obj("percentile", p=50).truth(NO_PATH) == -80.5
    assert _obj("percentile", p=0).truth(NO_PATH) is None
    assert _obj("percentile", p=10).truth(NO_PATH) == pytest.approx(0.6 * NO_PATH_FLOOR_DBM + 0.4 * -88.0)


def test_coverage_truth_is_the_share_at_or_above_the_threshold():
    assert _obj("coverage").truth(RSS) == np.mean(RSS >= -90.0) == 0.7
    assert _obj("coverage").truth(np.array([-90.0, -np.inf])) == 0.5  # at the threshold counts


def test_min_score_is_todays_formula():
    """min RSS (no path: the floor), + 0.01 coverage - 0.01 no-path share (capped at 100) + 1e-6 mean above
    the floor (capped at 1000), in this order (bit for bit: the winners of today's runs)."""
    for r in (RSS, NO_PATH, np.full(3, -np.inf)):
        st = rss_stats(r, -90.0)
        mn = NO_PATH_FLOOR_DBM if st.min_rss_dbm is None else max(st.min_rss_dbm, NO_PATH_FLOOR_DBM)
        mean = (NO_PATH_FLOOR_DBM if st.mean_rss_dbm is None else max(st.mean_rss_dbm, NO_PATH_FLOOR_DBM)) \
            - NO_PATH_FLOOR_DBM
        ref = mn + 1e-2 * st.coverage - 1e-2 * min(st.no_path, 100) / 100.0 + 1e-6 * min(mean, 1000.0)
        assert _obj("min").score(st) == ref  # exact


def test_rankings_follow_each_kind():
    a = np.array([-85.0, -85.0, -85.0, -85.0])  # min -85, all covered, no margin beyond 5 dB
    b = np.array([-95.0, -60.0, -60.0, -60.0])  # min -95, 3 of 4 covered, wide margins
    c = np.array([-89.0, -89.0, -89.0, -89.0])  # all covered, 1 dB margin
    m, pc, cv = _obj("min"), _obj("percentile", p=50), _obj("coverage")
    assert m.score_rss(a) > m.score_rss(b)
    assert pc.score_rss(b) > pc.score_rss(a)  # the median: -60 above -85
    assert cv.score_rss(a) > cv.score_rss(b)  # 4 of 4 above 3 of 4, whatever the margin
    assert cv.score_rss(a) > cv.score_rss(c)  # same share: the worst covered margin (5 dB above 1 dB)


def test_holds_follows_the_objective():
    r = np.array([-80.0] * 19 + [-95.0])  # 95 % covered, the 5th percentile at -80.75
    assert not _obj("min").holds(r)
    assert _obj("coverage", required=0.95).holds(r) and not _obj("coverage", required=0.96).holds(r)
    assert not _obj("coverage").holds(r)  # default required: 1
    assert _obj("percentile", p=10).holds(r) and not _obj("percentile", p=1).holds(r)
    assert list(_obj("coverage", required=0.95).holds_each(np.vstack([r, r - 20]))) == [True, False]
    assert _obj("coverage", required=0.95).met(rss_stats(r, -90.0))
    assert _obj("percentile", p=10).met(_obj("percentile", p=10).stats(r))
    assert not _obj("percentile", p=1).met(_obj("percentile", p=1).stats(r))
    edge = np.array([-90.0, -90.0, -50.0])  # the 0th percentile at the threshold exactly: holds (>=)
    assert _obj("percentile", p=0).holds(edge) and _obj("percentile", p=0).met(_obj("percentile", p=0).stats(edge))


@pytest.mark.parametrize("kind,params", [("min", {}), ("percentile", {"p": 5}), ("percentile", {"p": 50}),
                                         ("coverage", {})])
def test_model_gradient_matches_finite_difference(kind, params):
    """The model's gradient (what the surrogate's AD sees) = central finite difference of the model value, per
    target, within 1e-5 (absolute) + 1e-4 of the largest component; focus targets only."""
    obj = _obj(kind, **params)
    v = RSS.copy()
    focus = RSS < -70.0
    _, g = obj.model_grad(v, focus)
    h = 1e-4
    fd = np.array([(obj.model(v + h * e, focus) - obj.model(v - h * e, focus)) / (2 * h) for e in np.eye(v.size)])
    assert np.abs(g).max() > 1e-3
    assert np.all(g[~focus] == 0)
    np.testing.assert_allclose(g, fd, atol=1e-5 + 1e-4 * np.abs(fd).max())


def test_soft_quantile_tends_to_the_quantile():
    """As the temperature shrinks, the percentile's model tends to a value between the neighbours of its rank."""
    obj = OBJECTIVES.get("percentile").with_settings(temperature_db=0.01, threshold_dbm=-90.0, p=50)
    s = np.sort(RSS)
    assert s[4] - 0.1 <= obj.model(RSS) <= s[5] + 0.1


@pytest.mark.parametrize("kind,params", [("min", {}), ("percentile", {"p": 20}), ("coverage", {})])
def test_drjit_model_matches_numpy_value_and_gradient(kind, params):
    """The Dr.Jit model value (float32 lanes) = the numpy model to 1e-3 dB; its reverse-mode gradient = the numpy
    gradient to 1e-4; the batched version = the single one."""
    from optimizer.physics import backend

    backend.init("cpu", threads=1)
    import drjit as dr
    import mitsuba as mi

    from optimizer.physics.backend import to_float

    obj = _obj(kind, **params)
    v = RSS.astype(np.float32).astype(float)
    focus = RSS < -70.0
    x = to_float(v)
    dr.enable_grad(x)
    out = obj.model_dr(x, v, focus)
    dr.backward(out)
    value, grad = obj.model_grad(v, focus)
    assert float(np.array(dr.detach(out)).reshape(-1)[0]) == pytest.approx(value, abs=1e-3)
    np.testing.assert_allclose(np.array(dr.grad(x), dtype=float), grad, atol=1e-4)
    many = obj.model_dr_many(mi.Float(np.tile(v, 2).astype(np.float32)), np.vstack([v, v]), focus)
    np.testing.assert_allclose(many, [value, value], atol=1e-3)


def test_default_objective_is_the_experiment_min():
    from optimizer import objectives

    exp = street()
    a, b = objectives.of(exp), default(exp.objective.softmin_temperature_db, exp.objective.coverage_threshold_dbm)
    assert a.kind == b.kind == "min" and a.model(RSS) == b.model(RSS) and a.score_rss(RSS) == b.score_rss(RSS)


def test_objective_parameters_are_checked():
    from optimizer.errors import ConfigError

    assert street(objective={"kind": "percentile", "p": 5}).objective.p == 5
    assert street(objective={"kind": "coverage", "required": 0.95}).objective.required == 0.95
    for bad in ({"kind": "percentile", "p": -1}, {"kind": "coverage", "required": 1.5}, {"kind": "min", "p": 5},
                {"kind": "percentile", "required": 0.5}, {"kind": "nope"}):
        with pytest.raises((ConfigError, ValueError)):
            street(objective=bad)


def test_min_experiment_hashes_as_before():
    """An experiment without objective kinds hashes as it did before they existed (resume, re-runs)."""
    exp = street()
    assert '"kind"' not in exp.canonical_json().split('"objective"')[1].split("}")[0]
    assert street(objective={"kind": "coverage"}).sha256() != exp.sha256()


# --- targets.area ---------------------------------------------------------------------------------------------
AREA = {"polygon": [[26.0, -22.0], [36.0, -22.0], [36.0, -18.0], [26.0, -18.0]], "z": 1.5, "spacing_m": 1.0}


def test_area_samples_the_polygon_grid():
    """A 10 m x 4 m rectangle at 1 m: 11 x 5 points, boundary included, row by row; a triangle keeps the
    points on or below its diagonal."""
    exp = street(targets={"area": AREA})
    pts = np.array(exp.target_points())
    assert pts.shape == (55, 3) and np.all(pts[:, 2] == 1.5)
    assert pts[:11, 0].tolist() == list(np.arange(26.0, 37.0)) and np.all(pts[:11, 1] == -22.0)
    tri = street(targets={"area": {"polygon": [[0, 0], [4, 0], [4, 4]], "spacing_m": 1.0}}).target_points()
    assert len(tri) == 15 and all(y <= x for x, y, _ in tri)
    both = street(targets={"points": [[24.0, -32.0, 1.5]], "area": [AREA, AREA]})
    assert len(both.target_points()) == 111 and both.target_key(0) == "targets.points[0]"
    assert both.target_key(60) == "targets.area[1] (its point 4)"


def test_area_points_inside_a_building_are_dropped_and_counted():
    """building_5 of the street canyon is a box whose west wall stands at x = 31.52 m (y -34..-11): of the
    area's columns x = 26..36, those at x >= 32 (5 columns of 5 points) lie inside it."""
    from optimizer.physics.scene import RadioScene

    exp = street(targets={"points": [[24.0, -32.0, 1.5]], "area": AREA})
    rs = RadioScene(exp, device="cpu", threads=1)
    assert rs.targets_dropped == 25 and len(rs.targets) == 1 + 30
    assert rs.targets[0].tolist() == [24.0, -32.0, 1.5] and rs.targets[1:, 0].max() == 31.0

    from optimizer.errors import ConfigError

    inside = street(targets={"points": [[24.0, -32.0, 1.5]],
                             "area": {"polygon": [[34, -30], [40, -30], [40, -20]], "spacing_m": 2.0}})  # 1+2+4+6 points
    with pytest.raises(ConfigError, match=r"^targets.area\[0\]: all 13 of its points lie inside buildings"):
        RadioScene(inside, device="cpu", threads=1)


@pytest.mark.parametrize("area,words", [
    ({"polygon": [[0, 0], [1, 0]]}, "at least 3 points"),
    ({"polygon": [[0, 0], [4, 4], [4, 0], [0, 4]]}, "not simple"),  # a bow tie
    ({"polygon": [[0, 0], [1, 0], [2, 0]]}, "not simple"),  # no area
    ({"polygon": [[0, 1], [1, 0], [1, 1]], "spacing_m": 3.0}, "no grid point"),  # the grid: (0, 0) alone
])
def test_bad_area_is_one_line_naming_the_key(area, words, tmp_path, capsys):
    from optimizer.cli.main import main
    from worlds_helpers import STREET, write_yaml

    data = {**STREET, "targets": {"area": {"z": 1.5, "spacing_m": 1.0, **area}}}
    f = write_yaml(tmp_path / "bad.yaml", data)
    assert main(["run", str(f), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "targets.area" in err[0] and words in err[0], err
    assert not (tmp_path / "out").exists()


# --- target weights ------------------------------------------------------------------------------------------
W = np.array([1.0, 2.0, 0.5, 1.0, 3.0, 1.0, 0.25, 1.0, 4.0, 1.0])


@pytest.mark.parametrize("p", [0.0, 5.0, 30.0, 50.0, 95.0, 100.0])
def test_weighted_percentile_is_numpys_inverted_cdf(p):
    """Weighted percentile = numpy's `percentile(..., weights=, method="inverted_cdf")`, and by hand: the smallest
    value whose share of the total weight (itself and those below) reaches p / 100."""
    obj = _obj("percentile", p=p, weights=W)
    want = float(np.percentile(RSS, p, weights=W, method="inverted_cdf"))
    order = np.argsort(RSS)
    share = np.cumsum(W[order]) / W.sum()
    by_hand = RSS[order][min(int(np.searchsorted(share, p / 100.0 - 1e-12)), RSS.size - 1)]
    assert obj.truth(RSS) == want == by_hand


def test_weighted_coverage_and_min_ignoring_weights():
    """Coverage: sum of covered weights / total (numpy); holds against `required` on that share; min: the same
    as without weights (the worst target is the worst whatever its weight)."""
    cov = _obj("coverage", required=0.8, weights=W)
    share = float(np.sum(W * (RSS >= -90.0)) / W.sum())
    assert cov.truth(RSS) == pytest.approx(share) and share != np.mean(RSS >= -90.0)
    assert cov.stats(RSS).objective_value == pytest.approx(share)
    assert cov.holds(RSS) == (share >= 0.8) and cov.met(cov.stats(RSS)) == (share >= 0.8)
    plain, weighted = _obj("min"), _obj("min", weights=W)
    assert weighted.truth(RSS) == plain.truth(RSS) and weighted.model_grad(RSS)[0] == plain.model_grad(RSS)[0]


@pytest.mark.parametrize("kind,params", [("percentile", {"p": 20}), ("coverage", {})])
def test_weighted_model_gradient_matches_finite_difference(kind, params):
    obj = _obj(kind, weights=W, **params)
    focus = RSS < -70.0
    _, g = obj.model_grad(RSS, focus)
    h = 1e-4
    fd = np.array([(obj.model(RSS + h * e, focus) - obj.model(RSS - h * e, focus)) / (2 * h) for e in np.eye(RSS.size)])
    assert np.all(g[~focus] == 0) and np.abs(g).max() > 1e-3
    np.testing.assert_allclose(g, fd, atol=1e-5 + 1e-4 * np.abs(fd).max())
    assert not np.allclose(g, _obj(kind, **params).model_grad(RSS, focus)[1])  # the weights change it


def test_weights_follow_the_targets_through_the_area_drop():
    """Point weights, the region's 1, an area's weight: one per target; the scene keeps those of kept points; an
    experiment without weights hashes as before; a weight count that does not match the points: one line."""
    from optimizer import objectives
    from optimizer.physics.scene import RadioScene

    exp = street(targets={"points": [[24.0, -32.0, 1.5], [23.0, -32.0, 1.5]], "weights": [2.0, 0.5],
                          "area": {**AREA, "weight": 3.0}}, objective={"kind": "percentile", "p": 10})
    assert exp.target_weights() == [2.0, 0.5] + [3.0] * 55
    rs = RadioScene(exp, device="cpu", threads=1)
    assert rs.target_weights.tolist() == [2.0, 0.5] + [3.0] * 30
    assert objectives.of(exp, rs).weights.tolist() == rs.target_weights.tolist()
    assert street(targets={"area": {**AREA, "weight": 1.0}}).sha256() == street(targets={"area": AREA}).sha256()
    from optimizer.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^test: targets.weights: 1 given for 2 points"):
        street(targets={"points": [[24.0, -32.0, 1.5], [23.0, -32.0, 1.5]], "weights": [2.0]})


def test_min_drjit_model_ignores_a_left_out_target_far_below():
    """A target outside the focus 220 dB below it (a protected point, a blocked target): exp overflows float32
    there; the soft-min and its gradient stay those of the focus (they were NaN: inf * 0)."""
    from optimizer.physics import backend

    backend.init("cpu", 1)
    import drjit as dr

    from optimizer.physics.backend import to_float

    obj = default(1.0)
    v = np.array([-80.0, -82.0, -300.0, -79.0])
    focus = np.array([True, True, False, True])
    x = to_float(v)
    dr.enable_grad(x)
    value = obj.model_dr(x, v, focus)
    dr.backward(value)
    want, grad = obj.model_grad(v, focus)
    assert float(np.array(value)[0]) == pytest.approx(want, abs=1e-3)
    np.testing.assert_allclose(np.array(dr.grad(x)), grad, atol=1e-5)
    many = obj.model_dr_many(to_float(np.tile(v, 2)), np.tile(v, (2, 1)), focus)
    assert np.allclose(many, want, atol=1e-3)
