"""The shipped indoor scene is exactly what its generator makes (no drift between script and files)."""

import filecmp
import subprocess
import sys

from worlds_helpers import REPO


def test_indoor_scene_matches_its_generator(tmp_path):
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_indoor_scene.py"), str(tmp_path / "s")], check=True,
                   capture_output=True)
    shipped = REPO / "examples" / "scenes" / "l-corridor"
    for rel in ("scene.xml", "meshes/walls.ply", "meshes/floor.ply", "meshes/ceiling.ply"):
        assert filecmp.cmp(shipped / rel, tmp_path / "s" / rel, shallow=False), rel
