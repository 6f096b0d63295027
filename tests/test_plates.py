"""Several reflectors: the experiment's `reflectors:` list and its bad input, plate overlap, the multi-plate
surrogate against the image method (each plate alone) and an analytic two-mirror (corner) double bounce,
Sionna's double bounce against the same analytic case, and a two-plate winner scene re-evaluated by Sionna."""

from __future__ import annotations

import copy
import math
import subprocess
import sys

import numpy as np
import pytest
from worlds_helpers import REPO, STREET, write_yaml

from optimizer.errors import ConfigError
from optimizer.experiment import parse_experiment
from optimizer.physics.geometry import image_method, wavelength_m
from optimizer.records import JointPose, PlatePose

FREQ_HZ = 3.5e9
LAM = wavelength_m(FREQ_HZ)


def two_plates(**second):
    data = copy.deepcopy(STREET)
    r = data.pop("reflector")
    data["reflectors"] = [dict(r, name="north"),
                          dict(r, name="south", bounds={"min": [20.0, -20.0, 5.0], "max": [28.0, -19.0, 5.0]},
                               **second)]
    return data


def _error(data) -> str:
    with pytest.raises(ConfigError) as err:
        parse_experiment(data, "e.yaml")
    lines = str(err.value).splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_reflectors_list_and_shorthand():
    exp = parse_experiment(two_plates(), "t")
    assert [r.name for r in exp.plates()] == ["north", "south"]
    one = parse_experiment(copy.deepcopy(STREET), "t")
    assert [r.name for r in one.plates()] == ["plate-1"] and one.reflector is one.plates()[0]
    # the shorthand's hash is what it was before the list existed (no name, no reflectors key)
    assert '"reflectors"' not in one.canonical_json() and '"name": "plate-1"' not in one.canonical_json()
    data = two_plates()
    for r in data["reflectors"]:
        r.pop("name")
    assert [r.name for r in parse_experiment(data, "t").plates()] == ["plate-1", "plate-2"]


