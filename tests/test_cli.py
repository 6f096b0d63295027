"""Experiment files and the CLI's user-facing errors: one line per problem, exit 2, no traceback."""

import json
import subprocess
import sys

import pytest

from optimizer.experiment import load_experiment
from worlds_helpers import EXAMPLES, REPO, street, write_yaml

CLI = [sys.executable, "-m", "optimizer.cli"]


def run_cli(*args, cwd=REPO):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.parametrize("name", ["street-corner", "indoor-corridor", "wide-facade", "two-plates", "sector-street",
                                  "two-aps-sinr", "shop-floor", "street-corner-protect"])
def test_examples_parse(name):
    exp = load_experiment(EXAMPLES / f"{name}.yaml")
    assert exp.name == name
    assert len(exp.target_points()) >= 10
    assert exp.search.gradient == "surrogate"


def test_street_example_has_20_targets():
    assert len(load_experiment(EXAMPLES / "street-corner.yaml").target_points()) == 20


def test_bad_file_lists_every_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Bad_Name\nscene: builtin:simple_street_canyon\nfrequency_hz: -1\n"
                   "transmitters: []\nreflector: {size_m: [2], bounds: {min: [0, 0, 0], max: [1, 1, -1]}}\n"
                   "targets: {}\nsearch: {gradient: magic, prune: sometimes}\ntypo_key: 1\n")
    r = run_cli("run", str(bad))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    for key in ("name", "frequency_hz", "transmitters", "reflector.size_m", "reflector.bounds", "targets",
                "search.gradient", "search.prune", "typo_key"):
        assert any(f": {key}:" in line for line in lines), (key, lines)
    assert all(line.startswith("reflectopt: error: ") for line in lines)
    assert any("swap them" in line for line in lines)  # names the fix


