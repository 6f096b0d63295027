"""The benchmark suite's scene generator (scripts/make_scenes.py): the scenes load in Sionna, the targets
are shadowed (truth with diffraction, and no line of sight), the mounting box is on a wall, and a seed
gives the same bytes every time; a two-zone case (--two-zone) has two clusters, two plates, each box on its
own wall, each cluster out of sight of the other cluster's box."""

import filecmp
import sys

import numpy as np
import pytest

from worlds_helpers import REPO

sys.path.insert(0, str(REPO / "scripts"))


@pytest.fixture(scope="module")
def hall(tmp_path_factory):
    import make_scenes

    out = tmp_path_factory.mktemp("suite")
    info = make_scenes.generate_case(out / "a", 7, 0, 20_000)
    again = make_scenes.generate_case(out / "b", 7, 0, 20_000)
    return out, info, again


def test_same_seed_same_bytes(hall):
    out, info, again = hall
    assert info == again and info["kind"] == "hall"
    a, b = out / "a" / info["folder"], out / "b" / info["folder"]
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert {"scene.xml", "experiment.yaml"} <= {str(f) for f in files} and len(files) >= 5
    for rel in files:
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel


def assert_box_on_a_wall(rs, r):
    """Along the box (5 points, both heights): a wall just behind, open space in front, and the plate at
    three yaws of its range cuts no wall (the bracket rule)."""
    from optimizer.physics.geometry import plate_corners, plate_frame
    from optimizer.records import PlatePose

    assert r.yaw_deg.max - r.yaw_deg.min == 180.0
    lo, hi = np.array(r.bounds.min), np.array(r.bounds.max)
    assert np.max(hi - lo) >= 10.0  # a long wall
    mid = 0.5 * (r.yaw_deg.min + r.yaw_deg.max)  # flat on the wall
    _, _, n = plate_frame(mid, 0.0)
    for t in np.linspace(0, 1, 5):
        c = lo + t * (hi - lo)
        for z in (lo[2], hi[2]):
            c[2] = z
            behind = [not rs.visible(c[None], (c + s * (0.5 * r.size_m[0] + 0.3) * n)[None])[0] for s in (1, -1)]
            assert sum(behind) == 1, (c, behind)  # a wall just behind, open space in front
            for yaw in (r.yaw_deg.min, mid, r.yaw_deg.max - 1e-6):
                k = plate_corners(PlatePose(*c, yaw), r.size_m)
                o = np.array([k[i] for i in (0, 1, 2, 3, 0, 1)])
                e = np.array([k[i] for i in (1, 2, 3, 0, 2, 3)])
                assert rs.visible(o, e).all(), (c, yaw)  # the plate cuts no wall


def assert_shadowed(rs, exp, targets):
    """No line of sight from the transmitter, and below the threshold without plates (truth)."""
    from optimizer.physics.metrics import has_path

    tx = np.array(exp.transmitters[0].position)
    assert not rs.visible(np.repeat(tx[None], len(targets), 0), targets).any()  # no line of sight
    base = rs.rss_dbm(None)
    assert len(base) == len(targets)
    assert not np.any(has_path(base) & (base >= exp.objective.coverage_threshold_dbm))  # none covered


def test_targets_shadowed_and_box_on_a_wall(hall):
    from optimizer.experiment import load_experiment
    from optimizer.physics.scene import RadioScene

    out, info, _ = hall
    exp = load_experiment(out / "a" / info["folder"] / "experiment.yaml")  # scene: . (beside the file)
    rs = RadioScene(exp, device="cpu", threads=1)
    targets = np.array(exp.target_points())
    assert 6 <= len(targets) <= 12
    assert_shadowed(rs, exp, targets)
    assert_box_on_a_wall(rs, exp.reflector)


@pytest.fixture(scope="module")
def two_zone(tmp_path_factory):
    import make_scenes

    out = tmp_path_factory.mktemp("two-zone")
    info = make_scenes.generate_case(out / "a", 7, 0, 20_000, two_zone=True)
    again = make_scenes.generate_case(out / "b", 7, 0, 20_000, two_zone=True)
    return out, info, again


def test_two_zone_same_seed_same_bytes(two_zone):
    out, info, again = two_zone
    assert info == again and info["kind"] == "two-zone" and info["name"] == "s7-00-two-zone"
    a, b = out / "a" / info["folder"], out / "b" / info["folder"]
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert {"scene.xml", "experiment.yaml"} <= {str(f) for f in files} and len(files) >= 4
    for rel in files:
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel


