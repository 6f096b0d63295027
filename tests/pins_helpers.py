"""The pin of every shipped example at a tiny budget (tests/test_pins.py): run through the driver's own
steps (prepare, the worlds on a local Ray, conclude) in this process, and the figures that must not move."""

from __future__ import annotations

import time

from optimizer.experiment import load_submitted, with_overrides
from optimizer.records import Overrides, RunMeta
from optimizer.spec import RunSpec
from worlds_helpers import EXAMPLES, REPO

PINS = REPO / "tests" / "data" / "pins.json"

# tiny and serial (one world at a time: Tune's result order, and so reuse and merge, fixed)
TINY = {"search.worlds": 2, "search.steps": 2, "search.concurrency": 1, "search.seed": 0, "search.reuse": "off",
        "search.robust_polish_boxes": 0.5, "solver.samples_per_src": 1000, "solver.max_depth": 1, "device": "cpu"}
EXAMPLE_NAMES = sorted(p.stem for p in EXAMPLES.glob("*.yaml"))


def tiny_example(name: str):
    sub = load_submitted(EXAMPLES / f"{name}.yaml")
    return with_overrides(sub.exp, sub.source, TINY), sub.sha256


def _r(v, nd=3):
    return None if v is None else round(float(v), nd)


def figures(summary) -> dict:
    """What the pin holds of a run: the winner's pose, its headline figures and the record's keys."""
    s = summary.model_dump(mode="json")
    w = s["winner"]
    return {
        "winner_world": w["world"],
        "winner_pose": [[_r(v, 4) for v in (p["x"], p["y"], p["z"], p["yaw_deg"], p["pitch_deg"])]
                        for p in w["joint_pose"]["plates"]],
        "size_arg": w.get("size_arg"),
        "winner": {k: _r(w[k]) for k in ("min_rss_dbm", "p5_rss_dbm", "mean_rss_dbm", "coverage")},
        "baseline": {k: _r(s["baseline"][k]) for k in ("min_rss_dbm", "p5_rss_dbm", "mean_rss_dbm", "coverage")},
        "objective": {"kind": s["objective"]["kind"], "baseline": _r(s["objective"]["baseline"]),
                      "winner": _r(s["objective"]["winner"])},
        "tolerance_holds": (w["tolerance"] or {}).get("holds"),
        "evaluations": s["evaluations"],
        "counts": s["counts"],
        "statuses": [o["status"] for o in s["worlds"]],
        "notes": len(w["notes"]),
        "keys": sorted(s),
        "winner_keys": sorted(w),
    }


def run_example(name: str, tune_dir: str) -> dict:
    from optimizer.search.conclude import conclude
    from optimizer.search.driver import now_utc, prepare, run_search

    t0 = time.perf_counter()
    from optimizer.search import robust_phase

    exp, sha = tiny_example(name)
    exp = robust_phase.with_freed_steps(exp)  # as `reflectopt run` does: the robust phase's freed budget
    prep = prepare(exp)
    meta = RunMeta(name=exp.name, run_id="pin", run_uri=tune_dir, status="running", created_utc=now_utc(),
                   experiment_sha256=sha,
                   overrides=Overrides(output=tune_dir, device=exp.device, worlds=exp.search.worlds, scene=exp.scene))
    spec = RunSpec.of(exp)
    collected = run_search(spec, prep, tune_dir, None, meta, resume=False, progress=False)
    return figures(conclude(spec, meta, prep, collected, t0).summary)


if __name__ == "__main__":  # regenerate tests/data/pins.json
    import json
    import sys
    import tempfile

    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    names = sys.argv[1:] or EXAMPLE_NAMES
    pins = json.loads(PINS.read_text()) if PINS.exists() else {}
    for n in names:
        pins[n] = run_example(n, tempfile.mkdtemp())
        PINS.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
    ray.shutdown()
