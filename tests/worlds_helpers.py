"""Small experiments for the physics, world and Ray tests (real Sionna, small sample counts)."""

from __future__ import annotations

from pathlib import Path

import yaml

from optimizer.experiment import parse_experiment

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

STREET = {
    "name": "street-test",
    "scene": "builtin:simple_street_canyon",
    "frequency_hz": 3.5e9,
    "transmitters": [{"name": "ap1", "position": [-45.0, 0.0, 10.0], "power_dbm": 30}],
    # tolerance off: the tests of the search itself stay small; tests/test_tolerance.py turns it on
    "reflector": {"size_m": [4.0, 2.0], "bounds": {"min": [20.0, 7.5, 5.0], "max": [28.0, 8.5, 5.0]},
                  "yaw_deg": {"min": 90, "max": 180},
                  "tolerance": {"position_m": 0.0, "yaw_deg": 0.0, "pitch_deg": 0.0}},
    "targets": {"region": {"min": [22.5, -33.0], "max": [26.5, -31.0], "z": 1.5, "spacing_m": 1.0}},
    "objective": {"softmin_temperature_db": 1.0, "coverage_threshold_dbm": -90},
    # diffraction off: the optimiser tests want targets that only the plate reaches
    "solver": {"max_depth": 2, "samples_per_src": 20000, "refraction": False, "diffraction": False},
    "search": {"worlds": 2, "steps": 3, "seed": 0},
}


def street(**overrides):
    data = yaml.safe_load(yaml.safe_dump(STREET))
    for key, val in overrides.items():
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = val
    return parse_experiment(data, "test")


def write_yaml(path: Path, exp_or_dict) -> Path:
    data = exp_or_dict if isinstance(exp_or_dict, dict) else exp_or_dict.model_dump(mode="json")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
