"""`objective.protect` (optimizer.objectives.protect): the rule against the collateral report's, the constraint
in holds / ranking / summary, the search's shadow penalty against a finite difference, the scene's protected
receivers, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.constants import PROTECT_BROKEN_RANK_DB
from optimizer.objectives.protect import Protected, ProtectRule, ShadowPenalty
from optimizer.registry import OBJECTIVES
from optimizer.report.collateral import collateral_mask
from worlds_helpers import STREET, street, write_yaml

THR = -70.0


def test_a_lost_point_is_a_collateral_cell_of_the_report():
    """On 2000 random (baseline, with plate) pairs around the threshold (no path included), the rule's lost
    points are exactly the report's collateral cells (`collateral_mask`, margin = max_loss_db), for 0 and 1.5 dB."""
    rng = np.random.default_rng(3)
    b = rng.uniform(-80.0, -60.0, 2000)
    r = b - rng.uniform(-3.0, 12.0, 2000)
    b[:20], r[20:40] = -np.inf, -np.inf
    for loss in (0.0, 1.5):
        rule = ProtectRule(b, np.zeros(b.size), THR, loss)
        lost = rule.margins_db(r) < 0
        report = collateral_mask(np.maximum(b, -200.0), np.maximum(r, -200.0), THR, margin_db=loss)
        assert lost.sum() > 100 and np.array_equal(lost, report)


def test_the_rule_by_hand():
    """Baselines -60 (floor -70), -69 (floor -70.5), -80 (uncovered: free), no path (free); margins and verdicts
    written out; with max_area_m2 the lost area points' cells count and an explicit point must never be lost."""
    b = np.array([-60.0, -69.0, -80.0, -np.inf])
    cells = np.array([0.0, 4.0, 4.0, 4.0])
    rule = ProtectRule(b, cells, THR, 1.5)
    assert rule.floor_dbm.tolist() == [-70.0, -70.5, -np.inf, -np.inf]
    c = rule.check([-70.0, -70.6, -120.0, -np.inf])  # point 1 lost by 0.1 dB; the others free or at the floor
    assert (c["held"], c["lost"], c["lost_area_m2"]) == (False, 1, 4.0) and c["margin_db"] == pytest.approx(-0.1)
    assert rule.check([-70.0, -70.5, -120.0, -np.inf])["held"]  # at the floor: kept (lost is strictly below)
    area = ProtectRule(b, cells, THR, 1.5, max_area_m2=4.0)
    assert area.check([-70.0, -70.6, -120.0, -np.inf]) == {"held": True, "margin_db": pytest.approx(-0.1),
                                                            "lost": 1, "lost_area_m2": 4.0, "area_margin_m2": 0.0}
    assert not area.check([-70.1, -60.0, -120.0, -np.inf])["held"]  # the explicit point, 0 m², lost
    assert area.held_each(np.array([[-70.0, -70.6, -1, -1], [-71.0, -60.0, -1, -1]])).tolist() == [True, False]


@pytest.mark.parametrize("kind,params", [("min", {}), ("percentile", {"p": 20}), ("coverage", {"required": 0.5})])
def test_protected_objective_is_the_kind_on_the_targets_plus_the_constraint(kind, params):
    """Targets first (5), protected points after (2): truth, stats, model and gradient are the kind's over the
    targets alone; a broken constraint makes the pose not hold, not meet, and rank PROTECT_BROKEN_RANK_DB lower."""
    inner = OBJECTIVES.get(kind).with_settings(temperature_db=1.0, threshold_dbm=THR, **params)
    obj = Protected(inner, 5, ProtectRule(np.array([-60.0, -65.0]), np.zeros(2), THR, 1.5))
    t = np.array([-75.0, -66.0, -64.0, -69.0, -61.0])
    kept, broken = np.concatenate([t, [-68.0, -66.0]]), np.concatenate([t, [-75.0, -66.0]])
    assert obj.truth(kept) == inner.truth(t) and obj.model(kept) == inner.model(t)
    value, grad = obj.model_grad(kept)
    assert value == inner.model_grad(t)[0] and np.array_equal(grad[:5], inner.model_grad(t)[1])
    assert np.all(grad[5:] == 0)
    s_kept, s_broken = obj.stats(kept), obj.stats(broken)
    assert s_kept.min_rss_dbm == -75.0 and s_kept.protect_held and s_kept.protect_lost == 0
    assert not s_broken.protect_held and s_broken.protect_margin_db == pytest.approx(-5.0)
    assert obj.holds(kept) == inner.holds(t) and not obj.holds(broken)
    assert obj.holds_each(np.stack([kept, broken])).tolist() == [inner.holds(t), False]
    assert obj.score(s_kept) - obj.score(s_broken) == pytest.approx(PROTECT_BROKEN_RANK_DB)
    assert not obj.met(s_broken) and obj.met(s_kept) == inner.met(inner.stats(t))


# --- the search's penalty --------------------------------------------------------------------------------------
def _penalty(baseline_dbm):
    from optimizer.physics import backend

    backend.init("cpu", 1)
    pts = np.array([[20.0, 0.0, 1.5], [20.0, 1.0, 1.5], [20.0, -5.0, 1.5]])
    rule = ProtectRule(np.asarray(baseline_dbm, float), np.zeros(3), THR, 1.5)
    return ShadowPenalty(rule, pts, np.array([[0.0, 0.0, 5.0]]), np.array([30.0]), np.ones((1, 3), bool),
                         3e8 / 3.5e9, 1.0)


