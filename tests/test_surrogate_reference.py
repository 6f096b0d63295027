"""The plate surrogate (one model for one plate and several) against its values recorded on the code before
one and several plates became one model (tests/data/make_surrogate_reference.py, commit f2ce5e7: a separate
one-plate class and a multi-plate class): every example, 3 fixed poses, the objective, each target's power and
the gradient w.r.t. every plate's pose agree to float32 rounding. The model's physics is checked against
independent references elsewhere (the image method in tests/test_physics.py and tests/test_plates.py, the PO
factor in tests/test_po.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "data" / "surrogate_reference.npz"
# the examples shipped at f2ce5e7 (those recorded; later examples have no "before" to compare with)
EXAMPLES = sorted({k.split("/")[0] for k in np.load(REF).files})
REL = 2e-5  # float32 rounding: relative to the value's (or the gradient's) size


@pytest.fixture(scope="module")
def ref():
    from optimizer.physics import backend

    backend.init("cpu")
    return dict(np.load(REF))


def test_the_reference_covers_the_examples_it_was_recorded_on():
    assert EXAMPLES == ["indoor-corridor", "sector-street", "street-corner", "two-aps-sinr", "two-plates",
                        "wide-facade"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_surrogate_matches_the_recorded_reference_on_every_example(ref, name):
    from optimizer import objectives
    from optimizer.experiment.loading import load_experiment
    from optimizer.physics.surrogate import surrogate_for

    exp = load_experiment(ROOT / "examples" / f"{name}.yaml")
    targets = ref[f"{name}/targets"]
    sinr = (ref[f"{name}/sinr_serving"], ref[f"{name}/sinr_rest_db"]) if f"{name}/sinr_serving" in ref else None
    sur = surrogate_for(exp, targets, sinr=sinr)
    offs = [ref[f"{name}/offsets{k}"] for k in range(len(exp.plates()))]
    offs = [None if o.shape[0] == 1 else o for o in offs]
    obj = objectives.of(exp)
    for i in range(3):
        key = f"{name}/pose{i}"
        joint = list(ref[key + "/pose"])
        occl = list(ref[key + "/occlusion_db"])[: len(sur.path_names)]
        got = sur.evaluate(joint, 1.0, occlusion_db=occl, objective=obj, offsets=offs)
        want_v, want_g = float(ref[key + "/objective"]), ref[key + "/grad"]
        assert got["objective"] == pytest.approx(want_v, rel=REL, abs=1e-4), (name, i)
        np.testing.assert_allclose(got["power_dbm"], ref[key + "/power_dbm"], rtol=REL, atol=1e-3)
        scale = max(np.abs(want_g).max(), 1e-3)
        np.testing.assert_allclose(got["grad"], want_g, rtol=0, atol=REL * scale, err_msg=f"{name} pose {i}")
