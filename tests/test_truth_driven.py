"""The world climbs the truth, not only the model: the residual correction, the trust region and the final
pattern search (polish), each against an independent reference."""

import numpy as np
import pytest

from optimizer.physics import backend
from optimizer.physics.geometry import wavelength_m
from optimizer.records import PlatePose as Pose
from worlds_helpers import street

FREQ_HZ = 3.5e9


@pytest.fixture(scope="module")
def surrogate():
    backend.init("cpu", threads=2)
    from optimizer.physics.surrogate import PlateSurrogate

    tx = np.array([[-45.0, 0.0, 10.0]])
    tg = np.array([[24.0, -20.0, 1.5], [22.0, -30.0, 1.5], [27.0, -25.0, 1.5]])
    return PlateSurrogate(tx, [30.0], tg, [[2.0, 1.0]], wavelength_m(FREQ_HZ))


def test_residual_moves_the_softmin_weights_not_the_per_target_gradients(surrogate):
    """With a large bias on every target but k, the corrected objective's gradient is the gradient of target
    k's own power (finite difference of `power_dbm[k]`, within 2 %); the bias is a constant, so
    `power_dbm` itself is unchanged."""
    pose = np.array([24.0, 8.0, 5.0, 135.0, 10.0])
    kw = dict(edge_factor=0.0, edge_width_m=0.7, temperature_db=1.0)
    plain = surrogate.evaluate(pose, **kw)
    h = 1e-2
    for k in range(3):
        bias = np.full(3, 60.0)
        bias[k] = 0.0
        r = surrogate.evaluate(pose, bias_db=bias, **kw)
        np.testing.assert_allclose(r["power_dbm"], plain["power_dbm"], atol=1e-5)
        fd = np.array([(surrogate.evaluate(pose + h * e, grad=False, **kw)["power_dbm"][k]
                        - surrogate.evaluate(pose - h * e, grad=False, **kw)["power_dbm"][k]) / (2 * h)
                       for e in np.eye(5)])
        assert np.linalg.norm(fd) > 0.05
        assert np.max(np.abs(r["grad"] - fd)) < 0.02 * np.linalg.norm(fd) + 1e-3, (k, r["grad"], fd)


class _QuadraticTruth:
    """A stand-in for the ray tracer: every target's RSS is a concave quadratic of the pose, best at `opt`
    (x, y [m], yaw [deg]); an independent reference for the pattern search."""

    device = "cpu"

    def __init__(self, targets, opt):
        self.targets = np.asarray(targets, float)
        self.opt = np.asarray(opt, float)
        self.calls = 0

    def rss_dbm(self, pose=None, **kw):
        self.calls += 1
        if pose is None:
            return np.full(len(self.targets), -120.0)
        p = pose.plates[0] if hasattr(pose, "plates") else pose
        d = np.array([p.x, p.y, (p.yaw_deg - self.opt[2]) / 10.0]) - np.array([self.opt[0], self.opt[1], 0.0])
        return -60.0 - float(d @ d) + np.arange(len(self.targets)) * 0.5

    def visible(self, a, b):
        return np.ones(len(np.atleast_2d(a)), bool)


def test_polish_converges_on_the_truth_to_within_the_smallest_step():
    """Compass search on the truth alone: from 3 tolerances away on each free axis it reaches the optimum of a
    quadratic truth to within POLISH_MIN_TOL tolerances per axis, and never loses the best."""
    from optimizer.constants import POLISH_MIN_TOL
    from optimizer.search.world import World

    exp = street(**{"reflector.tolerance": {"position_m": 0.1, "yaw_deg": 2.0, "pitch_deg": 1.0},
                    "search.steps": 40, "search.polish_share": 0.5})
    opt = (24.0, 8.0, 130.0)
    truth = _QuadraticTruth([[24.0, -30.0, 1.5], [25.0, -31.0, 1.5]], opt)
    w = World(exp, 0, Pose(24.3, 8.3, 5.0, 136.0), radio_scene=truth, baseline_rss=truth.rss_dbm(None))
    w.truth(w.unit)
    scores = [w.best.score]
    for _ in range(40):
        w.polish()
        scores.append(w.best.score)
    assert all(b >= a for a, b in zip(scores, scores[1:]))
    p = w.best.pose.first
    assert abs(p.x - opt[0]) <= POLISH_MIN_TOL * 0.1 + 1e-6
    assert abs(p.y - opt[1]) <= POLISH_MIN_TOL * 0.1 + 1e-6
    assert abs(p.yaw_deg - opt[2]) <= POLISH_MIN_TOL * 2.0 + 1e-6
    assert w.evaluations == 41  # one truth evaluation per polish step


