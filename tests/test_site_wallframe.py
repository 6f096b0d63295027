"""A mounting box given by wall is exact: on an oblique wall the search space lives in the wall's frame
(`optimizer.experiment.box`, `optimizer.search.space`), so every pose the search samples, steps to, clips
to or grids lies on the wall's stretch at the stand-off; on a wall along x or y it is the box by hand.

The site is a GeoJSON made here in scene metres (two blocks: one along the axes, one turned 37 degrees),
imported with --center at the frame's origin, so site.json's walls are where they were drawn."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from optimizer.cli.main import main
from optimizer.experiment import load_experiment
from optimizer.sites.projection import LocalFrame

ORIGIN = (48.8566, 2.3522)
TURN_DEG = 37.0
ALONG, HEIGHT, STANDOFF = (5.0, 25.0), (3.0, 9.0), 1.5
TOL_M = 1e-6


def _rect(cx, cy, w, d, turn_deg):
    a = math.radians(turn_deg)
    u, v = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
    c = np.array([cx, cy])
    return [c + sx * 0.5 * w * u + sy * 0.5 * d * v for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1))]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    from optimizer.sites.importer import import_site

    frame = LocalFrame.at(*ORIGIN)
    feats = []
    for i, (ring, height) in enumerate([(_rect(-30.0, 0.0, 30.0, 12.0, 0.0), 12),
                                        (_rect(30.0, 0.0, 30.0, 12.0, TURN_DEG), 15)]):
        lonlat = frame.scene_to_lonlat(np.array(ring))
        feats.append({"type": "Feature", "id": f"way/{i + 1}", "properties": {"building": "yes", "height": height},
                      "geometry": {"type": "Polygon", "coordinates": [lonlat.tolist()]}})
    d = tmp_path_factory.mktemp("wallframe")
    src = d / "blocks.geojson"
    src.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    out = d / "site"
    import_site(src, out, center=f"{ORIGIN[0]},{ORIGIN[1]}", radius=200)
    return out


def _walls(site):
    return json.loads((site / "site.json").read_text())["walls"]


def _long_wall(site, building: str) -> dict:
    return max((w for w in _walls(site) if w["building_id"] == building),
               key=lambda w: math.hypot(w["x1_m"] - w["x0_m"], w["y1_m"] - w["y0_m"]))


def _experiment(site, bounds, **plate) -> dict:
    return {"name": "wall-frame", "scene": str(site), "frequency_hz": 3.5e9,
            "transmitters": [{"name": "ap1", "position": [0.0, 40.0, 10.0]}],
            "reflector": {"size_m": [1.0, 1.0], "bounds": bounds, **plate},
            "targets": {"points": [[0.0, -40.0, 1.5]]}}


def _load(tmp_path, data, name="e.yaml"):
    f = tmp_path / name
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_experiment(f)


def _on_the_wall(wall: dict, vecs) -> tuple[np.ndarray, np.ndarray]:
    """(along, off) [m] of plate centres from the wall's own ends in site.json (plain numpy: the reference)."""
    a = np.array([wall["x0_m"], wall["y0_m"]])
    d = np.array([wall["x1_m"], wall["y1_m"]]) - a
    u = d / np.linalg.norm(d)
    n = np.array([u[1], -u[0]])  # site.json: the face is on the right of start -> end
    p = np.asarray(vecs, float)[:, :2] - a
    return p @ u, p @ n


def _assert_in_wall_box(wall, exp, vecs):
    along, off = _on_the_wall(wall, vecs)
    vecs = np.asarray(vecs, float)
    assert along.min() >= ALONG[0] - TOL_M and along.max() <= ALONG[1] + TOL_M
    assert np.abs(off - STANDOFF).max() <= TOL_M
    assert vecs[:, 2].min() >= HEIGHT[0] - TOL_M and vecs[:, 2].max() <= HEIGHT[1] + TOL_M
    y = exp.reflector.yaw_deg
    assert vecs[:, 3].min() >= y.min - TOL_M and vecs[:, 3].max() <= y.max + TOL_M


