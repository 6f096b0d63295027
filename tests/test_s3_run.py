"""Results on S3: `reflectopt results ls|get`; full `reflectopt run`s with scene and output on S3 through store
outages (short: survived; long: one line, resumable), with no secret in any log or result."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import OutageStore

from optimizer.cli import main
from optimizer.store import assets, results, storage
from records_helpers import minimal_summary


def fake_run(d: Path, rss: float | None) -> Path:
    (d / "heatmaps").mkdir(parents=True)
    (d / "experiment.yaml").write_text("name: x\n")
    (d / "heatmaps" / "a.png").write_bytes(b"\x89PNG")
    (d / "checkpoints" / "c0").mkdir(parents=True)
    (d / "checkpoints" / "c0" / "state.pkl").write_bytes(b"\0" * 100)
    if rss is not None:
        (d / "summary.json").write_text(minimal_summary(rss).to_json())
    return d


@pytest.fixture
def output(s3_bucket, tmp_path):
    out = f"s3://{s3_bucket}/results"
    storage.publish_run(fake_run(tmp_path / "a", -70.25), storage.run_uri(out, "alpha", "20261126T101500Z-aaaa"))
    storage.publish_run(fake_run(tmp_path / "b", -65.0), storage.run_uri(out, "alpha", "20261127T090000Z-bbbb"))
    storage.upload_dir(fake_run(tmp_path / "c", None), storage.run_uri(out, "beta", "20261127T100000Z-cccc"))
    return out


def test_results_ls(output, capsys):
    rows = results.list_runs(output)
    assert [(r["name"], r["run_id"], r["complete"], r["min_rss_dbm"]) for r in rows] == [
        ("alpha", "20261126T101500Z-aaaa", True, -70.25),
        ("alpha", "20261127T090000Z-bbbb", True, -65.0),
        ("beta", "20261127T100000Z-cccc", False, None),
    ]
    assert [r["run_id"] for r in results.list_runs(f"{output}/alpha")] == ["20261126T101500Z-aaaa",
                                                                            "20261127T090000Z-bbbb"]
    assert main(["results", "ls", output]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "RUN", "ID", "STATUS", "MIN", "RSS", "[dBm]", "COVERAGE"]
    assert lines[1].split() == ["alpha", "20261126T101500Z-aaaa", "complete", "-70.25", "100.0", "%"]
    assert lines[3].split() == ["beta", "20261127T100000Z-cccc", "incomplete", "-", "-"]
    assert main(["results", "ls", output + "-nope"]) == 1
    assert "nothing there" in capsys.readouterr().err


def test_results_get(output, tmp_path, capsys):
    run = f"{output}/alpha/20261126T101500Z-aaaa"
    assert main(["results", "get", run, str(tmp_path / "dl")]) == 0
    got = storage.list(tmp_path / "dl", recursive=True)
    assert got == ["experiment.yaml", "heatmaps/a.png", "summary.json"]  # checkpoints skipped by default
    assert main(["results", "get", run, str(tmp_path / "dl2"), "--checkpoints"]) == 0
    assert "checkpoints/c0/state.pkl" in storage.list(tmp_path / "dl2", recursive=True)
    capsys.readouterr()
    assert main(["results", "get", f"{output}/beta/20261127T100000Z-cccc", str(tmp_path / "dl3")]) == 0
    assert "incomplete" in capsys.readouterr().err


# --- full runs on S3: secrets, outages -----------------------------------------------------------
CLI = [sys.executable, "-m", "optimizer.cli"]
SECRET = "S3cr3t-Only-In-The-Env-9f2c"  # moto accepts any key; it must never land in a log or a result


def _street_canyon_bundle(dest: Path) -> Path:
    from sionna import rt

    xml = Path(rt.scene.simple_street_canyon)
    shutil.copytree(xml.parent, dest)
    (dest / xml.name).rename(dest / "scene.xml")
    return dest


EXPERIMENT = """\
name: s3-smoke
scene: {scene}
scene_sha256: {sha}
frequency_hz: 3.5e9
transmitters:
  - {{name: tx, position: [-30.0, 0.0, 15.0]}}
reflector:
  size_m: [2.0, 2.0]
  bounds: {{min: [-5.0, -5.0, 5.0], max: [5.0, 5.0, 10.0]}}
targets:
  points: [[20.0, 10.0, 1.5], [25.0, -10.0, 1.5]]
