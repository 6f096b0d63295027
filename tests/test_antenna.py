"""Antennas (issue 23) against independent references: TR 38.901 Table 7.3-1 written out here, Friis in free
space, Sionna's own GO plate paths, finite differences, a hand computation of best-server and SINR, kTB."""

import math
import subprocess
import sys

import numpy as np
import pytest

from optimizer.experiment import with_overrides
from optimizer.physics import backend
from optimizer.physics.geometry import free_space_gain_db, image_method, specular_yaw_pitch, wavelength_m
from optimizer.records import PlatePose

FREQ_HZ = 3.5e9
LAM = wavelength_m(FREQ_HZ)


@pytest.fixture(scope="module", autouse=True)
def _backend():
    backend.init("cpu", threads=2)


@pytest.fixture(scope="module")
def empty(tmp_path_factory):
    folder = tmp_path_factory.mktemp("empty")
    (folder / "scene.xml").write_text('<scene version="2.1.0"></scene>\n')
    return folder


def _exp(folder, transmitters, targets, combine=None, plate_model="go", target_antenna=None, **objective):
    from optimizer.experiment import parse_experiment

    obj = dict(objective, **({"combine": combine} if combine else {}))
    tg = {"points": [list(map(float, p)) for p in targets]}
    if target_antenna:
        tg["antenna"] = target_antenna
    return parse_experiment({
        "name": "antennas", "scene": str(folder), "frequency_hz": FREQ_HZ, "transmitters": transmitters,
        "reflector": {"size_m": [4.0, 4.0], "bounds": {"min": [-5, -5, 0], "max": [5, 5, 10]}},
        "targets": tg, "objective": obj,
        "solver": {"max_depth": 1, "los": True, "samples_per_src": 100_000, "diffraction": False,
                   "plate_model": plate_model}}, "test")


def _scene(exp):
    from optimizer.physics.scene import RadioScene

    return RadioScene(exp, device="cpu", threads=2)


def tr38901_table_7_3_1_db(theta_deg, phi_deg):
    """TR 38.901 Table 7.3-1: A'(theta, phi) [dBi] of one element, theta the zenith angle, phi the azimuth."""
    a_v = -np.minimum(12.0 * ((theta_deg - 90.0) / 65.0) ** 2, 30.0)
    a_h = -np.minimum(12.0 * (phi_deg / 65.0) ** 2, 30.0)
    return -np.minimum(-(a_v + a_h), 30.0) + 8.0


def test_tr38901_gain_matches_table_7_3_1():
    """Sionna's tr38901 element (through optimizer.physics.antenna, both polarisations) equals the TR 38.901
    Table 7.3-1 formula within 0.05 dB at 48 directions, from boresight to the back lobe."""
    from optimizer.physics.antenna import AntennaSpec, gain_db

    theta, phi = np.meshgrid([20.0, 60.0, 90.0, 100.0, 130.0, 170.0], [-170.0, -100.0, -45.0, 0.0, 10.0, 30.0,
                                                                        80.0, 150.0])
    theta, phi = theta.ravel(), phi.ravel()
    t, p = np.radians(theta), np.radians(phi)
    dirs = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=1)
    ref = tr38901_table_7_3_1_db(theta, phi)
    assert ref.max() == 8.0 and ref.min() == -22.0  # boresight and the front-to-back floor are among them
    for pol in ("V", "cross"):
        np.testing.assert_allclose(gain_db(AntennaSpec("tr38901", pol), dirs), ref, atol=0.05)


@pytest.mark.parametrize("antenna", [{"pattern": "tr38901", "azimuth_deg": 120.0, "downtilt_deg": 10.0},
                                     {"pattern": "tr38901", "look_at": None}])
def test_orientation_convention_in_free_space(empty, antenna):
    """A tr38901 transmitter with downtilt 10 deg: the truth (Sionna LoS) gives Friis + 8.0 dBi toward a target
    10 deg below the horizon on the azimuth and + 6.9 dBi (6.86) toward one 10 deg above, within 0.05 dB;
    look_at a point on the boresight is the same antenna."""
    tx = np.array([3.0, -2.0, 20.0])
    az = math.radians(120.0)
    d = 60.0
    targets = [tx + d * np.array([math.cos(math.radians(e)) * math.cos(az), math.cos(math.radians(e)) * math.sin(az),
                                  -math.sin(math.radians(e))]) for e in (10.0, -10.0)]
    if "look_at" in antenna:
        antenna = {"pattern": "tr38901", "look_at": (tx + 7.0 * (targets[0] - tx) / d).tolist()}
    exp = _exp(empty, [{"name": "mast", "position": tx.tolist(), "power_dbm": 0.0, "antenna": antenna}], targets)
    got = _scene(exp).rss_dbm(None) - free_space_gain_db(np.full(2, d), LAM)
    np.testing.assert_allclose(got, [8.0, 8.0 - 12.0 * (20.0 / 65.0) ** 2], atol=0.05)
    assert abs(got[1] - 6.9) < 0.05


