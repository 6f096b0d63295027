"""`reflectopt run` end to end on this machine (local Ray on 127.0.0.1, CPU, local folder), Ctrl-C, resume."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optimizer.records import PlatePose as Pose
from optimizer.physics.metrics import rss_stats
from worlds_helpers import REPO, street, write_yaml

CLI = [sys.executable, "-m", "optimizer.cli"]
ENV = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONUNBUFFERED": "1"}


def _run_dir(out: Path, name: str) -> Path:
    runs = sorted((out / name).iterdir())
    assert len(runs) == 1
    return runs[0]


def test_run_writes_complete_results(tmp_path):
    exp = street(**{"search.worlds": 3, "search.steps": 4, "solver.samples_per_src": 20000,
                    "search.prune": {"grace_steps": 2, "reduction_factor": 2},
                    "reflector.tolerance": {"position_m": 0.05, "yaw_deg": 1.0, "pitch_deg": 1.0}})
    f = write_yaml(tmp_path / "e.yaml", exp)
    r = subprocess.run(CLI + ["run", str(f), "--output", str(tmp_path / "out"), "--no-progress"],
                       capture_output=True, text=True, cwd=REPO, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    run = _run_dir(tmp_path / "out", exp.name)
    s = json.loads((run / "summary.json").read_text())
    for key in ("name", "run_id", "baseline", "winner", "worlds", "evaluations", "versions", "experiment_sha256"):
        assert key in s
    for part in ("baseline", "winner"):
        assert set(s[part]) >= {"min_rss_dbm", "p5_rss_dbm", "mean_rss_dbm", "coverage"}
    assert set(s["winner"]["pose"]) == {"x", "y", "z", "yaw_deg", "pitch_deg"}
    assert len(s["worlds"]) == 3 + s["counts"]["reused"] == 3 + len(s["reused"])  # + worlds in freed slots
    for w in s["worlds"]:
        assert set(w) >= {"world", "initial_pose", "final_pose", "best", "status", "steps"}
        assert w["status"] in ("completed", "pruned", "merged")
    from optimizer.search.robust_phase import freed_steps

    assert s["world_steps"] <= 3 * (4 + freed_steps(exp))  # reused slots stay within the budget (the steps plus
    # the robust phase's freed steps)
    for r in s["reused"]:
        assert r["world"] >= 3 and r["freed_by"] in {w["world"] for w in s["worlds"] if w["status"] != "completed"}
        assert r["kind"] in ("exploit", "explore") and (r["kind"] == "explore") == (r["parent"] is None)
    assert s["versions"]["sionna-rt"] == "2.2.0"
    assert s["baseline"]["min_rss_dbm"] is None  # a target no path reaches: null, never a floor number
    assert s["winner"]["min_rss_dbm"] is not None and s["gain_db"]["min"] is None
    assert s["coverage_gain"]["targets"] > 0
    # the winner was checked over its mounting tolerance, and the solver and convergence are recorded
    tol = s["winner"]["tolerance"]
    assert tol["complete"] and tol["poses_checked"] >= 41 and tol["position_m"] == 0.05
    assert set(tol) >= {"position_m", "yaw_deg", "pitch_deg", "poses_checked", "worst_min_rss_dbm", "worst_coverage",
                        "nominal_min_rss_dbm", "holds", "margin_scale"}
    assert (tol["margin_scale"] == 1.0) == tol["holds"]
    # the robust phase (halving): the winner's world was checked and polished; a completed world without a
    # check was stopped by its nominal bound; every one of the phase's evaluations is in the run's count
    phase = s["robust_phase"]
    assert phase["mode"] == "halving" and phase["polished"] >= 1 and phase["checked"] >= 1
    assert phase["checked"] + phase["stopped"] >= phase["candidates"] >= s["counts"]["completed"]
    assert next(w for w in s["worlds"] if w["world"] == s["winner"]["world"])["tolerance"] is not None
    in_worlds = sum(w["evaluations"] for w in s["worlds"])
    assert in_worlds >= s["world_steps"] + phase["evaluations"] and s["evaluations"] >= in_worlds + 6
    assert s["counts"]["robust"] == sum(bool(w["tolerance"] and w["tolerance"]["holds"] and w["tolerance"]["complete"])
                                        for w in s["worlds"])
    assert s["solver"]["diffraction"] is False and s["solver"]["deterministic"] is True
    assert set(s["winner"]["truth_convergence"]) >= {"depth_plus_1_db", "samples_x4_db"}
    # the record validates against its own schema (what `reflectopt schema summary` prints)
    import jsonschema

    from optimizer.records import Summary

    jsonschema.validate(s, Summary.model_json_schema())
    # the experiment as submitted, targets and trajectories
    assert (run / "experiment.yaml").read_text() == f.read_text()
    rows = list(csv.DictReader((run / "targets.csv").open()))
    assert len(rows) == 15
    assert min(float(x["winner_rss_dbm"]) for x in rows) == pytest.approx(s["winner"]["min_rss_dbm"], abs=1e-3)
    traj = list(csv.DictReader((run / "trajectories.csv").open()))
    assert len(traj) == sum(w["steps"] for w in s["worlds"])
    # the winner's numbers are ray-traced truth at the reported pose (final sample count)
    from optimizer.physics.scene import RadioScene

    rs = RadioScene(exp, device="cpu", threads=2)
    pose = Pose(**s["winner"]["pose"])
    assert Pose.from_seq(s["winner"]["pose_arg"].split(",")) == pose  # the --pose= string is exact
    truth = rss_stats(rs.rss_dbm(pose, samples_per_src=s["winner"]["samples_per_src"]), -90)
    assert truth.min_rss_dbm == pytest.approx(s["winner"]["min_rss_dbm"], abs=1e-3)
    # winner_scene/ loads in Sionna with the plate mounted at the winning pose
    import sionna.rt as rt

    scene = rt.load_scene(str(run / "winner_scene" / "scene.xml"), merge_shapes=False)
    plate = [o for name, o in scene.objects.items() if "reflectopt-plate" in name]
    assert len(plate) == 1
    import numpy as np

    from optimizer.physics.geometry import plate_corners

    bb = plate[0].mi_mesh.bbox()
    corners = plate_corners(pose, exp.reflector.size_m)
    np.testing.assert_allclose(np.array(bb.min), corners.min(0), atol=1e-3)
    np.testing.assert_allclose(np.array(bb.max), corners.max(0), atol=1e-3)


def test_ctrl_c_keeps_work_and_resume_completes(tmp_path):
    exp = street(**{"search.worlds": 2, "search.steps": 12, "search.prune": "off", "search.concurrency": 1,
                    "search.checkpoint_every": 1,
                    "solver.samples_per_src": 20000})
    f = write_yaml(tmp_path / "e.yaml", exp)
    out = tmp_path / "out"
    p = subprocess.Popen(CLI + ["run", str(f), "--output", str(out), "--no-progress"], cwd=REPO, env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 300
    # wait until world 0 has checkpointed a few steps, then interrupt like Ctrl-C
    while time.time() < deadline:
        cks = list(out.glob("*/*/checkpoints/worlds/world-000/checkpoint_*"))
        if len(cks) >= 2:
            break
        time.sleep(0.5)
    os.killpg(p.pid, signal.SIGINT)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 130, stderr[-3000:]
    run = _run_dir(out, exp.name)
    assert not (run / "summary.json").exists()
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    assert "reflectopt resume" in stderr
    assert "Tuner.restore" not in stdout + stderr  # Ray's advice, wrong for our users: ours only
    r = subprocess.run(CLI + ["resume", str(run), "--no-progress"], capture_output=True, text=True, cwd=REPO,
                       env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((run / "summary.json").read_text())
    assert [w["status"] for w in s["worlds"]] == ["completed", "completed"]
    assert all(w["steps"] == 12 for w in s["worlds"])
    assert s["failures"] == [] and all(w["restarts"] == 0 for w in s["worlds"])  # Ctrl-C is no crash
    traj = list(csv.DictReader((run / "trajectories.csv").open()))
    steps0 = [int(t["step"]) for t in traj if t["world"] == "0"]
    assert steps0 == list(range(1, 13))  # nothing lost or repeated across the interruption
    r2 = subprocess.run(CLI + ["resume", str(run)], capture_output=True, text=True, cwd=REPO, env=ENV, timeout=60)
    assert r2.returncode == 1 and "already complete" in r2.stderr


def _start_and_wait_for_checkpoints(tmp_path, steps: int = 120):
    """A `reflectopt run` subprocess of a small experiment, once world 0 has checkpointed two steps. A step of
    this scene takes about 0.05 s: with 8 steps world 0 had sometimes finished them all before a signal sent
    at its second checkpoint took effect (its line then rightly said 1 world unfinished, not 2)."""
    exp = street(**{"search.worlds": 2, "search.steps": steps, "search.prune": "off", "search.concurrency": 1,
                    "search.checkpoint_every": 1, "solver.samples_per_src": 20000})
    f = write_yaml(tmp_path / "e.yaml", exp)
    out = tmp_path / "out"
    p = subprocess.Popen(CLI + ["run", str(f), "--output", str(out), "--no-progress"], cwd=REPO, env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 300
    while len(list(out.glob("*/*/checkpoints/worlds/world-000/checkpoint_*"))) < 2:
        if p.poll() is not None or time.time() > deadline:
            p.kill()
            raise AssertionError(f"no checkpoints: {p.communicate()[1][-3000:]}")
        time.sleep(0.5)
    return p, _run_dir(out, exp.name)


def test_resume_of_a_run_whose_driver_is_alive_is_refused(tmp_path):
    """Two drivers on one run folder disagree about its worlds: `resume` names the live one and touches nothing."""
    p, run = _start_and_wait_for_checkpoints(tmp_path)
    try:
        r = subprocess.run(CLI + ["resume", str(run), "--no-progress"], capture_output=True, text=True, cwd=REPO,
                           env=ENV, timeout=120)
        assert r.returncode == 2, r.stderr[-3000:]
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert f"pid {p.pid} on host " in lines[0] and "still being run" in lines[0]
        assert json.loads((run / "run.json").read_text())["status"] == "running"
        assert json.loads((run / "lease.json").read_text())["pid"] == p.pid
        assert p.poll() is None  # the live run goes on
    finally:
        os.killpg(p.pid, signal.SIGINT)
        p.communicate(timeout=300)
    assert p.returncode == 130
    assert not (run / "lease.json").exists()  # the driver gave it up: `resume` may take the run now


def test_sigterm_is_an_interrupt_and_resume_completes(tmp_path):
    """SIGTERM (Kubernetes deleting or evicting the pod), sent to the driver alone: checkpoints kept, run.json
    interrupted, one line of ours, exit 143; `resume` completes the run."""
    p, run = _start_and_wait_for_checkpoints(tmp_path)
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 143, stderr[-3000:]
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    ours = [ln for ln in stderr.splitlines() if "reflectopt resume" in ln]
    assert ours == [f"[reflectopt] interrupted by SIGTERM: 2 worlds unfinished; checkpoints kept; continue with "
                    f"`reflectopt resume {run}`"], stderr[-3000:]
    assert "Traceback" not in stderr and "Tuner.restore" not in stdout + stderr
    r = subprocess.run(CLI + ["resume", str(run), "--no-progress"], capture_output=True, text=True, cwd=REPO,
                       env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((run / "summary.json").read_text())
    assert [w["status"] for w in s["worlds"]] == ["completed", "completed"] and s["failures"] == []


def test_ctrl_c_in_the_robust_phase_is_an_interrupt_and_resume_completes(tmp_path):
    """Ctrl-C after the worlds have finished, while the driver checks and polishes candidates (the robust
    phase): Tune's own SIGINT handler outlived its loop and only set a flag, so the run went on. Now: exit
    130, run.json interrupted, one line of ours; `resume` concludes the run."""
    import threading

    exp = street(**{"search.worlds": 2, "search.steps": 3, "search.prune": "off", "search.concurrency": 2,
                    "solver.samples_per_src": 20000,
                    # a tolerance box: the robust phase runs (with the street's default, off, there is none)
                    "reflector.tolerance": {"position_m": 0.05, "yaw_deg": 1.0, "pitch_deg": 1.0}})
    f = write_yaml(tmp_path / "e.yaml", exp)
    out = tmp_path / "out"
    p = subprocess.Popen(CLI + ["run", str(f), "--output", str(out), "--no-progress"], cwd=REPO, env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines, started = [], threading.Event()

    def read():
        for ln in p.stderr:
            lines.append(ln)
            if "robust phase: checking" in ln:
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not started.wait(600):
        p.kill()
        raise AssertionError("".join(lines)[-3000:])
    time.sleep(2)
    p.send_signal(signal.SIGINT)
    p.wait(timeout=300)
    reader.join(30)
    stderr = "".join(lines)
    assert p.returncode == 130, stderr[-3000:]
    run = _run_dir(out, exp.name)
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    assert not (run / "summary.json").exists()
    ours = [ln for ln in stderr.splitlines() if "reflectopt resume" in ln]
    assert ours == [f"[reflectopt] interrupted; checkpoints kept; continue with `reflectopt resume {run}`"], \
        stderr[-3000:]
    assert "Traceback" not in stderr and "RuntimeError" not in stderr, stderr[-3000:]  # an interrupt inside a
    # Dr.Jit loop reaches us wrapped in its RuntimeError: still one line of ours
    r = subprocess.run(CLI + ["resume", str(run), "--no-progress"], capture_output=True, text=True, cwd=REPO,
                       env=ENV, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((run / "summary.json").read_text())
    assert [w["status"] for w in s["worlds"]] == ["completed", "completed"] and s["winner"] is not None


def test_leftovers_of_a_killed_run_are_stopped_and_only_those(tmp_path):
    """A driver killed with SIGKILL leaves Ray's agents running, holding files in its session folder (seen:
    ray::DashboardAgent, ray::RuntimeEnvAgent). The next run of the experiment stops those processes and marks
    that run interrupted; a session whose head still runs (here: a process naming its folder) is left alone."""
    from optimizer.cli.run import _earlier_runs, _stop_leftovers
    from optimizer.records import Overrides, RunMeta
    from optimizer.store.runstore import RunStore

    def holder(session: Path, *argv):  # a process that keeps a log file of `session` open
        (session / "logs").mkdir(parents=True)
        code = "import os, time; f = open(os.environ['LOG'], 'a'); time.sleep(120)"  # no path in argv
        p = subprocess.Popen([sys.executable, "-c", code, *argv], env={**os.environ,
                                                                       "LOG": str(session / "logs" / "agent.log")})
        deadline = time.time() + 20
        while not any(f.path.endswith("agent.log") for f in psutil.Process(p.pid).open_files()):
            assert time.time() < deadline
            time.sleep(0.1)
        return p

    import psutil

    dead, alive = tmp_path / "ray" / "session_dead", tmp_path / "ray" / "session_alive"
    orphan = holder(dead)
    head = holder(alive, str(alive))  # its command line names the folder: that session still runs
    try:
        out = tmp_path / "out"
        for run_id, session in (("20260101T000000Z-aaaa", dead), ("20260101T000001Z-bbbb", alive)):
            store = RunStore(str(out / "exp" / run_id))
            store.local.mkdir(parents=True)
            store.write_meta(RunMeta(name="exp", run_id=run_id, run_uri=store.uri, status="running",
                                     created_utc="2026-01-01T00:00:00Z", experiment_sha256="0" * 64,
                                     overrides=Overrides(output=str(out), device="cpu", worlds=1, scene="x"),
                                     ray_session=str(session)))
        earlier = _earlier_runs(str(out), "exp")
        assert len(earlier) == 2
        _stop_leftovers(earlier, resuming=False)
        assert orphan.wait(timeout=20) is not None  # stopped
        assert head.poll() is None  # untouched
        status = {p.parent.name: json.loads(p.read_text())["status"] for p in out.glob("exp/*/run.json")}
        assert status == {"20260101T000000Z-aaaa": "interrupted", "20260101T000001Z-bbbb": "running"}
    finally:
        for p in (orphan, head):
            if p.poll() is None:
                p.kill()
                p.wait()
