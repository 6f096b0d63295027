"""The benchmark suite's scene generator (scripts/make_scenes.py): the scenes load in Sionna, the targets
are shadowed (truth with diffraction, and no line of sight), the mounting box is on a wall, and a seed
gives the same bytes every time."""

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


def test_targets_shadowed_and_box_on_a_wall(hall):
    from optimizer.experiment import load_experiment
    from optimizer.physics.geometry import plate_corners, plate_frame
    from optimizer.physics.metrics import has_path
    from optimizer.physics.scene import RadioScene
    from optimizer.records import PlatePose

    out, info, _ = hall
    exp = load_experiment(out / "a" / info["folder"] / "experiment.yaml")  # scene: . (beside the file)
    rs = RadioScene(exp, device="cpu", threads=1)
    targets = np.array(exp.target_points())
    assert 6 <= len(targets) <= 12
    tx = np.array(exp.transmitters[0].position)
    assert not rs.visible(np.repeat(tx[None], len(targets), 0), targets).any()  # no line of sight
    base = rs.rss_dbm(None)
    assert not np.any(has_path(base) & (base >= exp.objective.coverage_threshold_dbm))  # none covered
    r = exp.reflector
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