def test_bad_reflectors_are_one_line_naming_the_key(tmp_path):
    data = two_plates()
    data["reflectors"] = []
    assert "e.yaml: reflectors: the list is empty" in _error(data)
    data = two_plates()
    data["reflector"] = data["reflectors"][0]
    assert "e.yaml: reflectors: given together with reflector; keep one" in _error(data)
    data = two_plates()
    data["reflectors"][1]["name"] = "north"
    assert "e.yaml: reflectors: plate name 'north' is given twice" in _error(data)
    # two 4 m plates fixed in the same wall plane with centres 1 m apart must overlap
    data = two_plates()
    for k, r in enumerate(data["reflectors"]):
        r["bounds"] = {"min": [20.0 + k, 8.0, 5.0], "max": [20.0 + k, 8.0, 5.0]}
        r["yaw_deg"] = {"min": 0, "max": 0}
    assert "e.yaml: reflectors: the bounds of 'north' and 'south' force the plates to overlap" in _error(data)
    # the same plates 1 m apart but parallel (yaw 90: planes x = 20 and x = 21) do not
    for r in data["reflectors"]:
        r["yaw_deg"] = {"min": 90, "max": 90}
    parse_experiment(data, "t")
    data = two_plates()
    data["search"]["gradient"] = "sionna"
    assert "e.yaml: search.gradient: sionna moves one plate only" in _error(data)
    # and through the command line: exit 2, one line, no traceback
    bad = two_plates()
    bad["reflectors"][1]["name"] = "north"
    f = write_yaml(tmp_path / "e.yaml", bad)
    r = subprocess.run([sys.executable, "-m", "optimizer.cli", "run", str(f)], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "reflectors: plate name 'north'" in lines[0], r.stderr


def test_one_entry_reflectors_list_runs_a_world(tmp_path):
    """`reflectors:` with one plate runs exactly as the `reflector:` shorthand (the one-plate model)."""
    from optimizer.physics import backend

    backend.init("cpu", threads=1)
    from optimizer.search.world import World

    short = parse_experiment(copy.deepcopy(STREET), "t")
    data = copy.deepcopy(STREET)
    data["reflectors"] = [data.pop("reflector")]
    listed = parse_experiment(data, "t")
    start = JointPose.single(PlatePose(22.0, 8.0, 5.0, 120.0))
    from optimizer.physics.scene import RadioScene

    rows = []
    for exp in (short, listed):
        rs = RadioScene(exp, device="cpu", threads=1)
        w = World(exp, 0, start, radio_scene=rs, baseline_rss=rs.rss_dbm(None))
        rows.append(w.step())
    assert rows[0].pose == rows[1].pose and rows[0].truth == rows[1].truth


def test_plate_distance_and_overlap():
    from optimizer.physics.overlap import overlapping_pairs, plate_distance

    a = PlatePose(0.0, 0.0, 0.0, 0.0)  # in the x-z plane
    # parallel, 0.5 m apart along the normal: distance 0.5 m
    assert plate_distance(a, (2, 2), PlatePose(0.0, 0.5, 0.0, 0.0), (2, 2)) == pytest.approx(0.5, abs=1e-9)
    # crossing at right angles through the centre: distance 0
    assert plate_distance(a, (2, 2), PlatePose(0.0, 0.0, 0.0, 90.0), (2, 2)) == pytest.approx(0.0, abs=6e-3)
    # side by side in one plane with a 0.3 m gap
    assert plate_distance(a, (2, 2), PlatePose(2.3, 0.0, 0.0, 0.0), (2, 2)) == pytest.approx(0.3, abs=1e-6)
    j = JointPose(plates=[a, PlatePose(1.0, 0.0, 0.0, 0.0), PlatePose(10.0, 0.0, 0.0, 0.0)])
    assert overlapping_pairs(j, [(2, 2)] * 3) == [(0, 1)]


def test_overlapping_steps_are_rejected():
    """A pose space of two plates reports overlap; the world's Adam step never lands in it."""
    from optimizer.search.space import PoseSpace

    data = two_plates()
    data["reflectors"][1]["bounds"] = {"min": [20.0, 7.5, 5.0], "max": [28.0, 8.5, 5.0]}  # the same box
    exp = parse_experiment(data, "t")
    space = PoseSpace.of(exp)
    same = space.to_unit(space.to_vec(JointPose(plates=[PlatePose(24.0, 8.0, 5.0, 135.0)] * 2)))
    assert space.overlaps(same)
    apart = space.to_unit(space.to_vec(JointPose(plates=[PlatePose(20.5, 8.0, 5.0, 135.0),
                                                         PlatePose(27.5, 8.0, 5.0, 135.0)])))
    assert not space.overlaps(apart)


@pytest.fixture(scope="module")
def drjit_cpu():
    from optimizer.physics import backend

    backend.init("cpu", threads=1)


def test_two_plate_surrogate_matches_image_method_per_plate(drjit_cpu):
    """With a tiny edge width each plate's single-bounce path is the hard-edge image method of that plate alone
    (within 0.01 dB where it exists, at least 40 dB below where it does not), and the total is their power sum
    (no double bounce between two plates back to back)."""
    from optimizer.physics.surrogate import PlateSurrogate

    from optimizer.physics.geometry import plate_frame

    tx = np.array([-45.0, 0.0, 10.0])
    poses = [PlatePose(24.0, 8.0, 5.0, 140.0), PlatePose(24.0, -19.5, 5.0, 35.0)]
    sizes = [(4.0, 2.0), (6.0, 3.0)]
    rng = np.random.default_rng(3)
    targets = []  # 12 per plate: 20 m along the specular ray from points on and just off the plate
    for p, s in zip(poses, sizes):
        u, v, n = plate_frame(p.yaw_deg, p.pitch_deg)
        ab = rng.uniform(-0.65, 0.65, (40, 2))
        ab = ab[np.all(np.abs(np.abs(ab) - 0.5) > 0.03, axis=1)][:12]  # not within 3 % of an edge
        for a, b in ab * np.array(s):
            q = np.array(p.position) + a * u + b * v
            d = (q - tx) / np.linalg.norm(q - tx)
            targets.append(q + 20.0 * (d - 2.0 * np.dot(d, n) * n))
    targets = np.array(targets)
    sur = PlateSurrogate([tx], [30.0], targets, sizes, LAM)
    r = sur.evaluate([np.array(p.as_list()) for p in poses], edge_factor=0.0, edge_width_m=1e-4, grad=False)
    any_hit = np.zeros(len(targets), bool)
    for k, (p, s) in enumerate(zip(poses, sizes)):
        ref = image_method(p, s, tx, targets, LAM)
        hit = ref["exists"]
        any_hit |= hit
        assert 3 <= hit.sum() <= len(targets) - 3, k  # the case exercises both sides of the edges
        np.testing.assert_allclose(r["paths_dbm"][k][hit], 30.0 + ref["gain_db"][hit], atol=0.01)
        assert np.all(r["paths_dbm"][k][~hit] < 30.0 + ref["gain_db"].max() - 40.0)
    lin = np.sum(10.0 ** (r["paths_dbm"][:, any_hit] / 10.0), axis=0)
    np.testing.assert_allclose(r["power_dbm"][any_hit], 10.0 * np.log10(lin), atol=1e-3)
    assert np.all(r["paths_dbm"][2:][:, any_hit] < r["power_dbm"][any_hit] - 40.0)  # no double bounce here


CORNER = [PlatePose(5.5, 0.0, 1.5, 0.0), PlatePose(0.0, 5.5, 1.5, 90.0)]  # planes y = 0, x = 0; 0.5 m gap
CORNER_SIZE = [(10.0, 3.0), (10.0, 3.0)]
CORNER_TX = np.array([3.0, 6.0, 1.5])
CORNER_RX = np.array([[7.0, 2.0, 1.5]])
# A 90 deg corner reflector: two bounces mirror the Tx through the corner's axis, to (-3, -6). Via the
# x = 0 plate first: specular points (0, 3.6) then (4.5, 0), both on their plates; the other order would
# need (0, -3.6), off its plate.
CORNER_LENGTH_M = math.hypot(7.0 + 3.0, 2.0 + 6.0)


def test_double_bounce_matches_analytic_corner_reflector(drjit_cpu):
    from optimizer.physics.double_bounce import double_bounce_points
    from optimizer.physics.surrogate import PlateSurrogate

    sur = PlateSurrogate([CORNER_TX], [0.0], CORNER_RX, CORNER_SIZE, LAM)
    r = sur.evaluate([np.array(p.as_list()) for p in CORNER], edge_factor=0.0, edge_width_m=1e-4, grad=False)
    names = sur.path_names
    expected = 20.0 * math.log10(LAM / (4.0 * math.pi * CORNER_LENGTH_M))
    assert r["paths_dbm"][names.index("1>0")][0] == pytest.approx(expected, abs=0.01)
    assert r["paths_dbm"][names.index("0>1")][0] < expected - 40.0
    qi, qj, length, exists = double_bounce_points(CORNER[1], CORNER[0], *CORNER_SIZE[::-1], CORNER_TX, CORNER_RX)
    np.testing.assert_allclose(qi[0], [0.0, 3.6, 1.5], atol=1e-9)
    np.testing.assert_allclose(qj[0], [4.5, 0.0, 1.5], atol=1e-9)
    assert exists[0] and length[0] == pytest.approx(CORNER_LENGTH_M)
    # the gradient matches a finite difference (plate 0 moved along its normal; fixed edge width: the
    # Fresnel-scaled width is detached by design)
    kw = {"edge_factor": 0.0, "edge_width_m": 0.5}
    g = sur.evaluate([np.array(p.as_list()) for p in CORNER], grad=True, **kw)["grad"]
    h = 1e-2
    up = [np.array(p.as_list()) for p in CORNER]
    dn = [np.array(p.as_list()) for p in CORNER]
    up[0][1] += h
    dn[0][1] -= h
    fd = (sur.evaluate(up, grad=False, **kw)["objective"] - sur.evaluate(dn, grad=False, **kw)["objective"]) / (2 * h)
    assert abs(g[0][1]) > 0.1 and g[0][1] == pytest.approx(fd, rel=0.02, abs=1e-3)


# --- the multi-plate surrogate against a float64 numpy reference (value, gradient, batch, kernels) ----------
DBN = 10.0 / math.log(10.0)  # dB per neper of power
WIDTH_M = 0.3  # a fixed edge width (the Fresnel-scaled one is detached by design: no finite difference of it)
REF_TX = np.array([[3.0, 6.0, 1.5], [2.5, 7.5, 3.0]])
REF_TX_DBM = np.array([0.0, -3.0])
REF_RX = np.array([[7.0, 2.0, 1.5], [6.5, 2.5, 1.0], [8.0, 1.5, 2.0], [4.0, 3.0, 1.5], [6.0, 4.0, 2.5]])
REF_FOCUS = np.array([True, True, False, True, True])
REF_SIZE = [(3.0, 1.2), (2.5, 1.0)]  # small enough that some specular points lie near or past an edge


def _ls(x):
    return np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x)))


