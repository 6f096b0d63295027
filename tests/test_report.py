"""Report: pictures + report.html/.md of a run folder (synthetic run in the exact run-folder formats, real
radio maps on the small indoor example)."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from optimizer.experiment import load_experiment
from optimizer.constants import (
    HEATMAPS_DIR,
    PNG_COLLATERAL,
    PNG_CONVERGENCE,
    PNG_RADIO_MAP_BASELINE,
    PNG_RADIO_MAP_GAIN,
    PNG_RADIO_MAP_WINNER,
    PNG_RSS_CDF,
    PNG_TRAJECTORIES,
    RADIO_MAPS_FILE,
    REPORT_HTML,
    REPORT_MD,
    TRAJECTORIES_PARQUET,
    SUMMARY_FILE,
    TARGETS_FILE,
    TRAJECTORIES_FILE,
)
from optimizer.errors import ReflectoptError
from optimizer.records import Summary
from records_helpers import synthetic_run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "indoor-corridor.yaml"
PNGS = [PNG_RADIO_MAP_BASELINE, PNG_RADIO_MAP_WINNER, PNG_RADIO_MAP_GAIN, PNG_COLLATERAL, PNG_TRAJECTORIES,
        PNG_CONVERGENCE, PNG_RSS_CDF]

pytestmark = pytest.mark.skipif(not EXAMPLE.is_file(), reason="examples/indoor-corridor.yaml not present")


def example_experiment():
    return load_experiment(EXAMPLE)  # relative scene paths resolve against the file


def make_run(run_dir: Path, exp, **kw) -> Summary:
    """A run folder in the exact formats of `reflectopt run` (numbers synthetic unless given)."""
    return synthetic_run(run_dir, exp, **kw)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name}: not a PNG"
    assert data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    assert zlib.crc32(data[12:29]) == struct.unpack(">I", data[29:33])[0], f"{path.name}: bad IHDR CRC"
    assert data[-8:-4] == b"IEND"
    return w, h


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text, self.imgs, self.stack, self.external = [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if tag in ("script", "link") or (tag == "img" and not a.get("src", "").startswith("data:")):
            self.external.append(tag)
        if tag not in ("img", "meta", "br", "link"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> (open: {self.stack[-3:]})"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse_html(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert page.stack == [], f"unclosed tags {page.stack}"
    return page


@pytest.fixture(scope="module")
def exp():
    return example_experiment()


@pytest.fixture(scope="module")
def traced_run(tmp_path_factory, exp):
    """A synthetic run with real radio maps (ray-traced once for the module; small sample count)."""
    run = tmp_path_factory.mktemp("run") / "indoor-corridor" / "r1"
    summary = make_run(run, exp)
    from optimizer.report.build import write_report

    files = write_report(run, exp=None, samples_per_tx=200_000)
    return run, summary, files


def test_all_files_valid(traced_run):
    run, _, files = traced_run
    for name in PNGS:
        p = run / HEATMAPS_DIR / name
        assert p in files and p.is_file(), f"{name} missing"
        w, h = png_size(p)
        assert 400 <= w <= 2500 and 250 <= h <= 2000, f"{name}: odd size {w}x{h}"
        assert p.stat().st_size > 15_000, f"{name}: suspiciously small ({p.stat().st_size} B)"
    page = parse_html(run / REPORT_HTML)
    assert page.external == [], "report.html must be self-contained"
    assert len(page.imgs) == len(PNGS) and all(s.startswith("data:image/png;base64,") for s in page.imgs)
    md = (run / REPORT_MD).read_text()
    for name in PNGS:
        assert f"]({HEATMAPS_DIR}/{name})" in md
    assert "Collateral loss" in md and "m² (" in md  # the area, from the run's own radio maps


def test_numbers_match_summary(traced_run):
    from optimizer.records.text import fmt_db, fmt_dbm, fmt_pct, fmt_pose, fmt_s

    run, summary, _ = traced_run
    s = json.loads((run / SUMMARY_FILE).read_text())
    assert s == summary.model_dump(mode="json"), "the report must not touch summary.json"
    assert s["baseline"]["min_rss_dbm"] is None and s["gain_db"]["min"] is None  # no path: no dB gain
    expected = [fmt_pose(summary.winner.pose), fmt_s(s["wall_time_s"]), str(s["evaluations"]),
                "{worlds} / {completed} / {pruned} / {merged} / {failed}".format(**s["counts"])]
    for part in ("baseline", "winner"):
        expected += [fmt_dbm(s[part][k]) for k in ("min_rss_dbm", "p5_rss_dbm", "mean_rss_dbm")]
        expected.append(fmt_pct(s[part]["coverage"]))
    expected += [fmt_db(s["gain_db"][k]) + " dB" for k in ("mean",)]
    # the formats are what a reader expects
    assert fmt_dbm(-93.456) == "-93.5" and fmt_db(12.34) == "+12.3" and fmt_pct(0.75) == "75.0 %"
    assert fmt_dbm(None) == "no path" and fmt_db(None) == "-"
    text = " ".join(parse_html(run / REPORT_HTML).text)
    md = (run / REPORT_MD).read_text()
    for e in expected:
        assert e in text, f"report.html lacks {e!r}"
        assert e in md, f"report.md lacks {e!r}"
    # the metrics table: rows in order baseline | winner | gain
    row = f"| min RSS [dBm] | no path | {fmt_dbm(s['winner']['min_rss_dbm'])} | - (no path on a side: see coverage) |"
    assert row in md
    assert f"| coverage | {fmt_pct(s['baseline']['coverage'])} | {fmt_pct(s['winner']['coverage'])} | " \
           f"{s['coverage_gain']['targets']:+d} targets" in md
    for v in s["versions"].values():
        assert v in text
    assert "Rendering:" in md and "radio maps" in md


def test_gain_map_is_winner_minus_baseline(traced_run, exp):
    run, _summary, _ = traced_run
    d = np.load(run / HEATMAPS_DIR / RADIO_MAPS_FILE)
    x, y, b, w, g = d["x"], d["y"], d["baseline_dbm"], d["winner_dbm"], d["gain_db"]
    assert b.shape == w.shape == g.shape == (len(y), len(x))
    assert max(b.shape) <= 100
    assert np.all(np.diff(x) > 0) and np.all(np.diff(y) > 0)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, b.size, 200)
    bb, ww, gg = b.ravel()[idx], w.ravel()[idx], g.ravel()[idx]
    both = np.isfinite(bb) & np.isfinite(ww)
    assert both.all()
    np.testing.assert_allclose(gg[both], ww[both] - bb[both], atol=1e-6)
    # the maps are real: the access point's cell is hot, the plate changes something, and the far arm
    # (the targets) has more power with the plate than without
    ix = np.argmin(np.abs(x - exp.transmitters[0].position[0]))
    iy = np.argmin(np.abs(y - exp.transmitters[0].position[1]))
    assert b[iy, ix] > -60
    assert np.abs(g).max() > 3
    tx = (x > 27.5) & (x < 29.5)
    ty = (y > 8) & (y < 21.5)
    arm_b, arm_w = b[np.ix_(ty, tx)], w[np.ix_(ty, tx)]
    assert np.mean(arm_w) > np.mean(arm_b) + 3, "the plate should light up the north arm"
    # every x and y cell centre lies on a regular grid covering targets, transmitter and plate box
    pts = np.array(exp.target_points())
    assert x[0] <= min(pts[:, 0].min(), exp.transmitters[0].position[0]) and x[-1] >= pts[:, 0].max()
    assert y[0] <= exp.reflector.bounds.min[1] and y[-1] >= pts[:, 1].max()


def test_redraw_without_retrace_and_broken_inputs(traced_run, tmp_path, exp, caplog):
    from optimizer.report.build import write_report

    run, _summary, _ = traced_run
    # a copy without trajectories.csv and with a garbled targets.csv: still report files, no exception
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / TRAJECTORIES_FILE).unlink()
    (broken / TRAJECTORIES_PARQUET).unlink()
    (broken / TARGETS_FILE).write_text("target,x\n0,zzz\n")
    for p in (broken / HEATMAPS_DIR).glob("*.png"):
        p.unlink()
    before = (broken / SUMMARY_FILE).read_bytes()
    with caplog.at_level("WARNING"):
        files = write_report(broken, exp=exp, radio_maps=False)  # maps come from radio_maps.npz
    assert (broken / REPORT_HTML).is_file() and (broken / REPORT_MD).is_file()
    assert (broken / SUMMARY_FILE).read_bytes() == before
    assert (broken / HEATMAPS_DIR / PNG_RADIO_MAP_GAIN).is_file()  # redrawn from the saved grid
    assert not (broken / HEATMAPS_DIR / PNG_TRAJECTORIES).exists()
    assert any("trajectories" in r.getMessage() for r in caplog.records)
    assert all(p.is_file() for p in files)
    md = (broken / REPORT_MD).read_text()
    assert "Not drawn" in md and "trajectories" in md
    parse_html(broken / REPORT_HTML)


def test_drawing_failure_is_one_warning(tmp_path, exp, monkeypatch, caplog):
    from optimizer.report import plots
    from optimizer.report.build import write_report

    run = tmp_path / "r"
    make_run(run, exp)

    def boom(*a, **k):
        raise RuntimeError("synthetic drawing failure")

    monkeypatch.setattr(plots, "convergence", boom)
    with caplog.at_level("WARNING"):
        files = write_report(run, exp=exp, radio_maps=False)
    names = {p.name for p in files}
    assert PNG_CONVERGENCE not in names and PNG_TRAJECTORIES in names and PNG_RSS_CDF in names
    assert REPORT_HTML in names and REPORT_MD in names
    warn = [r.getMessage() for r in caplog.records if "synthetic drawing failure" in r.getMessage()]
    assert len(warn) == 1 and "\n" not in warn[0]


def test_cli_report_and_errors(tmp_path, exp, capsys):
    from optimizer.cli import main

    run = tmp_path / "r"
    make_run(run, exp, worlds=3, steps=5)
    assert main(["report", str(run), "--no-radio-maps"]) == 0
    out = capsys.readouterr().out
    assert REPORT_HTML in out and (run / REPORT_HTML).is_file()
    (run / SUMMARY_FILE).unlink()
    assert main(["report", str(run)]) != 0
    err = capsys.readouterr().err
    assert "no summary.json" in err and err.count("\n") == 1
    assert main(["report", str(tmp_path / "nope")]) != 0
    with pytest.raises(ReflectoptError, match="no summary.json"):
        from optimizer.report.build import write_report

        write_report(run)


def test_section_segments_of_a_box():
    from optimizer.report.radio_maps import section_segments

    # a unit cube's 12 triangles cut at half height: a closed square of 8 segments, perimeter 4
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], float)
    f = np.array([[0, 1, 5], [0, 5, 4], [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7],
                  [0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    segs = section_segments(v[f], 0.5)
    assert segs.shape == (8, 2, 2)
    assert np.isclose(np.linalg.norm(segs[:, 1] - segs[:, 0], axis=1).sum(), 4.0)
    assert section_segments(v[f], 2.0).shape == (0, 2, 2)


def test_cli_report_on_s3(s3_bucket, tmp_path, exp, capsys):
    from optimizer.store import storage
    from optimizer.cli import main

    run = tmp_path / "r"
    make_run(run, exp, worlds=3, steps=5)
    uri = f"s3://{s3_bucket}/results/{exp.name}/r1"
    storage.upload_dir(run, uri)
    before = storage.read_bytes(storage.join(uri, SUMMARY_FILE))
    assert main(["report", uri, "--no-radio-maps"]) == 0
    assert f"{uri}/{REPORT_HTML}" in capsys.readouterr().out
    keys = storage.list(uri, recursive=True)
    assert REPORT_HTML in keys and REPORT_MD in keys and f"{HEATMAPS_DIR}/{PNG_RSS_CDF}" in keys
    assert storage.read_bytes(storage.join(uri, SUMMARY_FILE)) == before
    assert main(["report", f"s3://{s3_bucket}/results/nothing-here"]) != 0
    assert "no summary.json" in capsys.readouterr().err


def test_the_objectives_own_row_leads_the_table_where_it_is_not_min():
    """percentile: P<p> in dBm with its dB gain; coverage: the covered share with its gain in points; min: no
    row of its own (min RSS is the table's first row)."""
    from types import SimpleNamespace

    from optimizer.records.summary import ObjectiveResult
    from optimizer.report.text import _objective_row

    def row(kind, params, base, win):
        return _objective_row(SimpleNamespace(objective=ObjectiveResult(kind=kind, params=params, baseline=base,
                                                                        winner=win)))

    assert row("percentile", {"p": 10}, -80.0, -75.5) == [["objective: P10 RSS [dBm]", "-80.0", "-75.5", "+4.5 dB"]]
    assert row("percentile", {"p": 5}, None, -75.5)[0][3].startswith("- (no path")
    assert row("coverage", {"required": 0.9}, 0.5, 0.8) == [["objective: share of targets covered", "50.0 %",
                                                             "80.0 %", "+30.0 points"]]
    assert row("min", {}, -80.0, -70.0) == []


def test_no_plate_needed_is_said_where_the_targets_already_meet_the_objective():
    """The requirement is the objective's own (min: every target; percentile p 10: one target of 15 far below
    the threshold still meets it), judged on the targets alone: the protected points that objective.protect
    appends to the receivers do not count."""
    from optimizer import objectives
    from optimizer.search.conclude import meets_without_plate, not_needed_note
    from worlds_helpers import street

    protect = {"points": [[22.0, -19.0, 1.5]]}
    exp = street(**{"objective.protect": protect})
    thr = exp.objective.coverage_threshold_dbm
    covered = np.r_[np.full(15, thr + 1.0), thr - 50.0]  # 15 targets covered, the protected point far below
    one_low = covered.copy()
    one_low[3] = thr - 30.0
    assert meets_without_plate(objectives.of(exp, baseline_dbm=covered), covered)
    assert not meets_without_plate(objectives.of(exp, baseline_dbm=one_low), one_low)
    p10 = street(**{"objective.protect": protect, "objective.kind": "percentile", "objective.p": 10})
    assert meets_without_plate(objectives.of(p10, baseline_dbm=one_low), one_low)
    assert not meets_without_plate(objectives.of(p10, baseline_dbm=covered - 2.0), covered - 2.0)
    note = not_needed_note(exp, objectives.of(exp, baseline_dbm=covered))
    assert "no plate is needed" in note and f"every target at or above {thr:.1f} dBm" in note
    assert f"the 10th percentile at or above {thr:.1f} dBm" in not_needed_note(p10, objectives.of(p10, baseline_dbm=covered))
    sinr = load_experiment(ROOT / "examples" / "two-aps-sinr.yaml")
    note = not_needed_note(sinr, objectives.of(sinr))
    assert "dB SINR" in note and "dBm" not in note


@pytest.mark.parametrize("kind,base,win,noted", [
    ("min", -80.0, -79.7, True), ("min", -80.0, -70.0, False), ("min", None, -80.0, False),
    ("min", None, None, True), ("min", -80.0, None, True), ("percentile", -80.0, -79.6, True),
    ("coverage", 0.5, 0.5, True), ("coverage", 0.5, 0.6, False)])
def test_a_winner_that_hardly_helps_gets_a_note(kind, base, win, noted):
    """Below NO_GAIN_DB of objective gain (or no path gained, or no covered share gained) the winner's notes say
    the plate hardly helps; with objective.protect they point at the constraint."""
    from optimizer.constants import NO_GAIN_DB
    from optimizer.search.conclude import little_gain_note
    from worlds_helpers import street

    exp = street(**{"objective.kind": kind})
    note = little_gain_note(exp, base, win)
    assert (note is not None) == noted
    if noted:
        assert note.startswith("the plate hardly helps here") and "objective.protect" not in note
        assert kind == "coverage" or f"less than {NO_GAIN_DB:g} dB" in note
        guarded = little_gain_note(street(**{"objective.kind": kind,
                                             "objective.protect": {"points": [[22.0, -19.0, 1.5]]}}), base, win)
        assert "objective.protect's constraint" in guarded