def test_yaml_syntax_error_and_missing_file(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("name: [unclosed\n")
    r = run_cli("run", str(f))
    assert r.returncode == 2 and "not valid YAML" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("run", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "no such file" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_unknown_builtin_scene_fails_cleanly(tmp_path):
    f = write_yaml(tmp_path / "e.yaml", {**street().model_dump(mode="json"), "scene": "builtin:atlantis"})
    r = run_cli("evaluate", str(f), "--pose", "24,8,5,140")
    assert r.returncode == 2 and "unknown builtin scene 'atlantis'" in r.stderr and "Traceback" not in r.stderr


def test_bad_pose_argument(tmp_path):
    f = write_yaml(tmp_path / "e.yaml", street())
    r = run_cli("evaluate", str(f), "--pose", "24,8")
    assert r.returncode == 2 and "--pose" in r.stderr and "Traceback" not in r.stderr


def test_evaluate_reports_truth_json(tmp_path):
    f = write_yaml(tmp_path / "e.yaml", street())
    r = run_cli("evaluate", str(f), "--pose", "23.7,8.26,5,139.2", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["baseline"]["coverage"] < 1.0
    assert out["with_plate"]["coverage"] == 1.0
    assert len(out["targets"]) == 15  # 5 x 3 region
    assert out["plate_model"] == "po"  # the truth says which plate model it used


def test_evaluate_judges_objective_protect(tmp_path):
    """With objective.protect the targets stay the 15 of the region (the protected points are not targets), and the
    JSON carries the constraint at the pose; the text names it."""
    corridor = {"polygon": [[20.0, -20.0], [24.0, -20.0], [24.0, -18.0], [20.0, -18.0]], "z": 1.5, "spacing_m": 2.0}
    f = write_yaml(tmp_path / "e.yaml", street(**{"objective.protect": {"area": corridor}}))
    r = run_cli("evaluate", str(f), "--pose", "23.7,8.26,5,139.2", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["targets"]) == 15 and out["with_plate"]["coverage"] == 1.0
    p = out["protect"]
    assert p["points"] == 6 and p["max_loss_db"] == 1.5 and isinstance(p["held"], bool) and p["lost"] >= 0


def test_grid_finds_a_covering_pose(tmp_path):
    exp = street(**{"reflector.bounds": {"min": [22.0, 8.0, 5.0], "max": [24.0, 8.0, 5.0]},
                    "reflector.yaw_deg": {"min": 130, "max": 150}})
    f = write_yaml(tmp_path / "e.yaml", exp)
    r = run_cli("grid", str(f), "--spacing", "1.0", "--yaw-step", "5", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["evaluations"] == 3 * 5
    assert out["coverage"] > 0.8
    # the optimum is at least as good as any grid pose, e.g. (23, 8, 5, 140), and is its own truth
    from optimizer.objectives import default

    score = default().score
    from optimizer.records import RssStats

    def score_of(d):
        return score(RssStats(**{k: d[k] for k in RssStats.model_fields if k in d}))

    r2 = run_cli("evaluate", str(f), "--pose", "23,8,5,140", "--json")
    assert score_of(out) >= score_of(json.loads(r2.stdout)["with_plate"]) - 1e-9
    r3 = run_cli("evaluate", str(f), f"--pose={out['pose_arg']}", "--json")
    again = json.loads(r3.stdout)["with_plate"]
    for k, v in again.items():  # the printed pose reproduces the optimum (ray tracing repeats to ~1e-6 dB)
        assert v == pytest.approx(out[k], abs=1e-5), k


def test_unreachable_ray_address_fails_fast(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    f = write_yaml(tmp_path / "e.yaml", street())
    r = run_cli("run", str(f), "--address", f"127.0.0.1:{port}", "--output", str(tmp_path / "out"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"nothing answers at 127.0.0.1:{port}" in r.stderr
    assert not list((tmp_path / "out").glob("*/*/summary.json"))  # no run marked complete
    meta = json.loads(next((tmp_path / "out").glob("*/*/run.json")).read_text())
    assert meta["status"] == "failed" and f"nothing answers at 127.0.0.1:{port}" in meta["error"]  # not "running"


def test_grid_states_its_size_and_asks_before_a_big_one(tmp_path, capsys, monkeypatch):
    """`grid` prints the pose count and a time estimate first; above 1000 poses on a terminal it asks, and
    anything but yes starts nothing (--yes skips the question)."""
    from optimizer.cli import main

    class Terminal:
        def isatty(self):
            return True

        def readline(self):
            return "n\n"

    f = write_yaml(tmp_path / "e.yaml", street(**{"solver.samples_per_src": 5000, "solver.max_depth": 1}))
    monkeypatch.setattr("sys.stdin", Terminal())
    assert main(["grid", str(f), "--spacing", "0.05", "--yaw-step", "5"]) == 1
    err = capsys.readouterr().err
    assert "grid: 64239 poses, about " in err and "s per truth evaluation" in err
    assert "start 64239 truth evaluations? [y/N]" in err and "not started; pass --yes" in err


def test_relative_scene_paths_resolve_against_the_experiment_file(tmp_path):
    """`scene: .` beside its scene, and `scene: ../x`, work from any working directory, for every command
    that loads an experiment (one helper: experiment.loading), and a relative `output:` is left alone."""
    import shutil

    import yaml

    site = tmp_path / "site"
    shutil.copytree(EXAMPLES / "scenes" / "l-corridor", site)
    data = yaml.safe_load((EXAMPLES / "indoor-corridor.yaml").read_text())
    data["solver"] = {"max_depth": 1, "samples_per_src": 5000}
    data["scene"] = "."
    (site / "exp.yaml").write_text(yaml.safe_dump(data))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    data["scene"] = "../site"
    (elsewhere / "exp.yaml").write_text(yaml.safe_dump(data))
    for f in (site / "exp.yaml", elsewhere / "exp.yaml"):
        r = run_cli("evaluate", str(f), "--pose", "29.3,1.5,1.8,60", "--json", cwd="/")
        assert r.returncode == 0, r.stderr[-2000:]
        assert len(json.loads(r.stdout)["targets"]) == 20
    r = run_cli("calibrate", str(site / "exp.yaml"), "--steps", "1", "--device", "cpu", cwd=str(elsewhere))
    assert r.returncode == 0 and "no scene.xml" not in r.stderr, r.stderr[-2000:]


def test_evaluate_json_carries_the_tolerance_check(tmp_path):
    """`evaluate --tolerance --json` holds the tolerance check text mode prints (it was left out of the JSON):
    the same poses, verdict, worst min RSS and margin."""
    f = write_yaml(tmp_path / "e.yaml", street(**{"reflector.tolerance": {"position_m": 0.05, "yaw_deg": 1.0,
                                                                         "pitch_deg": 1.0}}))
    args = ("evaluate", str(f), "--pose", "23.7,8.26,5,139.2", "--samples", "2000", "--tolerance")
    r = run_cli(*args, "--json")
    assert r.returncode == 0, r.stderr
    chk = json.loads(r.stdout)["tolerance"]
    text = run_cli(*args)
    assert text.returncode == 0, text.stderr
    line = next(ln for ln in text.stdout.splitlines() if ln.startswith("mounting tolerance"))
    assert f"{chk['poses_checked']} poses checked" in line and chk["poses_checked"] > 16
    assert ("HOLDS" if chk["holds"] else "does NOT hold") in line
    assert chk["position_m"] == 0.05 and chk["margin_scale"] is not None
    worst = next(ln for ln in text.stdout.splitlines() if "worst min RSS" in ln)
    assert f"margin {chk['margin_scale']:.0%} of the box" in worst
    assert f"worst min RSS {chk['worst_min_rss_dbm']:.1f} dBm" in worst


def test_an_interrupt_inside_a_drjit_loop_is_still_an_interrupt():
    """Dr.Jit turns a KeyboardInterrupt raised inside `dr.while_loop` (Ctrl-C while Sionna traces) into a
    RuntimeError with the interrupt as its cause; the run treats it as the interrupt it is."""
    import drjit as dr

    from optimizer.errors import caused_by_interrupt
    from optimizer.physics import backend

    backend.init("cpu")
    from drjit.llvm import Int

    def body(i):
        raise KeyboardInterrupt

    with pytest.raises(RuntimeError) as caught:
        dr.while_loop((Int(0),), lambda i: i < 10, body)
    assert caused_by_interrupt(caught.value)
    assert not caused_by_interrupt(RuntimeError("dr.while_loop(): something else"))
    try:
        try:
            raise ValueError("inner")
        except ValueError as inner:
            raise RuntimeError("outer") from inner
    except RuntimeError as err:
        assert not caused_by_interrupt(err)