def test_oblique_wall_box_is_exact(site, tmp_path):
    from optimizer.search.grid import grid_poses
    from optimizer.search.space import PoseSpace

    wall = _long_wall(site, "way/2")
    turn = math.degrees(math.atan2(wall["y1_m"] - wall["y0_m"], wall["x1_m"] - wall["x0_m"]))
    assert abs(((turn - TURN_DEG) + 90) % 180 - 90) < 0.01  # the wall was drawn at 37 deg
    form = {"wall": wall["id"], "along_m": list(ALONG), "height_m": list(HEIGHT), "standoff_m": STANDOFF}
    exp = _load(tmp_path, _experiment(site, form))
    b = exp.reflector.bounds
    assert b.frame is not None and exp.reflector.mounted_on_wall == wall["id"]
    # the axis-aligned box around it (all the search had before) holds points far off the wall
    corner_off = _on_the_wall(wall, [[b.min[0], b.max[1]], [b.max[0], b.min[1]]])[1]
    assert np.abs(corner_off - STANDOFF).max() > 5.0
    space = PoseSpace.of(exp)
    assert list(space.free) == [True, False, True, True]  # along, off (one stand-off), z, yaw
    rng = np.random.default_rng(7)
    sampled = space.from_unit(space.sobol(256, 3))  # what the starts draw
    clipped = [space.from_unit(space.project_unit(u)) for u in rng.uniform(-1.5, 2.5, (500, space.dim))]
    projected = [space.project(np.r_[rng.uniform(-60, 60, 2), rng.uniform(-5, 20), rng.uniform(-180, 180)])
                 for _ in range(200)]  # any scene pose, clipped into the box
    unit = space.project_unit(rng.uniform(0, 1, space.dim))
    stepped = []
    for _ in range(50):  # gradient steps as the worlds take them (WorldTrainable.adam_ascent)
        unit = space.project_unit(unit + space.grad_to_unit(rng.normal(0, 1, space.dim)) * 0.05)
        stepped.append(space.from_unit(unit))
    grid = [space.box_to_vec(v) for v in grid_poses(space, 2.0, 30.0)]
    for vecs in (sampled, clipped, projected, stepped, grid):
        _assert_in_wall_box(wall, exp, vecs)
    along = _on_the_wall(wall, clipped)[0]
    assert along.min() < ALONG[0] + 1e-9 and along.max() > ALONG[1] - 1e-9  # clipping reaches both ends
    # the chain rule through the frame: a linear function's unit-cube gradient by finite differences
    c = rng.normal(0, 1, space.dim)
    u0, h = np.full(space.dim, 0.5), 1e-6
    fd = [(c @ space.from_unit(u0 + h * e) - c @ space.from_unit(u0 - h * e)) / (2 * h) for e in np.eye(space.dim)]
    assert np.allclose(space.grad_to_unit(c), fd, atol=1e-6)
    # membership and the bound names are in the wall's frame
    on = space.from_unit(np.array([1.0, 0.5, 0.0, 0.5]))
    assert space.contains(on) and space.on_bounds(on) == ["along max (25)", "z min (3)"]
    d = np.array([wall["x1_m"] - wall["x0_m"], wall["y1_m"] - wall["y0_m"]])
    off_wall = on.copy()
    off_wall[:2] += 0.5 * np.array([d[1], -d[0]]) / np.linalg.norm(d)  # 0.5 m farther out
    assert not space.contains(off_wall) and space.contains(off_wall, tol=0.5 + 1e-6)
    assert np.allclose(space.to_unit(space.from_unit(unit))[space.free], unit[space.free])


def test_oblique_wall_start_off_the_wall_is_refused(site, tmp_path, capsys):
    """An initial pose inside the axis-aligned box but 3 m off the wall: one line naming the off axis, exit 2."""
    wall = _long_wall(site, "way/2")
    form = {"wall": wall["id"], "along_m": list(ALONG), "height_m": list(HEIGHT), "standoff_m": STANDOFF}
    data = _experiment(site, form)
    a, d = np.array([wall["x0_m"], wall["y0_m"]]), np.array([wall["x1_m"] - wall["x0_m"], wall["y1_m"] - wall["y0_m"]])
    u = d / np.linalg.norm(d)
    p = a + 15.0 * u + (STANDOFF + 3.0) * np.array([u[1], -u[0]])
    ok = a + 15.0 * u + (STANDOFF + 0.01) * np.array([u[1], -u[0]])
    data["search"] = {"initial_poses": [[float(ok[0]), float(ok[1]), 5.0, 0.0]]}
    assert _load(tmp_path, data).search.initial_poses  # 1 cm off: within the mounting tolerance
    data["search"] = {"initial_poses": [[float(p[0]), float(p[1]), 5.0, 0.0]]}
    f = tmp_path / "far.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["run", str(f), "--output", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "search.initial_poses[0].off: 4.5 is 3 m outside reflector.bounds" in err[0], err
    assert not (tmp_path / "out").exists()