def _sector_case(empty, target_antenna=None):
    """A plate at the origin (normal +y), a sector mast whose boresight passes 35 deg beside the plate, and six
    targets whose specular points lie on the plate; GO truth (Sionna's infinite-mirror plate paths)."""
    tx = np.array([-14.0, 18.0, 9.0])
    to_plate = math.degrees(math.atan2(-tx[1], -tx[0]))
    antenna = {"pattern": "tr38901", "polarization": "V", "azimuth_deg": to_plate + 35.0, "downtilt_deg": 6.0}
    targets = np.array([[x, y, 1.5] for x in (8.0, 10.0, 12.0) for y in (12.0, 15.0)])
    exp = _exp(empty, [{"name": "mast", "position": tx.tolist(), "power_dbm": 30.0, "antenna": antenna}], targets,
               target_antenna=target_antenna)
    exp = with_overrides(exp, "test", {"solver.los": False})
    return exp, tx, targets


@pytest.mark.parametrize("target_antenna", [None, {"pattern": "dipole", "polarization": "cross",
                                                   "azimuth_deg": 30.0, "downtilt_deg": 20.0}])
def test_surrogate_sector_plate_path_matches_go_truth(empty, target_antenna):
    """The surrogate's plate path with a sector antenna (and a tilted, cross-polarised dipole at the targets)
    equals Sionna's GO truth for the same plate within 0.5 dB wherever the path exists; without the antenna
    term it would be off by the pattern (more than 3 dB at some target)."""
    from optimizer.physics.surrogate import PlateSurrogate

    exp, tx, targets = _sector_case(empty, target_antenna)
    rs = _scene(exp)
    vec = [0.0, 0.0, 4.0, *specular_yaw_pitch(np.array([0.0, 0.0, 4.0]), tx, targets.mean(0), with_pitch=True)]
    pose = PlatePose(*vec)
    truth = rs.rss_dbm(pose)
    exists = image_method(pose, (4.0, 4.0), tx, targets, LAM)["exists"] & np.isfinite(truth)
    assert exists.sum() >= 4
    sur = PlateSurrogate([tx], [30.0], targets, [(4.0, 4.0)], LAM, antennas=(rs.tx_specs, rs.rx_specs))
    got = sur.evaluate(vec, 1.0, edge_width_m=1e-3, grad=False)["power_dbm"]
    assert np.abs(got[exists] - truth[exists]).max() <= 0.5, got - truth
    iso = PlateSurrogate([tx], [30.0], targets, [(4.0, 4.0)], LAM).evaluate(vec, 1.0, edge_width_m=1e-3, grad=False)
    assert np.abs(iso["power_dbm"][exists] - truth[exists]).max() > 3.0


def test_surrogate_sector_gradient_matches_finite_differences(empty):
    """The reverse-mode gradient of the soft-min objective with the sector antenna's term equals central
    differences of the same model within 3 % (or 0.02 dB per unit) on every pose axis."""
    from optimizer.physics.surrogate import PlateSurrogate

    exp, tx, targets = _sector_case(empty, {"pattern": "hw_dipole", "polarization": "V", "downtilt_deg": 15.0})
    rs = _scene(exp)
    sur = PlateSurrogate([tx], [30.0], targets, [(4.0, 4.0)], LAM, antennas=(rs.tx_specs, rs.rx_specs))
    vec = np.array([0.3, -0.2, 4.0, *specular_yaw_pitch(np.array([0.0, 0.0, 4.0]), tx, targets.mean(0), True)])
    vec[3:] += [2.0, -1.5]
    kw = {"temperature_db": 3.0, "edge_width_m": 0.6}  # a fixed edge width: the Fresnel one is detached by design
    out = sur.evaluate(vec, 1.5, **kw)
    steps = [0.02, 0.02, 0.02, 0.1, 0.1]
    for k, h in enumerate(steps):
        e = np.zeros(5)
        e[k] = h
        fd = (sur.evaluate(vec + e, 1.5, grad=False, **kw)["objective"]
              - sur.evaluate(vec - e, 1.5, grad=False, **kw)["objective"]) / (2 * h)
        assert abs(out["grad"][k] - fd) <= max(0.03 * abs(fd), 0.02), (k, out["grad"][k], fd)


