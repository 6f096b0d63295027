"""A band (`frequency_hz` a list, issue 24): input checks, the PO factor and the truth per frequency against the
PO reference integral, the band model against a finite difference, and a run's per-frequency figures."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import test_po as po_tests
from optimizer.physics import po
from optimizer.physics.geometry import free_space_gain_db, wavelength_m
from po_reference import PLATE_FRAME, brute_force_po, db
from worlds_helpers import REPO, STREET, street, write_yaml

BAND_HZ = [3.3e9, 3.55e9, 3.8e9]
CLI = [sys.executable, "-m", "optimizer.cli"]


# --- the experiment key ------------------------------------------------------------------------------------------
def test_a_scalar_is_one_frequency_and_a_list_is_a_band():
    one, band = street(), street(frequency_hz=BAND_HZ)
    assert one.frequency_hz == 3.5e9 and one.frequencies_hz() == [3.5e9] and one.centre_frequency_hz() == 3.5e9
    assert band.frequencies_hz() == BAND_HZ and band.centre_frequency_hz() == pytest.approx(3.55e9)
    assert json.loads(one.canonical_json())["frequency_hz"] == 3.5e9  # a scalar hashes as it always did
    assert one.sha256() != band.sha256()


@pytest.mark.parametrize("value, says", [
    ([], "the list is empty"),
    ([3.3e9, ".nan"], "entry 2: must be a finite number"),
    ([3.3e9, 0.0], "entry 2: 0 is not positive"),
    ([3.3e9, -3.5e9], "entry 2: -3.5e+09 is not positive"),
    ([3.5e9] * 17, "17 frequencies, more than 16"),
])
def test_bad_band_is_one_line_naming_the_key_exit_2(tmp_path, value, says):
    data = json.loads(json.dumps(STREET))
    text = write_yaml(tmp_path / "e.yaml", data).read_text()
    f = tmp_path / "e.yaml"
    entries = ", ".join(v if isinstance(v, str) else repr(float(v)) for v in value)
    f.write_text(text.replace("frequency_hz: 3500000000.0", f"frequency_hz: [{entries}]"))
    assert f"frequency_hz: [{entries}]" in f.read_text()
    r = subprocess.run(CLI + ["run", str(f), "--output", str(tmp_path / "out")], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert ": frequency_hz: " in lines[0] and says in lines[0], lines[0]
    assert not (tmp_path / "out").exists()  # nothing written


# --- the PO factor per frequency -----------------------------------------------------------------------------------
def test_po_factor_at_three_frequencies_matches_the_reference_integral():
    """At 3.3, 3.55 and 3.8 GHz the quadrature's |F|^2 equals the brute-force Kirchhoff integral within 0.1 dB
    (the tolerance of tests/test_po.py), over random geometries; and it does move with frequency (the
    Fresnel ripple): some geometry changes by more than 1 dB across the band."""
    rng = np.random.default_rng(24)
    spread = []
    for i in range(9):
        size, frame, s, o = po_tests._random_geometry(rng, near=i % 3 == 0)
        per_f = []
        for f in BAND_HZ:
            got = po.po_factor(s, o, *frame, size, wavelength_m(f))[0]
            ref = brute_force_po(s, o, *frame, size, wavelength_m(f))
            if db(ref) < -40:
                assert abs(got - ref) < 1e-4
                continue
            assert abs(db(got) - db(ref)) <= 0.1, (i, f, db(got), db(ref))
            per_f.append(db(got))
        if len(per_f) == 3:
            spread.append(max(per_f) - min(per_f))
    assert len(spread) >= 6 and max(spread) > 1.0


def _band_free_space(folder, tx, targets, size):
    from optimizer.experiment import parse_experiment
    from optimizer.physics.scene import RadioScene

    exp = parse_experiment({
        "name": "band-free-space", "scene": str(folder), "frequency_hz": BAND_HZ,
        "transmitters": [{"name": "tx0", "position": list(map(float, tx)), "power_dbm": 0.0}],
        "reflector": {"size_m": list(size), "bounds": {"min": [0, 0, 0], "max": [0, 0, 0]}},
        "targets": {"points": [list(map(float, p)) for p in targets]},
        "solver": {"max_depth": 1, "los": False, "samples_per_src": 300_000, "diffraction": False}}, "test")
    return RadioScene(exp, device="cpu", threads=2)


def test_band_truth_is_per_frequency_po_and_each_targets_worst(tmp_path):
    """A plate alone in free space under plate_model po: each row of the band truth equals Friis at that
    frequency over the unfolded length times the brute-force |F|^2 at that frequency within 0.1 dB (the
    specular point inside, near the edge and off the plate); `rss_dbm` is each target's worst row; the
    scene is back at the band's centre afterwards."""
    from optimizer.records import PlatePose

    folder = po_tests._scene_folder(tmp_path / "empty")
    size, legs, a_values = (1.0, 1.0), 20.0, (0.0, 0.3, 0.49, 0.7)
    tx, rx = po_tests._specular_line(legs, 30.0, a_values)
    rs = _band_free_space(folder, tx, rx, size)
    pose = PlatePose(0.0, 0.0, 0.0, 0.0, 0.0)
    band = rs.band_rss_dbm(pose)
    assert band.shape == (3, len(a_values))
    image = tx * np.array([1, -1, 1])
    for f, row in zip(BAND_HZ, band):
        lam = wavelength_m(f)
        ref = np.array([free_space_gain_db(np.linalg.norm(r - image), lam)
                        + 20 * math.log10(abs(brute_force_po(tx, r, *PLATE_FRAME, size, lam))) for r in rx])
        assert np.abs(row - ref).max() <= 0.1, (f, row - ref)
    np.testing.assert_array_equal(rs.rss_dbm(pose), band.min(axis=0))
    assert float(rs.scene.frequency[0]) == pytest.approx(3.55e9) and rs.frequency_hz == pytest.approx(3.55e9)
    assert rs.evaluations == 2  # one truth evaluation covers the whole band