def test_axis_aligned_wall_box_is_the_box_by_hand(site, tmp_path):
    from optimizer.search.space import PoseSpace

    wall = _long_wall(site, "way/1")
    assert wall["x0_m"] == wall["x1_m"] or wall["y0_m"] == wall["y1_m"]  # along x or y in site.json
    form = {"wall": wall["id"], "along_m": list(ALONG), "height_m": list(HEIGHT), "standoff_m": STANDOFF}
    by_wall = _load(tmp_path, _experiment(site, form))
    r = by_wall.reflector
    assert r.bounds.frame is None  # the axis-aligned box is exact
    along, off = _on_the_wall(wall, [r.bounds.min, r.bounds.max])
    assert sorted(along) == pytest.approx(list(ALONG), abs=TOL_M) and off == pytest.approx([STANDOFF] * 2, abs=TOL_M)
    hand = {"min": list(r.bounds.min), "max": list(r.bounds.max)}
    by_hand = _load(tmp_path, _experiment(site, hand, yaw_deg={"min": r.yaw_deg.min, "max": r.yaw_deg.max},
                                          mounted_on_wall=wall["id"]), "hand.yaml")
    assert by_wall.model_dump(mode="json") == by_hand.model_dump(mode="json")
    a, b = PoseSpace.of(by_wall), PoseSpace.of(by_hand)
    assert np.array_equal(a.lo, b.lo) and np.array_equal(a.hi, b.hi)
    # the frame machinery agrees with plain bounds: the same box written in a frame turned 90 degrees
    lo, hi = r.bounds.min, r.bounds.max
    framed = {**hand, "frame": {"origin_m": [lo[0], lo[1]], "along_deg": 90.0, "along_m": [0.0, hi[1] - lo[1]],
                                "off_m": [0.0, hi[0] - lo[0]]}}  # off: +x
    c = _load(tmp_path, _experiment(site, framed, yaw_deg={"min": r.yaw_deg.min, "max": r.yaw_deg.max}), "f.yaml")
    fs = PoseSpace.of(c)
    rng = np.random.default_rng(3)
    for vec in rng.uniform(-60, 60, (100, 4)):
        assert np.allclose(fs.project(vec), b.project(vec), atol=1e-9)
    for u in rng.uniform(0, 1, (100, 4)):
        assert b.contains(fs.from_unit(u)) and fs.contains(b.from_unit(u))


def test_framed_box_round_trip_and_bad_extent(site, tmp_path, capsys):
    wall = _long_wall(site, "way/2")
    form = {"wall": wall["id"], "along_m": list(ALONG), "height_m": list(HEIGHT), "standoff_m": STANDOFF}
    exp = _load(tmp_path, _experiment(site, form))
    dumped = exp.model_dump(mode="json")
    again = _load(tmp_path, {**dumped, "reflector": {k: v for k, v in dumped["reflector"].items()
                                                     if v is not None}}, "again.yaml")
    assert again.reflector.bounds == exp.reflector.bounds
    bad = json.loads(json.dumps(dumped["reflector"]["bounds"]))
    bad["max"][0] += 1.0
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(_experiment(site, bad), sort_keys=False))
    assert main(["run", str(f), "--output", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "reflector.bounds" in err[0] and "plan extent" in err[0], err
    assert not (tmp_path / "out").exists()


def test_site_files_draw_the_wall_box(site, tmp_path):
    """site.geojson's mounting box on the oblique wall is the stretch at the stand-off, not its bounding box."""
    from shapely.geometry import shape

    from optimizer.sites.export import write_site_files

    wall = _long_wall(site, "way/2")
    form = {"wall": wall["id"], "along_m": list(ALONG), "height_m": list(HEIGHT), "standoff_m": STANDOFF}
    exp = _load(tmp_path, _experiment(site, form))
    (tmp_path / "run").mkdir()
    gj = json.loads(write_site_files(tmp_path / "run", exp, None)[0].read_text())
    (box,) = [f for f in gj["features"] if f["properties"]["role"] == "mounting-box"]
    geom = shape(box["geometry"])
    assert geom.geom_type == "LineString" and geom.is_valid
    frame = LocalFrame.at(*ORIGIN)
    lon, lat = np.array(geom.coords).T
    x, y = frame.to_scene(lat, lon)
    along, off = _on_the_wall(wall, np.column_stack([x, y]))
    assert sorted(along) == pytest.approx(list(ALONG), abs=0.01) and off == pytest.approx([STANDOFF] * 2, abs=0.01)


def test_report_plan_draws_the_wall_box(site, tmp_path):
    """The report's floor plans draw a box in a wall's frame by its corners (on the wall), a plain box as before."""
    from optimizer.report.build import _box_rings

    wall = _long_wall(site, "way/2")
    form = {"wall": wall["id"], "along_m": list(ALONG), "height_m": list(HEIGHT), "standoff_m": STANDOFF}
    (ring,) = _box_rings(_load(tmp_path, _experiment(site, form)))
    along, off = _on_the_wall(wall, ring)
    assert sorted(along) == pytest.approx([ALONG[0]] * 2 + [ALONG[1]] * 2, abs=TOL_M)
    assert off == pytest.approx([STANDOFF] * 4, abs=TOL_M)
    assert _box_rings(_load(tmp_path, _experiment(site, {"min": [0, 0, 1], "max": [1, 1, 2]}), "plain.yaml")) == []