solver: {{max_depth: 1, samples_per_src: 5000}}
search: {{worlds: 2, steps: {steps}, prune: off, checkpoint_every: 1}}
device: cpu
output: {output}
"""


@pytest.fixture
def ray_tmp():
    """A short private RAY_TMPDIR (socket paths have a length limit), removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="rf", dir=os.environ.get("RAY_TMPDIR") or "/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def outage_store(tmp_path, monkeypatch):
    """A private S3 store that can go down mid-run (conftest.OutageStore), in this process's environment."""
    store = OutageStore(log_path=str(tmp_path / "moto.log"))
    try:
        for k, v in {**store.env, "AWS_SECRET_ACCESS_KEY": SECRET}.items():
            monkeypatch.setenv(k, v)
        for k in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
            monkeypatch.delenv(k, raising=False)
        store.client().create_bucket(Bucket="runs")
        yield store
    finally:
        store.close()


def _cli_env(tmp_path: Path, ray_tmp: Path, **extra) -> dict:
    tmp = tmp_path / "t"  # TMPDIR of the run: where its staging folders go
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp),
            "RAY_TMPDIR": str(ray_tmp), "REFLECTOPT_CACHE_DIR": str(tmp_path / "cache"), **extra}


def _checkpoints(store) -> int:
    keys = [o["Key"] for o in store.client().list_objects_v2(Bucket="runs").get("Contents", [])]
    return sum("/checkpoint_" in k for k in keys)


def _when_checkpoints(proc, store, n: int, then) -> threading.Thread:
    """Call `then()` (in a thread) once `n` checkpoint objects exist in the store."""
    def watch():
        while proc.poll() is None:
            if _checkpoints(store) >= n:
                then()
                return
            time.sleep(0.2)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def _planned_steps(summary: dict) -> int:
    """The steps each world ran to: search.steps (8) plus the robust phase's freed steps, the same for both."""
    planned = {w["planned_steps"] for w in summary["worlds"]}
    assert len(planned) == 1 and min(planned) >= 8, planned
    return planned.pop()


def _steps_by_world(run: str) -> dict:
    rows = storage.read_text(storage.join(run, "trajectories.csv")).splitlines()[1:]
    out: dict = {}
    for r in rows:
        world, step = r.split(",")[:2]
        out.setdefault(int(world), []).append(int(step))
    return out


def _setup_run(tmp_path, steps: int) -> tuple[str, str]:
    scene_uri = "s3://runs/scenes/canyon"
    sha = assets.push_bundle(_street_canyon_bundle(tmp_path / "canyon"), scene_uri)
    exp_uri = "s3://runs/experiments/s3-smoke.yaml"
    storage.write_text(exp_uri, EXPERIMENT.format(scene=scene_uri, sha=sha, output="s3://runs/results", steps=steps))
    return exp_uri, "s3://runs/results"


def test_worlds_outage_notes_reach_the_driver_console_once(local_ray, monkeypatch):
    """Two worlds' processes (Ray workers, their output off the console) see the same outage: the driver's
    console gets its warning and its end, one line each (before, they went to the workers' logs only)."""
    import ray

    from optimizer.search import outage

    @ray.remote(num_cpus=0)
    def world_in_an_outage(down_s: float) -> int:
        from optimizer.search import outage as world_side
        from optimizer.store import storage as store

        world_side.to_driver()
        store._note_outage(True, "save", "s3://runs/x", "no connection (EndpointConnectionError)", 180.0)
        time.sleep(down_s)
        store._note_outage(False, "save", "s3://runs/x", "", 180.0)
        return os.getpid()

    lines = []
    monkeypatch.setattr(outage.console, "_write", lines.append)
    outage.reset()
    pids = ray.get([world_in_an_outage.remote(2.0), world_in_an_outage.remote(2.5)])
    assert len(set(pids)) == 2  # two processes, each noting the outage
    outage.poll(force=True)
    assert len(lines) == 2, lines
    assert lines[0].startswith("warning: object store at "), lines
    assert "unreachable (save s3://runs/x: no connection (EndpointConnectionError)); retrying for up to 180 s" \
        in lines[0]
    assert re.fullmatch(r"object store answers again \(after [23] s\)", lines[1]), lines
    outage.poll(force=True)
    assert len(lines) == 2  # read once