def test_band_rows_equal_one_frequency_runs():
    """Each row of the band truth (street canyon, plate mounted, plate model po) is what an experiment at that
    frequency alone gives, to the bit: switching the scene's frequency back and forth leaves nothing stale
    (materials, the plate model's wavelength); the frequencies do differ (Sionna's materials are slabs of a
    given thickness: their reflection moves with frequency)."""
    from optimizer.physics.scene import RadioScene
    from optimizer.records import PlatePose

    pose = PlatePose(24.0, 8.0, 5.0, 135.0)
    exp = street(frequency_hz=BAND_HZ)
    rs = RadioScene(exp, device="cpu", threads=2)
    band = rs.band_rss_dbm(pose)
    for f, row in zip(reversed(BAND_HZ), band[::-1]):  # the scalar scenes in another order than the band's
        alone = RadioScene(street(frequency_hz=f), device="cpu", threads=2).rss_dbm(pose)
        np.testing.assert_array_equal(row, alone)
    assert np.ptp(band, axis=0).max() > 0.5


# --- the model: worst over the band, differentiable ----------------------------------------------------------------
TX = [-20.0, 12.0, 8.0]
TARGETS = np.array([[x, 15.0, 1.5] for x in (14.0, 17.0, 20.0, 23.0)])


def _pose():
    """A plate 25 m from the Tx, turned 2 deg off the specular yaw toward the targets' middle: some targets on
    the plate, the outer ones near or past its edge."""
    from optimizer.physics.geometry import specular_yaw_pitch

    c = np.array([0.0, 0.0, 4.0])
    yaw, pitch = specular_yaw_pitch(c, np.array(TX), TARGETS.mean(axis=0), with_pitch=True)
    return np.array([*c, yaw + 2.0, pitch - 1.0])


def _band_model(objective=None):
    from optimizer.physics.band import BandSurrogate
    from optimizer.physics.surrogate import PlateSurrogate

    tx = [TX]
    targets = TARGETS
    models = [PlateSurrogate(tx, [30.0], targets, [(2.0, 1.0)], wavelength_m(f), aperture=True) for f in BAND_HZ]
    return BandSurrogate(models, 1.0), models


def test_band_model_is_the_softmin_over_frequencies_and_targets():
    """With `min`, the band model equals the soft-min (T = 1 dB) over every (frequency, target) pair of the
    per-frequency surrogates' powers, computed here in numpy; its per-target power is each target's soft-min
    over the frequencies (between its worst and its worst + T log 3)."""
    from optimizer.objectives.min import MinObjective
    from optimizer.physics import backend

    backend.init("cpu")
    pose = _pose()
    objective = MinObjective.with_settings(temperature_db=1.0)
    model, models = _band_model()
    r = model.evaluate(pose, 0.5, objective=objective, grad=False)
    p = np.stack([m.evaluate(pose, 0.5, grad=False)["power_dbm"] for m in models])  # [frequencies, targets]
    assert np.ptp(p, axis=0).max() > 0.1  # the frequencies do differ
    lo = p.min()
    assert r["objective"] == pytest.approx(lo - math.log(np.mean(np.exp(-(p - lo)))), abs=1e-9)
    worst = p.min(axis=0)
    assert np.all(r["power_dbm"] >= worst - 1e-9) and np.all(r["power_dbm"] <= worst + math.log(3) + 1e-9)
    many = model.evaluate_many(np.stack([pose, pose + [1.0, 0, 0, 0, 0]]), 0.5, objective=objective)
    assert many["objective"][0] == pytest.approx(r["objective"], abs=1e-6)
    np.testing.assert_allclose(many["power_dbm"][0], r["power_dbm"], atol=1e-6)


