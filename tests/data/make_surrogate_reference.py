"""Writes tests/data/surrogate_reference.npz: the plate surrogate's value, per-target power and gradient for
every example (examples/*.yaml) at fixed poses, with the inputs that need a scene (targets, tolerance-corner
offsets, occlusion penalties, sinr terms) stored beside them, so `tests/test_surrogate_reference.py` rebuilds
the model without a Sionna solve. Recorded once on the code before the one- and several-plate surrogates
became one (commit f2ce5e7); rerun it only to record a deliberate change of the model.

    .venv/bin/python tests/data/make_surrogate_reference.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
POSES = 3  # per example: the box centre, then seeded draws in the bounds


def poses_of(exp, rng) -> list[np.ndarray]:
    """POSES joint poses (one [5] vector per plate): the centre of each plate's bounds, then uniform draws."""
    out = []
    for i in range(POSES):
        joint = []
        for r in exp.plates():
            lo = np.array(list(r.bounds.min) + [r.yaw_deg.min, r.pitch_deg.min if r.pitch_deg else 0.0])
            hi = np.array(list(r.bounds.max) + [r.yaw_deg.max, r.pitch_deg.max if r.pitch_deg else 0.0])
            joint.append(0.5 * (lo + hi) if i == 0 else lo + rng.uniform(0.0, 1.0, 5) * (hi - lo))
        out.append(np.array(joint))
    return out


def build_old(exp, rs, sinr):  # the code of f2ce5e7 (one-plate and several-plate classes)
    try:
        from optimizer.physics.surrogate import surrogate_for  # after: one model (joint poses only below)

        return surrogate_for(exp, rs.targets, sinr=sinr)
    except ImportError:
        pass
    from optimizer.physics.geometry import wavelength_m
    from optimizer.search.modes.surrogate import antenna_specs

    args = ([t.position for t in exp.transmitters], [t.power_dbm for t in exp.transmitters], rs.targets)
    kw = dict(aperture=exp.search.surrogate_level == "po", antennas=antenna_specs(exp, rs.targets))
    if len(exp.plates()) == 1:
        from optimizer.physics.surrogate import PlateSurrogate

        return PlateSurrogate(*args, exp.plates()[0].size_m, wavelength_m(exp.frequency_hz), sinr=sinr, **kw)
    from optimizer.physics.multi_surrogate import MultiPlateSurrogate

    return MultiPlateSurrogate(*args, [r.size_m for r in exp.plates()], wavelength_m(exp.frequency_hz), **kw)


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from optimizer import objectives
    from optimizer.experiment.loading import load_experiment
    from optimizer.physics.scene import RadioScene
    from optimizer.physics.tolerance import corner_offsets, frames, half_widths, world_offsets
    from optimizer.search.modes.surrogate import sinr_terms

    rec = {}
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        name = path.stem
        exp = load_experiment(path)
        rs = RadioScene(exp, device="cpu", with_plate=False)
        sinr = sinr_terms(exp, rs)
        offs = [world_offsets(corner_offsets(half_widths(r.tolerance)), f.yaw_deg) if r.tolerance.active
                else np.zeros((1, 5)) for r, f in zip(exp.plates(), frames(rs, exp))]
        sur = build_old(exp, rs, sinr)
        obj = objectives.of(exp)
        rng = np.random.default_rng(7)
        rec[f"{name}/targets"] = rs.targets
        for k, o in enumerate(offs):
            rec[f"{name}/offsets{k}"] = o
        if sinr is not None:
            rec[f"{name}/sinr_serving"], rec[f"{name}/sinr_rest_db"] = sinr
        for i, joint in enumerate(poses_of(exp, rng)):
            occl_all = [rng.choice([0.0, 30.0], size=(len(exp.transmitters), len(rs.targets)), p=[0.8, 0.2])
                        for _ in range(len(joint) ** 2)]  # one per path (plates, then plate pairs)
            key = f"{name}/pose{i}"
            rec[key + "/pose"] = joint
            rec[key + "/occlusion_db"] = np.stack(occl_all)
            if len(joint) == 1 and not hasattr(sur, 'kinds'):
                r = sur.evaluate(joint[0], 1.0, occlusion_db=occl_all[0], objective=obj,
                                 offsets=None if offs[0].shape[0] == 1 else offs[0])
            else:
                r = sur.evaluate(list(joint), 1.0, occlusion_db=occl_all, objective=obj,
                                 offsets=[None if o.shape[0] == 1 else o for o in offs])
            rec[key + "/objective"] = np.array(r["objective"])
            rec[key + "/power_dbm"] = np.asarray(r["power_dbm"])
            rec[key + "/grad"] = np.asarray(r["grad"]).reshape(len(joint), 5)
            print(name, i, r["objective"], np.asarray(r["grad"]).ravel()[:5])
    np.savez_compressed(ROOT / "tests" / "data" / "surrogate_reference.npz", **rec)


if __name__ == "__main__":
    main()