def _local(pose, pts):
    from optimizer.physics.geometry import plate_frame

    u, v, n = plate_frame(pose.yaw_deg, pose.pitch_deg)
    d = np.atleast_2d(pts) - np.array(pose.position)
    return d @ u, d @ v, d @ n


def _ref_single_db(pose, size, tx, rx):
    """The one-plate soft-edged image method, written out in float64 (the model's formulas)."""
    (at,), (bt,), (st,) = _local(pose, tx)
    ar, br, sr = _local(pose, rx)
    side = 1.0 if st >= 0 else -1.0
    st_e, sr_e = max(st * side, 1e-3), np.maximum(sr * side, 1e-3)
    frac = st_e / (st_e + sr_e)
    aq, bq = at + (ar - at) * frac, bt + (br - bt) * frac
    length = np.sqrt((ar - at) ** 2 + (br - bt) ** 2 + (st_e + sr_e) ** 2)
    hw, hh = 0.5 * size[0], 0.5 * size[1]
    soft = (_ls((hw - aq) / WIDTH_M) + _ls((hw + aq) / WIDTH_M) + _ls((hh - bq) / WIDTH_M) + _ls((hh + bq) / WIDTH_M)
            + _ls(sr * side / WIDTH_M))
    return 20.0 * np.log10(LAM / (4.0 * math.pi * length)) + DBN * soft


