"""Reflector kinds as registered parts (`optimizer.registry.REFLECTOR_KINDS`, issue 21).

The cost of a new kind: `InsetPlate` below is a whole new kind (its module would be this class plus its
registration: 1 module of ours; none of ours changes). The experiment accepts its name, and the truth's mesh,
the scene-cut test, the overlap test and the surrogate all take the plate from it."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.physics import backend
from optimizer.physics.reflectors import kind_of, register_reflector_kind
from optimizer.physics.reflectors.flat_plate import FlatPlate
from optimizer.records import PlatePose
from worlds_helpers import street

RIM = 0.2  # the inset plate's non-reflecting rim, a share of each side


@register_reflector_kind
class InsetPlate(FlatPlate):
    """A toy kind: a flat plate in a frame whose rim does not reflect; only its inner (1 - RIM) x (1 - RIM)
    reflects, so everything follows the flat plate of the smaller size."""

    name = "test_inset_plate"

    def __init__(self, size_m, thickness_m: float = 0.01):
        super().__init__([(1.0 - RIM) * float(size_m[0]), (1.0 - RIM) * float(size_m[1])], thickness_m)


def _exp(kind: str | None, **over):
    return street(**({"reflector.kind": kind} if kind else {}), **over)


def test_the_default_kind_is_flat_plate_and_keeps_the_hash():
    """No `kind` key: a `flat_plate` of the plate's size, and the experiment hashes as it did before kinds."""
    exp = _exp(None)
    k = kind_of(exp.reflector)
    assert type(k) is FlatPlate and k.size == (4.0, 2.0)
    assert '"kind"' not in exp.canonical_json()
    assert _exp("flat_plate").canonical_json() == exp.canonical_json()


def test_an_unknown_kind_is_one_line_naming_the_key():
    from optimizer.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        _exp("parabolic")
    lines = str(err.value).splitlines()
    assert len(lines) == 1 and "reflector.kind" in lines[0] and "flat_plate" in lines[0], lines


def test_a_registered_kind_runs_in_the_surrogate():
    """The surrogate built for an experiment of the toy kind (the one factory, `surrogate_for`) gives the value
    and gradient of a flat plate of the inner size, and not those of the outer size."""
    from optimizer.physics.surrogate import PlateSurrogate, surrogate_for

    backend.init("cpu", threads=2)
    exp = _exp(InsetPlate.name)
    targets = np.array([[24.0, -30.0, 1.5], [25.0, -31.0, 1.5], [23.0, -32.0, 1.5]])
    sur = surrogate_for(exp, targets)
    assert [type(k) for k in sur.kinds] == [InsetPlate]
    vec = [24.0, 8.0, 5.0, 130.0, 0.0]
    got = sur.evaluate(vec, 0.5)
    tx = [t.position for t in exp.transmitters]
    inner = PlateSurrogate(tx, [30.0], targets, [(3.2, 1.6)], sur.wavelength).evaluate(vec, 0.5)
    outer = PlateSurrogate(tx, [30.0], targets, [(4.0, 2.0)], sur.wavelength).evaluate(vec, 0.5)
    assert got["objective"] == pytest.approx(inner["objective"], abs=1e-4)
    np.testing.assert_allclose(got["grad"], inner["grad"], atol=1e-4)
    assert abs(got["objective"] - outer["objective"]) > 0.1


def test_a_registered_kind_runs_a_world_step_end_to_end():
    """A world of the toy kind on the street scene: the truth's plate mesh is the kind's (the inner size), and
    surrogate steps run (truth evaluations counted, a finite score)."""
    from optimizer.physics.scene import RadioScene
    from optimizer.search.world import World

    exp = _exp(InsetPlate.name, **{"solver.samples_per_src": 5000})
    rs = RadioScene(exp, device="cpu", threads=2)
    pose = PlatePose(24.0, 8.0, 5.0, 140.0)
    rs.set_pose(pose)
    np.testing.assert_allclose(rs.plate_vertices(0), FlatPlate((3.2, 1.6)).corners(pose), atol=1e-5)
    w = World(exp, 0, pose, radio_scene=rs, baseline_rss=rs.rss_dbm(None))
    w.step()
    assert w.evaluations == 2 and np.isfinite(w.best.score)