def test_best_server_and_sinr_match_a_hand_computation(empty):
    """Two transmitters of different patterns (so two Sionna solves, one per array): each alone gives its RSS
    per target; with combine sum, best_server and sinr the truth equals the sum, the larger, and the larger
    over the smaller plus kTB*NF (computed here) within 0.01 dB."""
    targets = [[10.0, 0.0, 1.5], [-8.0, 6.0, 1.5], [0.0, -12.0, 1.5], [25.0, 25.0, 1.5]]
    txs = [{"name": "a", "position": [0.0, 0.0, 10.0], "power_dbm": 30.0,
            "antenna": {"pattern": "tr38901", "azimuth_deg": 0.0, "downtilt_deg": 8.0}},
           {"name": "b", "position": [5.0, 20.0, 6.0], "power_dbm": 20.0}]
    alone = np.array([_scene(_exp(empty, [t], targets)).rss_dbm(None) for t in txs])  # [2, N] dBm
    kw = {"bandwidth_hz": 20e6, "noise_figure_db": 9.0}
    got = {c: _scene(_exp(empty, txs, targets, combine=c, **kw)).rss_dbm(None) for c in ("sum", "best_server", "sinr")}
    mw = 10.0 ** (alone / 10.0)
    noise_dbm = -174.0 + 10 * math.log10(20e6) + 9.0
    np.testing.assert_allclose(got["sum"], 10 * np.log10(mw.sum(0)), atol=0.01)
    np.testing.assert_allclose(got["best_server"], alone.max(0), atol=0.01)
    sinr = alone.max(0) - 10 * np.log10(mw.min(0) + 10 ** (noise_dbm / 10))
    np.testing.assert_allclose(got["sinr"], sinr, atol=0.01)
    assert (alone.argmax(0) == 0).any() and (alone.argmax(0) == 1).any()  # each serves somewhere


def test_ktb_at_290_k():
    """kTB at 290 K is -174 dBm/Hz (-173.98); a 20 MHz channel with a 7 dB noise figure: -94 dBm."""
    from optimizer.physics.metrics import noise_mw

    assert abs(10 * math.log10(noise_mw(1.0, 0.0)) + 173.98) < 0.01
    assert abs(10 * math.log10(noise_mw(20e6, 7.0)) + 93.97) < 0.01
    assert noise_mw(None, 7.0) == 0.0


BAD = [
    ("transmitters[0].antenna.pattern", {"antenna": {"pattern": "yagi"}}, None),
    ("transmitters[0].antenna.polarization", {"antenna": {"polarization": "circular"}}, None),
    ("transmitters[0].antenna.azimuth_deg", {"antenna": {"pattern": "tr38901", "azimuth_deg": float("nan")}}, None),
    ("transmitters[0].antenna.downtilt_deg", {"antenna": {"pattern": "tr38901", "downtilt_deg": float("inf")}}, None),
    ("transmitters[0].antenna.look_at", {"antenna": {"pattern": "tr38901", "look_at": [0.0, 0.0, 10.0]}}, None),
    ("objective.bandwidth_hz", {}, {"combine": "sinr"}),
    ("objective.bandwidth_hz", {}, {"combine": "sinr", "bandwidth_hz": -5.0}),
    ("objective.combine", {}, "two"),
]


