"""Sites from maps, in an experiment and in its results: a mounting box given by wall
(`optimizer.sites.wallbox`) and site.geojson / site.kml (`optimizer.sites.export`), on the Helsinki block
that tests/test_sites.py imports (its fixtures)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml

import test_sites
from optimizer.cli.main import main
from optimizer.experiment import load_experiment
from optimizer.records import JointPose, PlatePose
from optimizer.sites.projection import LocalFrame

# test_sites' fixtures: the Helsinki block around Rautatientori (imported once per test module)
helsinki_pbf, helsinki, site_of = test_sites.helsinki_pbf, test_sites.helsinki, test_sites.site_of
WALL = "relation/9630#3"  # Kauppakeskus Citycenter's east facade, 69.45 m long, 0-9 m, facing east
NEAR = "60.169746,24.942662"
L_CORRIDOR = Path(__file__).parent.parent / "examples" / "scenes" / "l-corridor"


def _experiment(scene, bounds, **plate) -> dict:
    return {"name": "geo-wall", "scene": str(scene), "frequency_hz": 3.5e9,
            "transmitters": [{"name": "ap1", "position": {"lat": 60.1711, "lon": 24.9440, "height_m": 10.0}}],
            "reflector": {"size_m": [4.0, 2.0], "bounds": bounds, **plate},
            "targets": {"points": [[-60.0, -45.0, 1.5], {"lat": 60.1699, "lon": 24.9432, "height_m": 1.5}],
                        "region": {"min": [-62, -50], "max": [-58, -46], "z": 1.5, "spacing_m": 2.0}}}


def _load(tmp_path, data, name="e.yaml"):
    f = tmp_path / name
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_experiment(f)


def _wall(helsinki):
    from optimizer.sites.facades import facades

    (row,) = facades(helsinki, near=NEAR, limit=1)
    assert row["id"] == WALL
    return row


# --- a mounting box given by wall -------------------------------------------------------------------------
def test_wall_box_is_the_box_given_by_hand(helsinki, tmp_path):
    """The wall form gives the box a person would write: shapely's parallel offset of the facade, cut to
    along_m (an independent construction), then its bounding box; the yaw range is the half-space in front
    of the wall (the plate's normal at its middle is the wall's outward normal)."""
    from shapely.geometry import LineString, Point
    from shapely.ops import substring

    from optimizer.physics.geometry import plate_frame
    from optimizer.search.space import PoseSpace

    row = _wall(helsinki)
    start, end = (row["start"]["x_m"], row["start"]["y_m"]), (row["end"]["x_m"], row["end"]["y_m"])
    s, along, height = 2.15, (20.0, 28.0), (4.0, 7.0)
    offset = LineString([start, end]).offset_curve(-s)  # negative: the right side, where the outside is
    assert Point(offset.coords[0]).distance(Point(start)) == pytest.approx(s)  # same direction as the wall
    x0, y0, x1, y1 = substring(offset, *along).bounds
    out_n = (np.array(offset.coords[0]) - start) / s
    wall_form = {"wall": WALL, "along_m": list(along), "height_m": list(height), "standoff_m": s}
    by_wall = _load(tmp_path, _experiment(helsinki, wall_form))
    r = by_wall.reflector
    assert r.bounds.min == pytest.approx([x0, y0, 4.0], abs=1e-5)
    assert r.bounds.max == pytest.approx([x1, y1, 7.0], abs=1e-5)
    assert r.yaw_deg.max - r.yaw_deg.min == pytest.approx(180.0)
    _, _, n = plate_frame(0.5 * (r.yaw_deg.min + r.yaw_deg.max))
    assert n[:2] == pytest.approx(out_n, abs=1e-7)  # the yaw is rounded to 1e-6 deg
    frame = LocalFrame.from_record(site_of(helsinki)["frame"])
    assert frame.bearing_deg(x0, y0, *out_n) == pytest.approx(row["normal_bearing_deg"], abs=0.01)
    # the facade is 2.5 deg off y: the box is in the wall's frame, its corners the offset stretch's ends
    ends = np.array(substring(offset, *along).coords)
    assert np.abs(r.bounds.frame.corners()[[0, 1]] - ends).max() < 1e-5
    # the same box by hand (its frame written from the wall's ends): the same experiment, the same space
    turn = math.degrees(math.atan2(end[1] - start[1], end[0] - start[0]))
    hand = {"min": [x0, y0, 4.0], "max": [x1, y1, 7.0],
            "frame": {"origin_m": list(start), "along_deg": turn, "along_m": list(along), "off_m": [s, s]}}
    by_hand = _load(tmp_path, _experiment(helsinki, hand, yaw_deg={"min": r.yaw_deg.min, "max": r.yaw_deg.max}),
                    "hand.yaml")
    a, b = PoseSpace.of(by_wall), PoseSpace.of(by_hand)
    assert np.allclose(a.lo, b.lo, atol=1e-5) and np.allclose(a.hi, b.hi, atol=1e-5)
    assert a.plates[0].yaw_period == b.plates[0].yaw_period
    units = np.random.default_rng(1).uniform(0, 1, (50, a.dim))
    assert np.allclose(a.from_unit(units), b.from_unit(units), atol=1e-5)
    dump = lambda e: {**e.model_dump(mode="json"), "reflector": None}  # noqa: E731
    assert dump(by_wall) == dump(by_hand)
    # a yaw range given stays as given; several plates take the form too
    kept = _load(tmp_path, _experiment(helsinki, wall_form, yaw_deg={"min": -100, "max": -80}), "kept.yaml")
    assert (kept.reflector.yaw_deg.min, kept.reflector.yaw_deg.max) == (-100, -80)
    two = _experiment(helsinki, wall_form)
    two["reflectors"] = [two.pop("reflector"), {"name": "b", "size_m": [1, 1], "bounds": {**wall_form,
                                                                                         "along_m": [50, 60]}}]
    assert _load(tmp_path, two, "two.yaml").reflectors[1].bounds.min[1] > r.bounds.max[1]


@pytest.mark.parametrize("case", ["unknown-wall", "along-outside", "no-site-json", "builtin", "height-outside",
                                  "standoff", "keys", "second-plate"])
def test_wall_box_bad_input(case, helsinki, tmp_path, capsys):
    good = {"wall": WALL, "along_m": [20, 28], "height_m": [4, 7], "standoff_m": 2.15}
    scene, change, key = {
        "unknown-wall": (helsinki, {"wall": "way/1#99"}, "reflector.bounds.wall"),
        "along-outside": (helsinki, {"along_m": [60, 75]}, "reflector.bounds.along_m"),
        "no-site-json": (L_CORRIDOR, {}, "reflector.bounds"),
        "builtin": ("builtin:simple_street_canyon", {}, "reflector.bounds"),
        "height-outside": (helsinki, {"height_m": [4, 12]}, "reflector.bounds.height_m"),
        "standoff": (helsinki, {"standoff_m": 0}, "reflector.bounds.standoff_m"),
        "keys": (helsinki, {"min": [0, 0, 0]}, "reflector.bounds"),
        "second-plate": (helsinki, None, "reflectors[1].bounds.wall"),
    }[case]
    data = _experiment(scene, {**good, **(change or {})})
    if scene != helsinki:
        data["transmitters"][0]["position"] = [0, 0, 10]
        data["targets"] = {"points": [[1, 1, 1.5]]}
    if change is None:
        data["reflectors"] = [data.pop("reflector"), {"name": "b", "size_m": [1, 1],
                                                       "bounds": {**good, "wall": "way/nope#1"}}]
    f = tmp_path / "e.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "out"
    assert main(["run", str(f), "--output", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"reflectopt: error: {f}: {key}:"), err
    assert not out.exists()  # nothing written


# --- site.geojson and site.kml --------------------------------------------------------------------------------
def _winner(exp) -> JointPose:
    r = exp.reflector
    b = r.bounds
    return JointPose.single(PlatePose(0.5 * (b.min[0] + b.max[0]), 0.5 * (b.min[1] + b.max[1]), 5.0,
                                      0.5 * (r.yaw_deg.min + r.yaw_deg.max) + 10.0, 0.0))


def test_site_geojson_and_kml(helsinki, tmp_path):
    """Every feature is a valid shapely geometry in lon/lat range, and converted back with the site's frame
    lands within 1 cm of the scene positions (transmitter, targets, region, box, plate corners); the KML
    parses and has the same placemarks with heights."""
    from shapely.geometry import shape

    from optimizer.physics.geometry import plate_corners
    from optimizer.sites.export import write_site_files

    exp = _load(tmp_path, _experiment(helsinki, {"wall": WALL, "along_m": [20, 28], "height_m": [4, 7],
                                                 "standoff_m": 2.15}))
    pose = _winner(exp)
    (tmp_path / "run").mkdir()
    files = write_site_files(tmp_path / "run", exp, pose)
    assert [p.name for p in files] == ["site.geojson", "site.kml"]
    gj = json.loads(files[0].read_text())
    frame = LocalFrame.from_record(site_of(helsinki)["frame"])
    assert gj["type"] == "FeatureCollection" and gj["attribution"] == "© OpenStreetMap contributors"

    def back(geom) -> np.ndarray:
        c = np.array([xy for g in getattr(geom, "geoms", [geom]) for xy in
                      (g.exterior.coords if g.geom_type == "Polygon" else g.coords)])
        assert np.all(np.abs(c[:, 0]) <= 180) and np.all(np.abs(c[:, 1]) <= 90)
        assert 24.9 < c[:, 0].min() and c[:, 0].max() < 25.0 and 60.1 < c[:, 1].min() < 60.2  # Helsinki
        x, y = frame.to_scene(c[:, 1], c[:, 0])
        return np.column_stack([x, y])

    by_role: dict[str, list] = {}
    for f in gj["features"]:
        geom = shape(f["geometry"])
        assert geom.is_valid and not geom.is_empty, f
        by_role.setdefault(f["properties"]["role"], []).append((back(geom), f["properties"], geom))
    (tx,) = by_role["transmitter"]
    assert np.linalg.norm(tx[0][0] - exp.transmitters[0].position[:2]) < 0.01
    assert tx[1]["height_m"] == pytest.approx(exp.transmitters[0].position[2])
    pts = np.array(exp.target_points())
    assert len(by_role["target"]) == len(pts) == 2 + 9
    for xy, props, _ in by_role["target"]:
        assert np.linalg.norm(xy[0] - pts[props["index"], :2]) < 0.01 and props["height_m"] == 1.5
    (area,) = by_role["target-area"]
    assert area[2].geom_type == "Polygon" and np.abs(area[0].min(0) - [-62, -50]).max() < 0.01
    (box,) = by_role["mounting-box"]
    b = exp.reflector.bounds
    assert box[2].geom_type == "LineString"  # the box in the wall's frame: the stretch at one stand-off
    assert np.abs(box[0].min(0) - b.min[:2]).max() < 0.01 and np.abs(box[0].max(0) - b.max[:2]).max() < 0.01
    assert (box[1]["z_min_m"], box[1]["z_max_m"]) == (4.0, 7.0)
    (plate,) = by_role["plate"]
    corners = plate_corners(pose.plates[0], exp.reflector.size_m)
    assert np.abs(plate[0][:4] - corners[:, :2]).max() < 0.01
    assert plate[1]["normal_bearing_deg"] == pytest.approx((87.5 - 10.0) % 360, abs=0.5)  # yaw +10: 10 deg left
    # KML: standard XML, the same placemarks, heights relative to the ground
    ns = {"k": "http://www.opengis.net/kml/2.2"}
    root = ET.parse(files[1]).getroot()
    marks = root.findall("k:Document/k:Placemark", ns)
    assert [m.find("k:name", ns).text for m in marks] == [f["properties"]["name"] for f in gj["features"]]
    lon, lat, h = map(float, marks[0].find("k:Point/k:coordinates", ns).text.split(","))
    assert (lon, lat, h) == pytest.approx((24.9440, 60.1711, 10.0), abs=1e-8)  # as the experiment gave it
    plate_kml = [m for m in marks if m.find("k:name", ns).text.endswith(": plate")][0]
    ring = plate_kml.find("k:Polygon/k:outerBoundaryIs/k:LinearRing/k:coordinates", ns).text.split()
    assert [float(c.split(",")[2]) for c in ring[:4]] == pytest.approx(list(corners[:, 2]), abs=1e-3)
    edges = root.findall(".//k:Placemark/k:MultiGeometry/k:LineString/k:coordinates", ns)
    zs = sorted({round(float(c.split(",")[2]), 3) for e in edges for c in e.text.split()})
    assert len(edges) == 6 and zs == [4.0, 7.0]  # the box's 12 edges: bottom and top rings, 4 posts


def test_no_site_files_without_site_json(tmp_path):
    from optimizer.sites.export import write_site_files

    exp = load_experiment(Path(__file__).parent.parent / "examples" / "indoor-corridor.yaml")
    assert write_site_files(tmp_path, exp, None) == [] and not list(tmp_path.iterdir())


def test_report_writes_the_site_files(helsinki, tmp_path):
    """The one place: write_report (run and `reflectopt report`) writes them into the run folder."""
    from records_helpers import synthetic_run

    from optimizer.report.build import write_report

    exp = _load(tmp_path, _experiment(helsinki, {"wall": WALL, "along_m": [20, 28], "height_m": [4, 7],
                                                 "standoff_m": 2.15}))
    run = tmp_path / "run"
    synthetic_run(run, exp, winner_pose=_winner(exp).plates[0], worlds=2, steps=3)
    files = write_report(run, exp=exp, radio_maps=False)
    assert {"site.geojson", "site.kml"} <= {p.name for p in files}
    gj = json.loads((run / "site.geojson").read_text())
    (plate,) = [f for f in gj["features"] if f["properties"]["role"] == "plate"]
    assert plate["properties"]["height_m"] == 5.0 and math.isfinite(plate["properties"]["lat_deg"])


# --- radio maps as GeoTIFF -------------------------------------------------------------------------------------
def _maps(nx=7, ny=5, cell=1.824714088214763, x0=-84.95619202, y0=-50.79705429) -> dict:
    """Radio maps as the report holds them: cell centres ascending in x and y (float32, as Sionna gives them;
    the cell size and origin of a real run's map), rows along y; every cell's
    value is its own (column, row), so a flipped or transposed raster cannot pass."""
    x, y = (np.float32(v0 + cell * np.arange(n)).astype(float) for v0, n in ((x0, nx), (y0, ny)))  # as Sionna
    base = -100.0 + np.add.outer(10.0 * np.arange(ny), np.arange(nx))  # [ny, nx]: -100 + 10 row + column
    return {"x": x, "y": y, "cell_m": np.float64(cell), "height_m": np.float64(1.5), "baseline_dbm": base,
            "winner_dbm": base + 3.0, "gain_db": np.full_like(base, 3.0)}


def test_radio_maps_geotiff_is_georeferenced(helsinki, tmp_path):
    """Read back with rasterio: the site's EPSG, three described bands, and a known cell's centre maps to
    the latitude/longitude of its scene point within 1 cm (pyproj's Geod), holding that cell's value."""
    rasterio = pytest.importorskip("rasterio")
    from pyproj import Geod, Transformer

    from optimizer.sites.geotiff import write_radio_maps_geotiff

    site = site_of(helsinki)
    maps = _maps()
    (path,) = write_radio_maps_geotiff(tmp_path, maps, site)
    frame = LocalFrame.from_record(site["frame"])
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == site["frame"]["epsg"] == 32635
        assert src.descriptions == ("baseline_dbm", "winner_dbm", "gain_db") and (src.width, src.height) == (7, 5)
        data = src.read()
        to_geo = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
        for col, row in ((0, 0), (6, 4), (2, 3)):  # map indices (x ascending, y ascending)
            r, c = src.index(*src.xy(4 - row, col))  # the raster's first row is the north one
            assert (r, c) == (4 - row, col)
            e, n = src.xy(4 - row, col)  # the cell's centre in the CRS
            lon, lat = to_geo.transform(e, n)
            (lat_s,), (lon_s,) = frame.to_geo([maps["x"][col]], [maps["y"][row]])
            assert abs(Geod(ellps="WGS84").inv(lon, lat, float(lon_s), float(lat_s))[2]) < 0.01
            assert data[0, 4 - row, col] == pytest.approx(-100.0 + 10 * row + col)
            assert data[1, 4 - row, col] == pytest.approx(-97.0 + 10 * row + col)


def test_report_writes_the_geotiff_for_a_site(helsinki, tmp_path):
    """write_report writes heatmaps/radio_maps.tif from the run's saved radio maps where the scene has a
    site.json (and where rasterio is missing, says so as one skipped step)."""
    from records_helpers import synthetic_run

    from optimizer.constants import HEATMAPS_DIR, RADIO_MAPS_FILE, RADIO_MAPS_GEOTIFF
    from optimizer.report.build import write_report

    exp = _load(tmp_path, _experiment(helsinki, {"wall": WALL, "along_m": [20, 28], "height_m": [4, 7],
                                                 "standoff_m": 2.15}))
    run = tmp_path / "run"
    synthetic_run(run, exp, winner_pose=_winner(exp).plates[0], worlds=2, steps=3)
    (run / HEATMAPS_DIR).mkdir(exist_ok=True)
    np.savez_compressed(run / HEATMAPS_DIR / RADIO_MAPS_FILE, **_maps(), sections=np.zeros((0, 2, 2)),
                        footprints=np.zeros((0, 3, 2)))
    files = write_report(run, exp=exp, radio_maps=False)
    tif = run / HEATMAPS_DIR / RADIO_MAPS_GEOTIFF
    try:
        import rasterio  # noqa: F401
    except ImportError:
        assert not tif.exists() and "rasterio" in (run / "report.md").read_text()
        pytest.skip("rasterio is not installed: the report says the GeoTIFF was skipped")
    assert tif in files and tif.is_file()


# --- an antenna aimed by a compass bearing ----------------------------------------------------------------
@pytest.mark.parametrize("bearing", [0.0, 90.0, 225.0])
def test_antenna_bearing_is_the_azimuth_on_the_ellipsoid(bearing, helsinki, tmp_path):
    """`antenna.bearing_deg` (from true north, clockwise) becomes the azimuth whose scene direction has that
    true bearing, measured independently on the WGS 84 ellipsoid (pyproj's Geod, `LocalFrame.bearing_deg`)
    at the transmitter, within 0.01 deg; in Helsinki grid north is about 1.8 deg off true north, so a plain
    90 - bearing would miss by that much."""
    data = _experiment(helsinki, {"min": [-40.0, -40.0, 3.0], "max": [-38.0, -38.0, 5.0]})
    data["transmitters"][0]["antenna"] = {"pattern": "tr38901", "bearing_deg": bearing, "downtilt_deg": 6.0}
    exp = _load(tmp_path, data)
    tx = exp.transmitters[0]
    az = math.radians(tx.antenna.azimuth_deg)
    frame = LocalFrame.from_record(site_of(helsinki)["frame"])
    got = frame.bearing_deg(tx.position[0], tx.position[1], math.cos(az), math.sin(az))
    assert abs((got - bearing + 180.0) % 360.0 - 180.0) < 0.01
    assert abs((tx.antenna.azimuth_deg - (90.0 - bearing) + 180.0) % 360.0 - 180.0) > 1.0


def test_antenna_bearing_needs_a_site(tmp_path, capsys):
    """bearing_deg on a scene without site.json: one line naming the key, exit 2, nothing written."""
    data = {"name": "no-site", "scene": str(L_CORRIDOR), "frequency_hz": 3.5e9,
            "transmitters": [{"name": "ap1", "position": [1.0, 1.0, 2.0], "antenna": {"bearing_deg": 30.0}}],
            "reflector": {"size_m": [1.0, 1.0], "bounds": {"min": [1, 1, 1], "max": [2, 2, 2]}},
            "targets": {"points": [[3.0, 3.0, 1.5]]}, "output": str(tmp_path / "out")}
    f = tmp_path / "e.yaml"
    f.write_text(yaml.safe_dump(data))
    assert main(["run", str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "transmitters[0].antenna.bearing_deg" in err[0] and "azimuth_deg" in err[0]
    assert not (tmp_path / "out").exists()