def test_two_zone_clusters_shadowed_apart_and_boxes_on_two_walls(two_zone):
    from optimizer.experiment import load_experiment
    from optimizer.physics.scene import RadioScene

    out, info, _ = two_zone
    exp = load_experiment(out / "a" / info["folder"] / "experiment.yaml")  # validates: two plates, no overlap
    plates = exp.plates()
    assert exp.reflector is None and [p.name for p in plates] == ["zone-1", "zone-2"]
    rs = RadioScene(exp, device="cpu", threads=1)
    assert len(rs.plates) == 2  # Sionna loads the scene with both plates
    targets = np.array(exp.target_points())
    n1, n2 = info["cluster_targets"]
    assert n1 + n2 == len(targets) and 4 <= n1 <= 6 and 4 <= n2 <= 6
    assert_shadowed(rs, exp, targets)
    for r in plates:
        assert_box_on_a_wall(rs, r)
    boxes = [(np.array(r.bounds.min), np.array(r.bounds.max)) for r in plates]
    # two walls: parallel boxes (the same long axis), apart by a street's width, neither box over the other
    axis = [int(np.argmax(hi - lo)) for lo, hi in boxes]
    assert axis[0] == axis[1]
    across = 1 - axis[0]
    assert abs(boxes[0][0][across] - boxes[1][0][across]) >= 8.0
    # the clusters apart (in different side streets), each out of sight of the other cluster's box: a denser
    # sampling of the box (19 points x 3 heights) than the generator's
    clusters = [targets[:n1], targets[n1:]]
    gap = np.linalg.norm(clusters[0][:, None, :2] - clusters[1][None, :, :2], axis=2).min()
    assert gap >= 20.0, gap
    for k, (lo, hi) in enumerate(boxes):
        other = clusters[1 - k]
        for t in np.linspace(0, 1, 19):
            for z in (lo[2], 0.5 * (lo[2] + hi[2]), hi[2]):
                c = lo + t * (hi - lo)
                c[2] = z
                assert not rs.visible(np.repeat(c[None], len(other), 0), other).any(), (k, c)
        own = clusters[k]  # ... and every target of its own cluster in sight of some point of its box
        pts = [lo + t * (hi - lo) for t in np.linspace(0, 1, 19)]
        seen = np.zeros(len(own), bool)
        for c in pts:
            c = c.copy()
            c[2] = 0.5 * (lo[2] + hi[2])
            seen |= rs.visible(np.repeat(c[None], len(own), 0), own)
        assert seen.all(), k


@pytest.fixture(scope="module")
def osm(tmp_path_factory):
    pytest.importorskip("pyrosm")
    import make_scenes  # noqa: F401  (suite_osm's own import of it, on the path)
    import suite_osm

    out = tmp_path_factory.mktemp("osm")
    info = suite_osm.osm_case(out / "a", 7, 0, 20_000)
    again = suite_osm.osm_case(out / "b", 7, 0, 20_000)
    return out, info, again


def test_osm_same_seed_same_bytes(osm):
    out, info, again = osm
    assert info == again and info["kind"] == "osm" and info["name"] == "s7-00-osm"
    a, b = out / "a" / info["folder"], out / "b" / info["folder"]
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert {"scene.xml", "experiment.yaml", "site.json", "footprints.geojson"} <= {str(f) for f in files}
    for rel in files:
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel


def test_osm_case_on_a_site_wall_with_shadowed_targets(osm):
    """The box is given by a site.json wall (the form a user writes), sits in front of that facade, and the
    targets are out of the transmitter's sight and below the threshold without a plate (truth)."""
    import json

    import suite_osm
    from optimizer.experiment import load_experiment
    from optimizer.physics.scene import RadioScene
    from optimizer.sites.record import wall_of

    out, info, _ = osm
    folder = out / "a" / info["folder"]
    assert "bounds: {wall: " in (folder / "experiment.yaml").read_text()
    exp = load_experiment(folder / "experiment.yaml")
    r = exp.reflector
    assert r.mounted_on_wall == info["wall"]
    site = json.loads((folder / "site.json").read_text())
    assert site["source"]["file"] == "Helsinki.osm.pbf" and site["license"]
    wall = wall_of(next(w for w in site["walls"] if w["id"] == info["wall"]))
    assert wall.length_m >= suite_osm.OSM_WALL_MIN_M
    # the box's middle: in front of the facade (its outward side) by the stand-off, within the wall's ends
    lo, hi = np.array(r.bounds.min), np.array(r.bounds.max)
    mid = 0.5 * (lo + hi)
    n = np.array(wall.normal)
    u = np.array([wall.x1 - wall.x0, wall.y1 - wall.y0]) / wall.length_m
    rel = mid[:2] - np.array([wall.x0, wall.y0])
    assert float(rel @ n) == pytest.approx(0.5 * r.size_m[0] + 0.15, abs=1e-3)
    assert 0 < float(rel @ u) < wall.length_m
    assert (lo[2], hi[2]) == suite_osm.OSM_HEIGHT_M
    rs = RadioScene(exp, device="cpu", threads=1)
    targets = np.array(exp.target_points())
    assert 6 <= len(targets) <= 12
    assert_shadowed(rs, exp, targets)
    behind = mid - (0.5 * r.size_m[0] + 0.5) * np.array([*n, 0.0])  # through the facade: blocked
    assert not rs.visible(mid[None], behind[None])[0]
