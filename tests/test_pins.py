"""Every shipped example at a tiny budget and a fixed seed, through the driver's own steps (prepare, the worlds
as Tune trials on a local Ray, conclude): the winner's pose, the headline figures and the summary's keys
are pinned in tests/data/pins.json. A refactor that changes any of them changes behaviour.

Regenerate (only for a change meant to move results): `python tests/pins_helpers.py` writes the file."""

import json
import os

import pytest

from pins_helpers import EXAMPLE_NAMES, PINS, run_example


@pytest.fixture(scope="module")
def local_ray():
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_keeps_its_winner_and_figures(name, local_ray, tmp_path):
    pinned = json.loads(PINS.read_text())[name]
    got = json.loads(json.dumps(run_example(name, str(tmp_path / "tune"))))
    assert got == pinned