def test_band_model_gradient_matches_finite_difference():
    """The band model's gradient (chain rule through the soft-min over frequencies, one linear pass per
    frequency) equals a central finite difference of its value within the tolerance of tests/test_physics.py
    (max error < 2 % of |fd| + 1e-3; edge width held at 0.7 m as there), for `min` and `percentile`, with
    the PO level on (the frequencies' powers differ in shape, not only by the free-space offset)."""
    from optimizer.objectives.min import MinObjective
    from optimizer.objectives.percentile import PercentileObjective
    from optimizer.physics import backend

    backend.init("cpu")
    pose = _pose()
    kw = dict(edge_width_m=0.7)
    for objective in (MinObjective.with_settings(temperature_db=1.0),
                      PercentileObjective.with_settings(temperature_db=1.0, p=25.0)):
        model, _ = _band_model(objective)
        g = model.evaluate(pose, 0.5, objective=objective, **kw)["grad"]
        h = np.array([1e-3, 1e-3, 1e-3, 1e-2, 1e-2])
        fd = np.array([(model.evaluate(pose + h[k] * e, 0.5, objective=objective, grad=False, **kw)["objective"]
                        - model.evaluate(pose - h[k] * e, 0.5, objective=objective, grad=False, **kw)["objective"])
                       / (2 * h[k]) for k, e in enumerate(np.eye(5))])
        assert np.max(np.abs(g - fd)) < 0.02 * np.linalg.norm(fd) + 1e-3, (objective.kind, g, fd)
        assert np.linalg.norm(fd) > 1.0  # a gradient that says something


def test_two_plates_search_a_band():
    """Several plates: the world's model is one multi-plate surrogate per frequency (a `BandSurrogate`), its steps
    give finite model and truth values."""
    from optimizer.experiment.loading import load_experiment
    from optimizer.physics.band import BandSurrogate
    from optimizer.physics.scene import RadioScene
    from optimizer.search.space import PoseSpace
    from optimizer.search.world import World

    exp = load_experiment(REPO / "examples" / "two-plates.yaml")
    exp = exp.model_copy(update={"frequency_hz": [3.3e9, 3.8e9],
                                 "solver": exp.solver.model_copy(update={"samples_per_src": 10000})})
    rs = RadioScene(exp, device="cpu", threads=2)
    space = PoseSpace.of(exp)
    w = World(exp, 0, space.to_pose(space.from_unit(np.full(space.dim, 0.5))), radio_scene=rs,
              baseline_rss=rs.rss_dbm(None))
    assert isinstance(w.mode.surrogate, BandSurrogate) and len(w.mode.surrogate.models) == 2
    for _ in range(2):
        r = w.step()
        assert np.isfinite(r.surrogate_dbm) and np.isfinite(r.objective_dbm)


# --- a run ----------------------------------------------------------------------------------------------------------
def test_run_over_a_band_reports_each_frequency(tmp_path):
    """`reflectopt run` with a band of 3: summary.band holds each frequency's baseline and winner (objective,
    RSS statistics); under `min` the run's figures are the worst of them (each target's worst over the
    band: the min over targets of it is the min over the frequencies' minima); the report has the table."""
    import os

    exp = street(frequency_hz=BAND_HZ, **{"search.worlds": 2, "search.steps": 3, "search.prune": "off"})
    f = write_yaml(tmp_path / "e.yaml", exp)
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONUNBUFFERED": "1"}
    r = subprocess.run(CLI + ["run", str(f), "--output", str(tmp_path / "out"), "--no-progress"],
                       capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (run,) = sorted((tmp_path / "out" / exp.name).iterdir())
    s = json.loads((run / "summary.json").read_text())
    assert s["frequency_hz"] == BAND_HZ
    assert [b["frequency_hz"] for b in s["band"]] == BAND_HZ
    for side in ("baseline", "winner"):
        per_f = [b[side]["min_rss_dbm"] for b in s["band"]]
        if None in per_f:  # a target no path reaches at some frequency: the band's figure is null too
            assert s[side]["min_rss_dbm"] is None
        else:
            assert s[side]["min_rss_dbm"] == pytest.approx(min(per_f), abs=1e-9)
        assert s[side]["coverage"] <= min(b[side]["coverage"] for b in s["band"]) + 1e-12
    assert s["objective"]["winner"] == s["winner"]["min_rss_dbm"]
    assert [b["objective_winner"] for b in s["band"]] == [b["winner"]["min_rss_dbm"] for b in s["band"]]
    report = (run / "report.md").read_text()
    assert "Per frequency (the band)" in report and "3.300 GHz" in report and "3.800 GHz" in report