def _ref_double_db(pi, pj, si, sj, tx, rx):
    """Tx -> plate i -> plate j -> rx by the image method with soft edges and side conditions (float64)."""
    from optimizer.physics.geometry import plate_frame

    (ui, vi, ni), (uj, vj, nj) = plate_frame(pi.yaw_deg, pi.pitch_deg), plate_frame(pj.yaw_deg, pj.pitch_deg)
    ci, cj = np.array(pi.position), np.array(pj.position)
    s_r = (rx - cj) @ nj
    side_r = np.where(s_r >= 0, 1.0, -1.0)
    st = float((tx - ci) @ ni)
    side_t = 1.0 if st >= 0 else -1.0
    t1 = tx - 2.0 * st * ni  # the Tx's image in plate i, then in plate j
    s1 = float((t1 - cj) @ nj)
    t2 = t1 - 2.0 * s1 * nj
    f = np.maximum(s_r * side_r, 1e-3) / (np.maximum(s_r * side_r, 1e-3) + np.maximum(s1 * side_r, 1e-3))
    qj = rx + (t2 - rx) * f[:, None]
    s_q = ((qj - ci) @ ni) * side_t
    g = np.maximum(s_q, 1e-3) / (np.maximum(s_q, 1e-3) + max(abs(st), 1e-3))
    qi = qj + (t1 - qj) * g[:, None]
    ai, bi, aj, bj = (qi - ci) @ ui, (qi - ci) @ vi, (qj - cj) @ uj, (qj - cj) @ vj
    soft = sum(_ls((0.5 * s[0] - abs_) / WIDTH_M) + _ls((0.5 * s[0] + abs_) / WIDTH_M)
               for s, abs_ in ((si, ai), (sj, aj)))
    soft = soft + sum(_ls((0.5 * s[1] - b) / WIDTH_M) + _ls((0.5 * s[1] + b) / WIDTH_M) for s, b in ((si, bi), (sj, bj)))
    soft = soft + _ls(s1 * side_r / WIDTH_M) + _ls(s_q / WIDTH_M)
    return 20.0 * np.log10(LAM / (4.0 * math.pi * np.linalg.norm(t2 - rx, axis=1))) + DBN * soft