def test_polish_takes_the_stated_share_of_a_worlds_steps(monkeypatch):
    from optimizer.search.world import World

    exp = street(**{"search.steps": 20, "search.polish_share": 0.25})
    truth = _QuadraticTruth([[24.0, -30.0, 1.5]], (24.0, 8.0, 130.0))
    w = World(exp, 0, Pose(22.0, 8.0, 5.0, 120.0), radio_scene=truth, baseline_rss=truth.rss_dbm(None))
    calls = {"mode": 0, "polish": 0}
    monkeypatch.setattr(w.mode, "step", lambda: (calls.__setitem__("mode", calls["mode"] + 1), w.truth(w.unit))[1])
    real = w.polish
    monkeypatch.setattr(w, "polish", lambda: (calls.__setitem__("polish", calls["polish"] + 1), real())[1])
    for _ in range(20):
        w.step()
    assert calls == {"mode": 15, "polish": 5} and w.polish_steps == 5


def test_trust_region_shrinks_when_the_truth_disagrees_and_grows_back():
    """The trust factor halves when the truth's gain is under a quarter of the corrected model's predicted
    gain, and doubles (up to 1) when it is near it."""
    from optimizer.constants import TRUST_MIN
    from optimizer.objectives import default
    from optimizer.search.modes import ModeStep
    from optimizer.search.world import World

    backend.init("cpu", threads=2)
    exp = street(**{"search.steps": 10})
    targets = [[24.0, -30.0, 1.5], [25.0, -31.0, 1.5]]
    truth = _QuadraticTruth(targets, (24.0, 8.0, 130.0))
    w = World(exp, 0, Pose(24.0, 8.0, 5.0, 130.0), radio_scene=truth, baseline_rss=truth.rss_dbm(None))
    mode = w.mode
    vec = w.space.from_unit(w.unit)
    model = mode.surrogate.evaluate(mode._plate_vecs(vec), w.edge_factor(w.progress(exp.search.inner_steps - 1)),
                                    occlusion_db=mode.occlusion([vec])[0], focus=w.focus, grad=False,
                                    temperature_db=exp.objective.softmin_temperature_db,
                                    offsets=mode.offsets)["power_dbm"]
    temp = exp.objective.softmin_temperature_db
    before = default(temp).model(model, w.focus) - 10.0  # the truth's objective before the step
    mode.last_model = model - 10.0  # the model said 10 dB less there: it predicts a 10 dB gain

    def seen(gain) -> ModeStep:
        mode.last_model = model - 10.0  # every step from the same model level
        return w.record(w.pose, np.full(len(targets), before + gain))  # its objective: before + gain

    assert mode.trust == 1.0
    mode._correct(seen(1.0), before, None, False)  # 10 % of predicted
    assert mode.trust == 0.5
    for _ in range(10):
        mode._correct(seen(-3.0), before, None, False)
    assert mode.trust == TRUST_MIN
    mode._correct(seen(9.0), before, None, False)  # 90 %: agrees
    assert mode.trust == 2 * TRUST_MIN
    mode._correct(seen(-3.0), before, None, True)  # an exploration jump
    assert mode.trust == 2 * TRUST_MIN  # says nothing about the model's step
    # and the residual is the truth minus the model, clipped
    np.testing.assert_allclose(mode.residual, np.clip(before - 3.0 - model, -10.0, 10.0), atol=1e-6)