def test_penalty_gradient_matches_a_finite_difference():
    """Plate 4 m x 2 m half across the line of sight (its normal along x: yaw -88, pitch 3) of points 1 dB above
    the threshold: the Dr.Jit gradient w.r.t. x, y, z [m], yaw, pitch [deg] = a central difference (float32 lanes:
    steps 1 cm / 0.2 deg, within 3 % of the largest component + 1e-3)."""
    pen = _penalty([-69.0, -69.5, -65.0])
    for vec in ([10.0, 1.4, 3.6, -88.0, 3.0], [10.0, -1.0, 2.9, -84.0, -2.0]):
        v = np.array(vec)
        value, (grad,) = pen.evaluate([v], [[4.0, 2.0]])
        steps = np.array([1e-2, 1e-2, 1e-2, 0.2, 0.2])
        fd = np.array([(pen.evaluate([v + d], [[4.0, 2.0]], False)[0] - pen.evaluate([v - d], [[4.0, 2.0]], False)[0])
                       / (2 * d.max()) for d in np.diag(steps)])
        assert value > 1.0 and np.abs(fd).max() > 0.1
        np.testing.assert_allclose(grad, fd, atol=1e-3 + 0.03 * np.abs(fd).max())


def test_penalty_grows_when_the_plate_blocks_the_line_of_sight():
    """The same points: plate across their line of sight (two of them) vs 12 m aside; points whose power is mostly
    not their line of sight (-20 dBm, the line of sight about -39 dBm: 1 %) cost little."""
    pen = _penalty([-69.0, -69.5, -65.0])
    across, _ = pen.evaluate([[10.0, 0.3, 3.25, -90.0, 0.0]], [[4.0, 2.0]], grad=False)
    aside, _ = pen.evaluate([[10.0, 12.0, 3.25, -90.0, 0.0]], [[4.0, 2.0]], grad=False)
    strong, _ = _penalty([-20.0, -20.0, -20.0]).evaluate([[10.0, 0.3, 3.25, -90.0, 0.0]], [[4.0, 2.0]], grad=False)
    assert across > 3.0 and aside < 0.5 and strong < 1e-6  # aside: the soft-plus of points 1-1.5 dB above their floor


# --- the experiment and the scene ------------------------------------------------------------------------------
CORRIDOR = {"polygon": [[20.0, -20.0], [24.0, -20.0], [24.0, -18.0], [20.0, -18.0]], "z": 1.5, "spacing_m": 2.0}


def test_protected_points_are_receivers_after_the_targets():
    """3 x 2 area points + one explicit point become receivers 15..21 of the street (15 targets); the objective
    splits there, and its rule's baseline is the scene's without the plate."""
    from optimizer import objectives
    from optimizer.physics.scene import RadioScene

    exp = street(**{"objective.protect": {"points": [[22.0, -19.0, 1.5]], "area": CORRIDOR}})
    pts, cells = exp.protect_points()
    assert len(pts) == 7 and cells == [0.0] + [4.0] * 6
    rs = RadioScene(exp, device="cpu", threads=1)
    assert rs.n_targets == 15 and len(rs.targets) == 22 and np.array_equal(rs.targets[15:], np.array(pts))
    base = rs.baseline_dbm()
    obj = objectives.of(exp, rs)
    assert isinstance(obj, Protected) and obj.n == 15 and np.array_equal(obj.rule.baseline_dbm, base[15:])
    assert obj.stats(base).protect_held  # without the plate nothing is lost
    assert street().sha256() == street(**{"objective.protect": None}).sha256()  # no constraint: the same hash


@pytest.mark.parametrize("protect,key,words", [
    ({"points": []}, "objective.protect.points", "empty"),
    ({"area": {"polygon": [[0, 0], [1, 0]]}}, "objective.protect.area", "at least 3 points"),
    ({"max_area_m2": -1}, "objective.protect.max_area_m2", "greater than or equal to 0"),
    ({"points": [[1, 2, 3]], "max_loss_db": ".nan"}, "objective.protect.max_loss_db", "finite"),
    ({}, "objective.protect", "nothing to protect"),
])
def test_bad_protect_is_one_line_naming_the_key(protect, key, words, tmp_path, capsys):
    from optimizer.cli.main import main

    data = {**STREET, "objective": {**STREET["objective"], "protect": protect}}
    f = write_yaml(tmp_path / "bad.yaml", data)
    if protect.get("max_loss_db") == ".nan":
        f.write_text(f.read_text().replace("max_loss_db: .nan", "max_loss_db: .nan").replace("'.nan'", ".nan"))
    assert main(["run", str(f), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0] and words in err[0], err
    assert not (tmp_path / "out").exists()


def test_a_surrogate_world_steps_with_the_penalty():
    """A surrogate world of the street with a protected patch of the main street near the access point (covered
    without the plate): the mode holds the penalty, its gradient is finite, and every truth it records carries the
    constraint's verdict."""
    from optimizer.records import PlatePose
    from optimizer.search.world import World

    patch = {"polygon": [[0.0, -2.0], [4.0, -2.0], [4.0, 2.0], [0.0, 2.0]], "z": 1.5, "spacing_m": 2.0}
    exp = street(**{"objective.protect": {"area": patch}, "search.steps": 2})
    w = World(exp, 0, PlatePose(24.0, 8.0, 5.0, 135.0), device="cpu", threads=1)
    assert w.mode.penalty is not None and w.focus[w.rs.n_targets:].sum() == 0
    value, grad = w.mode.protect_penalty(w.space.from_unit(w.unit))
    assert np.isfinite(value) and value >= 0 and grad.shape == (w.space.dim,) and np.isfinite(grad).all()
    row = w.step()
    assert row.truth.protect_held is not None and row.best.protect_held is not None
