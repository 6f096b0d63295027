"""The shipped examples: the indoor scene is exactly what its generator makes (no drift between script and\nfiles); every example file validates; the objective examples ask what they say."""

import filecmp
import subprocess
import sys

import pytest

from optimizer.experiment import load_experiment
from worlds_helpers import EXAMPLES, REPO


def test_indoor_scene_matches_its_generator(tmp_path):
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_indoor_scene.py"), str(tmp_path / "s")], check=True,
                   capture_output=True)
    shipped = REPO / "examples" / "scenes" / "l-corridor"
    for rel in ("scene.xml", "meshes/walls.ply", "meshes/floor.ply", "meshes/ceiling.ply"):
        assert filecmp.cmp(shipped / rel, tmp_path / "s" / rel, shallow=False), rel


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_validates(path):
    exp = load_experiment(path)
    assert exp.name == path.stem


def test_shop_floor_asks_the_5th_percentile_with_a_protected_corridor():
    exp = load_experiment(EXAMPLES / "shop-floor.yaml")
    assert (exp.objective.kind, exp.objective.p) == ("percentile", 5.0) and exp.targets.area
    pts, cells = exp.protect_points()
    assert len(pts) == 30 and set(cells) == {1.0}  # the corridor's last 10 m, every 1 m, 3 rows
    assert max(p[0] for p in pts) > exp.plates()[0].bounds.max[0]  # it reaches behind the plate


def test_street_protect_is_the_street_example_plus_the_constraint():
    """The protected street example differs from the street example only in its name and objective.protect."""
    a, b = (load_experiment(EXAMPLES / f"{n}.yaml").model_dump(mode="json")
            for n in ("street-corner", "street-corner-protect"))
    assert b["objective"].pop("protect")["area"] and a["objective"].pop("protect") is None
    a.pop("name"), b.pop("name")
    assert a == b
