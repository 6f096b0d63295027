"""Input that ran without a word before (issue 22): a start outside the mounting box, targets outside the scene
or inside its buildings. Far outside is refused in one line (tests/test_fuzz.py); these are the milder cases,
accepted with a warning line or silently as the README says."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.errors import ConfigError
from worlds_helpers import street

STARTS_KEY = "search.initial_poses"


def _with_start(pose, tolerance_m=0.05):
    return street(**{"search.initial_poses": [pose], "search.worlds": 1,
                     "reflector.tolerance": {"position_m": tolerance_m, "yaw_deg": 1.0, "pitch_deg": 1.0}})


def test_a_start_within_the_mounting_tolerance_outside_the_box_is_moved_onto_it():
    """bounds x 20..28, y 7.5..8.5: 4 cm beyond y max (tolerance 5 cm) starts on the bound; 6 cm is refused."""
    from optimizer.search.starts import initial_poses

    exp = _with_start([24.0, 8.54, 5.0, 140.0])
    (pose, kind), = initial_poses(exp, None, 1)
    assert kind == "explicit" and pose.first.position == pytest.approx([24.0, 8.5, 5.0])
    with pytest.raises(ConfigError, match=r"search.initial_poses\[0\].y: 8.56 is 0.06 m outside reflector.bounds "
                                          r"\(y from 7.5 to 8.5 m\), more than the mounting tolerance \(0.05 m\)"):
        _with_start([24.0, 8.56, 5.0, 140.0])
    with pytest.raises(ConfigError, match=r"search.initial_poses\[0\].yaw_deg: 200 is 20 deg outside "
                                          r"reflector.yaw_deg"):
        _with_start([24.0, 8.0, 5.0, 200.0])


def test_a_start_outside_a_wrapping_yaw_range_is_not_refused():
    """A yaw range of 180 degrees or more wraps (the plate is two-sided): any yaw is a pose in it."""
    exp = street(**{"search.initial_poses": [[24.0, 8.0, 5.0, 300.0]], "reflector.yaw_deg": {"min": 0, "max": 180}})
    assert exp.search.initial_poses[0][3] == 300.0


@pytest.fixture(scope="module")
def canyon():
    from optimizer.physics.scene import RadioScene

    exp = street()
    return RadioScene(exp, device="cpu", threads=1)


def _targets(rs, points, capsys):
    from optimizer.search.driver import check_targets

    exp = street(**{"targets": {"points": points}})
    rs.targets = np.array(exp.target_points(), float)  # the ray tests read the scene's targets only
    check_targets(exp, rs)
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


def test_targets_outside_the_scene_or_inside_a_building_are_one_warning_line_each(canyon, capsys):
    """The street canyon's geometry spans x -94..92 m, y -60..61 m, z -0.03..51 m; building_5 stands at
    x 31.5..~48, y -34..-11 (its west wall at x = 31.52 m). In the street: no word."""
    assert _targets(canyon, [[24.0, -32.0, 1.5], [19.0, -25.0, 1.5]], capsys) == []
    lines = _targets(canyon, [[24.0, -32.0, 1.5], [150.0, 0.0, 1.5], [160.0, 5.0, 1.5], [40.0, -20.0, 5.0]], capsys)
    assert len(lines) == 2, lines
    assert lines[0].startswith("[reflectopt] warning: targets.points[1]: [150.0, 0.0, 1.5] (and 1 more target) lies "
                               "57.57 m outside the scene's bounding box"), lines
    assert lines[1].startswith("[reflectopt] warning: targets.points[3]: [40.0, -20.0, 5.0] lies inside "
                               "'building_5'"), lines
    below = _targets(canyon, [[24.0, -32.0, -2.0]], capsys)
    assert len(below) == 1 and "below the scene's lowest surface" in below[0], below


def test_targets_no_path_can_reach_are_refused_naming_them(canyon, capsys):
    with pytest.raises(ConfigError, match=r"^targets.points\[1\]: \[10000.0, 0.0, 1.5\] is 9908 m outside the scene"):
        _targets(canyon, [[24.0, -32.0, 1.5], [10000.0, 0.0, 1.5]], capsys)
    with pytest.raises(ConfigError, match=r"^targets.points\[0\]: .* is 500 m below the scene's lowest surface"):
        _targets(canyon, [[24.0, -32.0, -500.0]], capsys)