@pytest.mark.slow
def test_s3_run_survives_a_store_restart_and_logs_no_secret(outage_store, tmp_path, ray_tmp):
    """Scene, experiment and output on S3; the store goes down mid-run for 6 s (stopped and restarted, every
    object kept) and the run completes with nothing lost. The secret key, in the environment only, is in no
    file of the Ray temp folder (Ray Tune would copy it into every trial's runtime env, which Ray logs), in
    no result and in no output line."""
    exp_uri, output = _setup_run(tmp_path, steps=8)
    env = _cli_env(tmp_path, ray_tmp)
    proc = subprocess.Popen(CLI + ["run", exp_uri, "--no-progress"], env=env, cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    at = {}

    def outage():
        at["checkpoints"] = _checkpoints(outage_store)
        outage_store.outage(6.0)

    watcher = _when_checkpoints(proc, outage_store, 3, outage)
    out, err = proc.communicate(timeout=600)
    watcher.join(30)
    assert proc.returncode == 0, err[-3000:]
    assert outage_store.restarts == 1 and _checkpoints(outage_store) > at["checkpoints"]  # it hit the run
    assert "Traceback" not in err
    # the outage on the console (it hit the worlds, whose own output stays off it): one line each way
    down = [ln for ln in err.splitlines() if "object store at http://127.0.0.1:" in ln]
    up = [ln for ln in err.splitlines() if "object store answers again" in ln]
    assert len(down) == 1 and down[0].startswith("[reflectopt] warning: ") and "unreachable" in down[0], err
    assert len(up) == 1 and re.fullmatch(r"\[reflectopt\] object store answers again \(after \d+ s\)", up[0]), err
    assert 4 <= int(re.search(r"after (\d+) s", up[0]).group(1)) <= 60, up
    assert err.index(down[0]) < err.index(up[0])
    runs = results.list_runs(output)
    assert len(runs) == 1 and runs[0]["complete"], runs
    run = runs[0]["uri"]
    files = storage.list(run, recursive=True)
    for f in ("experiment.yaml", "summary.json", "targets.csv", "trajectories.csv", "winner_scene/scene.xml",
              "report.html"):
        assert f in files, (f, files)
    assert any(f.startswith("heatmaps/") and f.endswith(".png") for f in files), files
    assert any(f.startswith("checkpoints/") for f in files), files  # Ray Tune storage_path under the run
    assert len(assets.downloads_logged(tmp_path / "cache")) == 1  # two worlds, one node, one download
    summary = json.loads(storage.read_text(storage.join(run, "summary.json")))
    assert summary["failures"] == [] and [w["status"] for w in summary["worlds"]] == ["completed"] * 2
    steps = _planned_steps(summary)  # 8 + the robust phase's freed steps (optimizer.search.robust_phase)
    assert _steps_by_world(run) == {0: list(range(1, steps + 1)), 1: list(range(1, steps + 1))}  # nothing lost
    assert not list((tmp_path / "t").glob("reflectopt-run-*"))  # no staging folder left
    # the secret: nowhere
    dl = tmp_path / "dl"
    storage.download_dir(run, dl)
    searched = [p for root in (ray_tmp, dl) for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    assert any(p.name == "runtime_env_agent.log" for p in searched)  # Ray's logs really were searched
    leaks = [str(p) for p in searched if SECRET.encode() in p.read_bytes()]
    assert leaks == [] and SECRET not in out + err


@pytest.mark.slow
def test_long_store_outage_fails_in_one_line_and_resume_continues(outage_store, tmp_path, ray_tmp):
    """The store stays down longer than the retry budget: one error line (no traceback), no summary.json,
    run.json "failed"; once the store is back, `resume` completes the run with every step."""
    exp_uri, output = _setup_run(tmp_path, steps=8)
    env = _cli_env(tmp_path, ray_tmp, REFLECTOPT_S3_RETRY_S="4")
    proc = subprocess.Popen(CLI + ["run", exp_uri, "--no-progress"], env=env, cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def outage():  # down for 7 s, longer than the 4 s budget: a world's checkpoint cannot be saved
        outage_store.down()
        threading.Timer(7.0, outage_store.up).start()

    watcher = _when_checkpoints(proc, outage_store, 3, outage)
    out, err = proc.communicate(timeout=600)
    watcher.join(30)
    assert proc.returncode == 1, err[-3000:]
    errors = [ln for ln in err.splitlines() if ln.startswith("reflectopt: error:")]
    assert len(errors) == 1 and "Traceback" not in err and len(err.splitlines()) <= 10, err
    assert "failed at http://127.0.0.1:" in errors[0] and "reflectopt resume s3://runs/results/s3-smoke/" in errors[0]
    time.sleep(1.0)
    runs = results.list_runs(output)
    assert len(runs) == 1 and not runs[0]["complete"] and runs[0]["status"] == "failed", runs
    run = runs[0]["uri"]
    meta = json.loads(storage.read_text(storage.join(run, "run.json")))
    assert meta["status"] == "failed" and "failed at" in meta["error"]
    assert not list((tmp_path / "t").glob("reflectopt-run-*"))

    r = subprocess.run(CLI + ["resume", run, "--no-progress"], env=env, cwd=tmp_path, text=True,
                       capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(storage.read_text(storage.join(run, "summary.json")))
    assert summary["failures"] == [] and [w["status"] for w in summary["worlds"]] == ["completed"] * 2
    steps = _planned_steps(summary)
    assert _steps_by_world(run) == {0: list(range(1, steps + 1)), 1: list(range(1, steps + 1))}
