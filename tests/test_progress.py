"""The live per-world table (`optimizer.search.progress`): rich on a tty, progress lines otherwise; it survives
Tune's pickling of its callbacks."""

from __future__ import annotations

import io
import pickle

from optimizer.search.progress import COLUMNS, ProgressView


def _row(step, rss, best, cover, score):
    return {"step": step, "min_rss_dbm": rss, "best_min_rss_dbm": best, "best_coverage": cover, "best_score": score}


def _view(tty: bool) -> ProgressView:
    v = ProgressView(steps=20)
    v.tty = tty
    v.update(0, _row(3, -71.26, -65.0, 0.5, -65.0))
    v.update(1, _row(5, -80.0, -58.44, 0.75, -58.44), status="pruned")
    v.update(2, status="pending")
    return v


def test_cells_hold_each_world_in_order():
    cells = _view(False).cells()
    assert [c[0] for c in cells] == ["0", "1", "2"]
    assert cells[0] == ("0", "3/20", "-71.3", "-65.0", "50%", "running")
    assert cells[1][-1] == "pruned" and cells[2][1:] == ("-", "-", "-", "-", "pending")
    assert all(len(c) == len(COLUMNS) for c in cells)


def test_rich_table_renders_every_world_and_column():
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=100, color_system=None).print(_view(True).table())
    text = out.getvalue()
    for name in COLUMNS:
        assert name in text
    assert "3/20" in text and "-58.4" in text and "pruned" in text and "pending" in text


def test_not_a_tty_writes_one_line_naming_the_best(capsys):
    v = _view(False)
    capsys.readouterr()  # the first update's line
    v.render()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "8 world-steps" in err[0] and "-58.4" in err[0] and "1 pruned" in err[0]


def test_a_live_view_pickles_without_its_display():
    v = _view(True)
    v._live = object()  # stands for a started rich Live (a console and a thread: not picklable)
    back = pickle.loads(pickle.dumps(v))
    assert back._live is None and back.rows == v.rows and back.status == v.status
