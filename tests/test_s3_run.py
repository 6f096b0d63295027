"""Results on S3: `reflectopt results ls|get`, and a full `reflectopt run` with scene and output on S3."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from optimizer.store import assets, results, storage
from optimizer.cli import main
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


# --- full run --------------------------------------------------------------------------------------
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
solver: {{max_depth: 1, samples_per_src: 10000}}
search: {{worlds: 2, steps: 2}}
device: cpu
output: {output}
"""


@pytest.mark.slow
def test_full_run_scene_and_output_on_s3(s3_bucket, tmp_path, monkeypatch):
    secret = "S3cr3t-Only-In-The-Env-9f2c"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)  # moto accepts any key; it must never land in results
    monkeypatch.setenv("REFLECTOPT_CACHE_DIR", str(tmp_path / "cache"))
    scene_uri = f"s3://{s3_bucket}/scenes/canyon"
    sha = assets.push_bundle(_street_canyon_bundle(tmp_path / "canyon"), scene_uri)
    output = f"s3://{s3_bucket}/results"
    exp_uri = f"s3://{s3_bucket}/experiments/s3-smoke.yaml"
    storage.write_text(exp_uri, EXPERIMENT.format(scene=scene_uri, sha=sha, output=output))

    assert main(["run", exp_uri]) == 0

    runs = results.list_runs(output)
    assert len(runs) == 1 and runs[0]["name"] == "s3-smoke" and runs[0]["complete"], runs
    run = runs[0]["uri"]
    files = storage.list(run, recursive=True)
    for f in ("experiment.yaml", "summary.json", "targets.csv", "trajectories.csv", "winner_scene/scene.xml",
              "report.html"):
        assert f in files, (f, files)
    assert any(f.startswith("heatmaps/") and f.endswith(".png") for f in files), files
    assert any(f.startswith("checkpoints/") for f in files), files  # Ray Tune storage_path under the run
    assert len(assets.downloads_logged(tmp_path / "cache")) == 1  # two worlds, one node, one download
    dl = tmp_path / "dl"
    storage.download_dir(run, dl)
    for p in dl.rglob("*"):
        if p.is_file():
            assert secret.encode() not in p.read_bytes(), p