def _power_sum(dbs, axis=0):
    return 10.0 * np.log10(np.sum(10.0 ** (np.asarray(dbs) / 10.0), axis=axis))


def _ref_objective(vecs, offs, occl):
    """The whole model in float64: each path per Tx (occlusion subtracted) power-summed over Tx, its soft-min
    over its tolerance lanes (0.5 dB; a double bounce: plate i over its corners with j nominal, then j over
    its corners), the power sum over paths, the soft-min over the focus targets (1 dB)."""
    from optimizer.physics.tolerance import offset_pose

    poses = [PlatePose.from_seq(list(v)) for v in vecs]

    def per_tx(fn, q):
        return _power_sum([REF_TX_DBM[t] + fn(REF_TX[t]) - occl[q][t] for t in range(len(REF_TX))])

    def worst(lanes):  # [K, N]
        lo = lanes.min(axis=0)
        return lo - 0.5 * np.log(np.mean(np.exp(-(lanes - lo) / 0.5), axis=0))

    paths = [worst(np.array([per_tx(lambda tx, o=o, k=k: _ref_single_db(offset_pose(poses[k], o, REF_FRAMES[k]),
                                                                        REF_SIZE[k], tx,
                                                                        REF_RX), k) for o in offs[k]]))
             for k in range(2)]
    for q, (i, j) in enumerate([(0, 1), (1, 0)], start=2):
        lanes = [(offset_pose(poses[i], o, REF_FRAMES[i]), poses[j]) for o in offs[i]] + \
                [(poses[i], offset_pose(poses[j], o, REF_FRAMES[j])) for o in offs[j]]
        si, sj = REF_SIZE[i], REF_SIZE[j]
        paths.append(worst(np.array([per_tx(lambda tx, a=a, b=b, si=si, sj=sj: _ref_double_db(a, b, si, sj, tx, REF_RX),
                                            q) for a, b in lanes])))
    total = _power_sum(paths)[REF_FOCUS]
    lo = total.min()
    return lo - np.log(np.mean(np.exp(-(total - lo)))), np.array(paths)


REF_FRAMES = (-20.0, 110.0)  # the plates' wall frames [deg]: turned away from the plates (yaw about 0 and 90)


def _world(offs):
    """The wall-frame corners as the scene-frame moves the surrogate takes (`tolerance.world_offsets`)."""
    from optimizer.physics.tolerance import world_offsets

    return [world_offsets(o, f) for o, f in zip(offs, REF_FRAMES)]


def _ref_case():
    from optimizer.physics.tolerance import corner_offsets

    rng = np.random.default_rng(11)
    vecs = [np.array(p.as_list()) + np.array([0.2, -0.1, 0.1, 2.0, 1.5]) * rng.normal(size=5) for p in CORNER]
    offs = [corner_offsets(np.array([0.05, 0.05, 0.0, 1.0, 0.0])), corner_offsets(np.array([0.0, 0.0, 0.05, 0.0, 1.0]))]
    occl = [np.where(rng.random((2, len(REF_RX))) < 0.25, 20.0, 0.0) for _ in range(4)]
    return vecs, offs, occl


