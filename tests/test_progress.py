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


def test_tunes_warning_about_a_world_without_results_yet_is_dropped_and_others_kept():
    """A world interrupted before its first step has no result file: Tune's "Failed to fetch metrics" warning
    about it is noise on the console (the run says how many worlds are unfinished); any other failure to read
    a world's metrics is still logged, also beside such a world."""
    import logging

    from optimizer.search.tune.callbacks import quiet_restore_advice

    quiet_restore_advice()
    logger = logging.getLogger("ray.tune.analysis.experiment_analysis")
    not_yet = ("- world-002: FileNotFoundError('Could not fetch metrics for world-002: both result.json and "
               "progress.csv were not found at /x/world-002')")
    broken = "- world-003: ValueError('bad JSON in result.json')"

    def kept(msg):
        return all(f.filter(logging.LogRecord(logger.name, logging.WARNING, __file__, 1, msg, None, None))
                   for f in logger.filters)

    assert not kept(f"Failed to fetch metrics for 1 trial(s):\n{not_yet}")
    assert kept(f"Failed to fetch metrics for 2 trial(s):\n{not_yet}\n{broken}")
    assert kept(f"Failed to fetch metrics for 1 trial(s):\n{broken}")
    assert kept("something else")
    quiet_restore_advice()  # once each
    assert len(logger.filters) == len({type(f) for f in logger.filters})