@pytest.mark.parametrize("key,tx_extra,objective", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_antenna_input_is_one_line_naming_the_key(empty, key, tx_extra, objective):
    from optimizer.errors import ConfigError

    txs = [{"name": "a", "position": [0.0, 0.0, 10.0], **tx_extra}]
    if objective == "two":
        txs.append({"name": "b", "position": [5.0, 0.0, 10.0]})
        objective = {}
    with pytest.raises(ConfigError) as err:
        _exp(empty, txs, [[1.0, 1.0, 1.5]], **(objective or {}))
    lines = str(err.value).splitlines()
    assert len(lines) == 1 and f": {key}:" in lines[0], lines


@pytest.mark.parametrize("combine", ["best_server", "sinr"])
def test_sionna_gradient_refuses_a_combine_it_would_ignore(empty, combine):
    """`search.gradient: sionna` differentiates the power sum over transmitters (Sionna's own solve): with
    `combine: best_server` or `sinr` the experiment is refused, one line naming search.gradient and the way out;
    with `sum` it is accepted."""
    from optimizer.errors import ConfigError
    from optimizer.experiment import with_overrides

    txs = [{"name": "a", "position": [0.0, 0.0, 10.0]}, {"name": "b", "position": [5.0, 0.0, 10.0]}]
    exp = _exp(empty, txs, [[1.0, 1.0, 1.5]], combine=combine, bandwidth_hz=20e6)
    with pytest.raises(ConfigError) as err:
        with_overrides(exp, "test", {"search.gradient": "sionna"})
    lines = str(err.value).splitlines()
    assert len(lines) == 1 and "search.gradient: sionna" in lines[0] and "surrogate" in lines[0], lines
    ok = _exp(empty, txs, [[1.0, 1.0, 1.5]], combine="sum")
    assert with_overrides(ok, "test", {"search.gradient": "sionna"}).search.gradient == "sionna"


def test_bad_antenna_in_a_file_exits_2(tmp_path, empty):
    """`reflectopt run` on a file with an unknown pattern: exit 2, one line naming the key, no traceback, nothing
    written."""
    import yaml

    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump({
        "name": "bad", "scene": str(empty), "frequency_hz": FREQ_HZ,
        "transmitters": [{"name": "a", "position": [0, 0, 10], "antenna": {"pattern": "yagi"}}],
        "reflector": {"size_m": [1, 1], "bounds": {"min": [0, 0, 0], "max": [1, 1, 1]}},
        "targets": {"points": [[1, 1, 1.5]]}}))
    out = subprocess.run([sys.executable, "-m", "optimizer.cli", "run", str(f), "--output", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out
    assert len(out.stderr.strip().splitlines()) == 1 and "transmitters[0].antenna.pattern" in out.stderr
    assert not (tmp_path / "out").exists()


def test_default_antenna_keeps_the_hash_and_the_arrays(empty):
    """An experiment without antenna keys hashes as before (no new keys in its canonical form) and its truth
    uses one isotropic V array for every transmitter and target."""
    exp = _exp(empty, [{"name": "a", "position": [0.0, 0.0, 10.0]}], [[1.0, 1.0, 1.5]])
    import json

    canon = json.loads(exp.canonical_json())
    assert set(canon["transmitters"][0]) == {"name", "position", "power_dbm"}
    assert "antenna" not in canon["targets"] and not {"combine", "bandwidth_hz", "noise_figure_db"} & set(canon["objective"])
    rs = _scene(exp)
    assert rs.tx_groups == [[0]] and all(s.is_default for s in rs.tx_specs + rs.rx_specs)


def test_informed_starts_weight_by_the_pattern(empty):
    """A candidate plate centre behind a sector antenna weighs its front-to-back ratio (30 dB by TR 38.901)
    less than one on its boresight; isotropic transmitters weigh every candidate 1."""
    from optimizer.search.starts import antenna_weights

    txs = [{"name": "mast", "position": [0.0, 0.0, 10.0], "antenna": {"pattern": "tr38901", "azimuth_deg": 90.0}},
           {"name": "ap", "position": [5.0, 0.0, 10.0]}]
    exp = _exp(empty, txs, [[1.0, 1.0, 1.5]], combine="sum")
    centres = np.array([[0.0, 20.0, 10.0], [0.0, -20.0, 10.0], [20.0, 0.0, 10.0]])
    w = antenna_weights(exp, np.array([t["position"] for t in txs], float), centres)
    np.testing.assert_allclose(10 * np.log10(w[:, 0]), [0.0, -30.0, tr38901_table_7_3_1_db(90.0, -90.0) - 8.0],
                               atol=0.05)
    assert (w[:, 1] == 1.0).all()


def test_sinr_surrogate_is_the_serving_plate_path_over_the_rest():
    """With `sinr` terms the surrogate's value per target is the serving transmitter's plate path (that
    transmitter's own one-transmitter surrogate) minus the interference-plus-noise constant, within 0.01 dB."""
    from optimizer.physics.surrogate import PlateSurrogate

    tx = np.array([[-14.0, 18.0, 9.0], [12.0, 25.0, 6.0]])
    targets = np.array([[x, y, 1.5] for x in (-4.0, 6.0, 12.0) for y in (12.0, 15.0)])
    serving = np.array([0, 1, 0, 1, 1, 0])
    rest = np.array([-80.0, -75.0, -90.0, -60.0, -85.0, -70.0])
    vec = [0.0, 0.0, 4.0, 3.0, 2.0]
    got = PlateSurrogate(tx, [30.0, 20.0], targets, [(4.0, 4.0)], LAM, sinr=(serving, rest)).evaluate(
        vec, 1.0, grad=False)["power_dbm"]
    alone = np.array([PlateSurrogate(tx[t:t + 1], [[30.0, 20.0][t]], targets, [(4.0, 4.0)], LAM).evaluate(
        vec, 1.0, grad=False)["power_dbm"] for t in range(2)])
    np.testing.assert_allclose(got, alone[serving, np.arange(6)] - rest, atol=0.01)


def test_sinr_and_sum_with_two_plates_against_a_hand_computation():
    """Two plates, two transmitters (issue 23: `sinr` fell back to the power sum with several plates). The hand
    computation: each transmitter's power at each target as the sum in mW of its four hard-edge image-method
    paths (two single bounces, `image_method`; two plate -> plate double bounces, `double_bounce_points`, Friis
    over the unfolded length). With `sinr` the surrogate (1 mm edges) gives the serving transmitter's power
    minus the interference-plus-noise constant; without (`sum`, and `best_server`, which keeps the power sum),
    the power sum over transmitters; both within 0.001 dB."""
    from optimizer.physics.double_bounce import double_bounce_points
    from optimizer.physics.surrogate import PlateSurrogate

    backend.init("cpu", threads=2)
    tx, p_dbm = np.array([[-6.0, 8.0, 4.0], [7.0, 12.0, 3.0]]), [30.0, 24.0]
    plates = [PlatePose(0.0, 0.0, 3.0, 0.0, 0.0), PlatePose(1.0, 20.0, 3.0, 180.0, 0.0)]  # facing each other
    sizes = [(12.0, 6.0), (12.0, 6.0)]
    targets = np.array([[x, y, 2.0] for x in (-3.0, 0.0, 4.0) for y in (6.0, 14.0)])
    mw = np.zeros((2, len(targets)))
    for t in range(2):
        for k in range(2):
            im = image_method(plates[k], sizes[k], tx[t], targets, LAM)
            mw[t] += np.where(im["exists"], 10.0 ** ((p_dbm[t] + im["gain_db"]) / 10.0), 0.0)
        for i, j in ((0, 1), (1, 0)):
            _, _, length, exists = double_bounce_points(plates[i], plates[j], sizes[i], sizes[j], tx[t], targets)
            mw[t] += np.where(exists, 10.0 ** ((p_dbm[t] + free_space_gain_db(length, LAM)) / 10.0), 0.0)
    serving = np.array([0, 1, 0, 1, 1, 0])
    rest = np.array([-80.0, -75.0, -90.0, -60.0, -85.0, -70.0])
    vecs = [p.as_list() for p in plates]
    kw = {"edge_width_m": 1e-3, "grad": False}
    sinr = PlateSurrogate(tx, p_dbm, targets, sizes, LAM, sinr=(serving, rest)).evaluate(vecs, 1.0, **kw)
    np.testing.assert_allclose(sinr["power_dbm"], 10.0 * np.log10(mw[serving, np.arange(6)]) - rest, atol=1e-3)
    total = PlateSurrogate(tx, p_dbm, targets, sizes, LAM).evaluate(vecs, 1.0, **kw)
    np.testing.assert_allclose(total["power_dbm"], 10.0 * np.log10(mw.sum(axis=0)), atol=1e-3)


def test_a_pattern_registered_with_sionna_works_without_other_changes(empty):
    """A pattern registered with `sionna.rt.register_antenna_pattern` (isotropic, +3.01 dB) is accepted by the
    experiment, and the truth (Friis + 3.01 dB in free space) and the helper's gain both use it, 0.02 dB."""
    import mitsuba as mi
    from sionna.rt.antenna_pattern import PolarizedAntennaPattern, register_antenna_pattern

    from optimizer.physics.antenna import AntennaSpec, gain_db

    def v_double(theta, phi):
        return mi.Complex2f(theta * 0.0 + math.sqrt(2.0), 0.0)

    register_antenna_pattern("test_double", lambda *, polarization, polarization_model="tr38901_2":
                             PolarizedAntennaPattern(v_pattern=v_double, polarization=polarization,
                                                     polarization_model=polarization_model))
    exp = _exp(empty, [{"name": "a", "position": [0.0, 0.0, 10.0], "power_dbm": 0.0,
                        "antenna": {"pattern": "test_double", "azimuth_deg": 30.0}}], [[40.0, 0.0, 10.0]])
    got = _scene(exp).rss_dbm(None)[0] - free_space_gain_db(40.0, LAM)
    assert abs(got - 10 * math.log10(2.0)) <= 0.02
    assert abs(gain_db(AntennaSpec("test_double", "V"), [[1.0, 2.0, 0.5]])[0] - 10 * math.log10(2.0)) <= 0.02