def test_multi_surrogate_value_and_gradient_match_a_float64_reference(drjit_cpu):
    """Two plates of a corner reflector, two Tx, tolerance corners on both plates, occlusion penalties, a focus
    mask: every path, the objective and its gradient w.r.t. both plates' five parameters agree with the model
    written out in float64 numpy (finite differences for the gradient)."""
    from optimizer.physics.surrogate import PlateSurrogate

    vecs, offs, occl = _ref_case()
    sur = PlateSurrogate(REF_TX, REF_TX_DBM, REF_RX, REF_SIZE, LAM)
    r = sur.evaluate(vecs, edge_factor=0.0, edge_width_m=WIDTH_M, occlusion_db=occl, focus=REF_FOCUS,
                     offsets=_world(offs))
    ref, ref_paths = _ref_objective(vecs, offs, occl)
    assert np.ptp(ref_paths) > 20.0 and ref_paths[2:].max() > ref_paths[:2].min()  # the double bounces count
    np.testing.assert_allclose(r["paths_dbm"], ref_paths, atol=2e-3)
    assert r["objective"] == pytest.approx(ref, abs=2e-3)
    h = 1e-4
    fd = np.zeros((2, 5))
    for k in range(2):
        for c in range(5):
            up, dn = [v.copy() for v in vecs], [v.copy() for v in vecs]
            up[k][c] += h
            dn[k][c] -= h
            fd[k, c] = (_ref_objective(up, offs, occl)[0] - _ref_objective(dn, offs, occl)[0]) / (2 * h)
    assert np.abs(fd).max() > 0.5
    np.testing.assert_allclose(r["grad"], fd, rtol=5e-3, atol=5e-3 * np.abs(fd).max())


def test_multi_surrogate_batch_equals_one_by_one_and_compiles_once(drjit_cpu):
    """`evaluate_many` gives each pose what `evaluate` gives it (objective, total and per-path power), and a
    second evaluation at other poses compiles no new kernel (host arrays handed to Dr.Jit aligned)."""
    import drjit as dr

    from optimizer.physics.surrogate import PlateSurrogate

    vecs, offs, occl = _ref_case()
    sur = PlateSurrogate(REF_TX, REF_TX_DBM, REF_RX, REF_SIZE, LAM)
    rng = np.random.default_rng(5)
    poses = [[v + rng.normal(0.0, 0.3, 5) for v in vecs] for _ in range(5)]
    kw = {"edge_factor": 0.7, "focus": REF_FOCUS, "offsets": _world(offs)}
    many = sur.evaluate_many(poses, occlusion_db=[occl] * len(poses), **kw)
    one = [sur.evaluate(p, occlusion_db=occl, grad=False, **kw) for p in poses]
    np.testing.assert_allclose(many["objective"], [o["objective"] for o in one], rtol=1e-6)
    np.testing.assert_allclose(many["power_dbm"], [o["power_dbm"] for o in one], rtol=1e-6)
    np.testing.assert_allclose(many["paths_dbm"], [o["paths_dbm"] for o in one], rtol=1e-6)
    assert np.ptp(many["objective"]) > 1.0  # the poses differ
    sur.evaluate(poses[0], occlusion_db=occl, grad=True, **kw)
    dr.set_flag(dr.JitFlag.KernelHistory, True)
    try:
        dr.kernel_history()
        for p in poses[1:]:
            sur.evaluate(p, occlusion_db=occl, grad=True, **kw)
        hist = [e for e in dr.kernel_history() if e["type"] == dr.KernelType.JIT]
    finally:
        dr.set_flag(dr.JitFlag.KernelHistory, False)
    assert hist and not [e for e in hist if not e["cache_hit"]]


def _empty_scene(path):
    path.mkdir(parents=True, exist_ok=True)
    (path / "scene.xml").write_text('<scene version="2.1.0"></scene>\n')
    return path


def _corner_exp(folder, plate_model="go"):
    refl = [{"name": f"m{k}", "size_m": list(s), "bounds": {"min": list(p.position), "max": list(p.position)},
             "yaw_deg": {"min": p.yaw_deg, "max": p.yaw_deg}}
            for k, (p, s) in enumerate(zip(CORNER, CORNER_SIZE))]
    return parse_experiment({
        "name": "corner", "scene": str(folder), "frequency_hz": FREQ_HZ,
        "transmitters": [{"name": "tx", "position": CORNER_TX.tolist(), "power_dbm": 0.0}],
        "reflectors": refl, "targets": {"points": CORNER_RX.tolist()},
        "solver": {"max_depth": 2, "los": False, "samples_per_src": 200_000, "diffraction": False,
                   "plate_model": plate_model}}, "test")


def test_sionna_double_bounce_and_serving_plate(tmp_path):
    """Sionna's plate -> plate path in the corner case carries the free-space power of the analytic length
    (metal: |reflection| ~ 1 per bounce) within 0.1 dB; targets.csv's serving plate names the plates of the
    strongest path."""
    from optimizer.physics.plate_model import PlateModel
    from optimizer.physics.scene import RadioScene

    rs = RadioScene(_corner_exp(_empty_scene(tmp_path / "s")), device="cpu", threads=1)
    pose = JointPose(plates=CORNER)
    paths = rs.paths(pose)
    a2 = PlateModel.path_power(paths)[0, 0]
    inter = np.array(paths.interactions, dtype=np.uint32).reshape(-1, a2.size)
    doubles = np.flatnonzero((inter != 0).sum(axis=0) == 2)
    assert doubles.size == 1
    got = 10.0 * math.log10(a2[doubles[0]])
    assert got == pytest.approx(20.0 * math.log10(LAM / (4.0 * math.pi * CORNER_LENGTH_M)), abs=0.1)
    serving = rs.serving_plates(pose)
    strongest = int(np.argmax(a2))
    expect = "m1+m0" if strongest == doubles[0] else None
    if expect is None:  # a single bounce is the strongest: name its plate
        k = int(np.flatnonzero(inter[:, strongest])[0])
        obj = np.array(paths.objects, dtype=np.uint32).reshape(-1, a2.size)[k, strongest]
        expect = ["m0", "m1"][rs.plate_model.plate_ids().index(int(obj))]
    assert serving == [expect]


def test_two_plate_winner_scene_reloads_within_0p1_db(tmp_path):
    """winner_scene/ with two plates: Sionna's load_scene holds both, and the truth of that scene (the plates
    now scene geometry) is the reported truth within 0.1 dB."""
    from optimizer.physics.scene import RadioScene

    exp = parse_experiment(dict(two_plates(), solver={**STREET["solver"], "plate_model": "go"}), "t")
    rs = RadioScene(exp, device="cpu", threads=1)
    pose = JointPose(plates=[PlatePose(23.7, 8.26, 5.0, 139.2), PlatePose(24.0, -19.5, 5.0, 35.0)])
    reported = rs.rss_dbm(pose)
    dest = rs.export_with_plate(pose, tmp_path / "winner_scene")
    import sionna.rt as rt

    names = list(rt.load_scene(str(dest / "scene.xml"), merge_shapes=False).objects)
    assert sum("reflectopt-plate" in n for n in names) == 2
    again = RadioScene(exp, device="cpu", threads=1, with_plate=False, scene_xml=dest / "scene.xml").rss_dbm(None)
    ok = np.isfinite(reported)
    assert ok.sum() >= 3 and np.array_equal(ok, np.isfinite(again))
    np.testing.assert_allclose(again[ok], reported[ok], atol=0.1)
    # and the plates change the truth (the check is not of an empty mount)
    assert not np.allclose(rs.rss_dbm(None)[ok], reported[ok], atol=0.1)


def test_tolerance_check_per_plate_boxes_and_fail_fast():
    """Each plate moves over its own box (its own tolerance) with the other nominal; a fail-fast check that
    stops in the first plate's box still reports both plates (the second: nothing checked)."""
    from optimizer.physics import tolerance

    data = two_plates()
    data["reflectors"][0]["tolerance"] = {"position_m": 0.05, "yaw_deg": 0.0, "pitch_deg": 0.0}  # 3 axes: 8 corners
    data["reflectors"][1]["tolerance"] = {"position_m": 0.0, "yaw_deg": 1.0, "pitch_deg": 0.0}  # 1 axis: 2 corners
    exp = parse_experiment(data, "t")
    nominal = JointPose(plates=[PlatePose(24.0, 8.0, 5.0, 140.0), PlatePose(24.0, -19.5, 5.0, 35.0)])
    seen = []

    class Truth:  # covered unless the south plate is turned more than 0.5 deg
        def rss_dbm(self, pose, samples_per_src=None):
            seen.append(pose)
            bad = abs(pose.plates[1].yaw_deg - 35.0) > 0.5
            return np.full(15, -100.0 if bad else -80.0)

    chk, _ = tolerance.check(Truth(), nominal, exp, interior=0)
    assert chk.poses_checked == 1 + 8 + 2 and [p.poses_checked for p in chk.plates] == [8, 2]
    assert all(p.plates[1] == nominal.plates[1] for p in seen[1:9])  # plate 1's box: plate 2 nominal
    assert all(p.plates[0] == nominal.plates[0] for p in seen[9:])
    assert [p.holds for p in chk.plates] == [True, False] and not chk.holds
    assert [p.name for p in chk.plates] == ["north", "south"]

    class Failing(Truth):
        def rss_dbm(self, pose, samples_per_src=None):
            return np.full(15, -100.0 if len(seen) > 1 else -80.0) if seen.append(pose) is None else None

    seen.clear()
    chk, _ = tolerance.check(Failing(), nominal, exp, interior=0, fail_fast=True)
    assert not chk.complete and [p.poses_checked for p in chk.plates] == [1, 0]
    assert [p.complete for p in chk.plates] == [False, False] and chk.plates[1].holds


def test_evaluate_tolerance_prints_each_plate_and_grid_refuses_several(tmp_path):
    """`evaluate --tolerance` with two plates prints each plate's own box; `grid` (one plate's exhaustive
    grid) refuses several plates in one line, exit 2."""
    import yaml

    data = two_plates()
    data["reflectors"][0]["tolerance"] = {"position_m": 0.05, "yaw_deg": 0.0, "pitch_deg": 0.0}
    data["reflectors"][1]["tolerance"] = {"position_m": 0.0, "yaw_deg": 1.0, "pitch_deg": 0.0}
    data["solver"] = {**STREET["solver"], "samples_per_src": 5000, "max_depth": 1}
    f = tmp_path / "e.yaml"
    f.write_text(yaml.safe_dump(data))
    pose = JointPose(plates=[PlatePose(23.7, 8.26, 5.0, 139.2), PlatePose(24.0, -19.5, 5.0, 35.0)])
    cli = [sys.executable, "-m", "optimizer.cli"]
    r = subprocess.run(cli + ["evaluate", str(f), f"--pose={pose.cli_value()}", "--tolerance"],
                       capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "each plate's own box in turn" in r.stdout
    assert "  north: ±5 cm / ±0° yaw / ±0° pitch" in r.stdout and "  south: ±0 cm / ±1° yaw / ±0° pitch" in r.stdout
    g = subprocess.run(cli + ["grid", str(f)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert g.returncode == 2 and g.stderr.count("\n") == 1 and "grid: the exhaustive grid places one plate" in g.stderr
