"""Runs under an output folder or s3:// URI: `results ls` lists them, `results get` downloads one.

Layout: `<output>/<name>/<run-id>/...`; a run is complete when its `summary.json` is present (it is
written last, see `storage.publish_run`); otherwise `run.json` says whether it is running, interrupted
or failed.
"""

from __future__ import annotations

from optimizer.constants import EXPERIMENT_FILE, RUN_FILE, SUMMARY_FILE
from optimizer.errors import ReflectoptError, StorageError
from optimizer.store import storage
from optimizer.store.runstore import RunStore


def _run_row(name: str, run_id: str, uri: str) -> dict:
    children = storage.list(uri)
    row = {"name": name, "run_id": run_id, "uri": uri, "complete": SUMMARY_FILE in children, "status": None,
           "min_rss_dbm": None, "coverage": None}
    store = RunStore(uri)
    try:
        if row["complete"]:
            s = store.read_summary()
            row.update(status="complete", min_rss_dbm=s.winner.min_rss_dbm, coverage=s.winner.coverage)
        elif RUN_FILE in children:
            row["status"] = store.read_meta().status
    except (ReflectoptError, StorageError, ValueError):
        row["status"] = row["status"] or "unreadable"
    finally:
        store.discard_staging()
    return row


def list_runs(output: str) -> list[dict]:
    """Runs under an output URI (or under one experiment's folder, or one run folder)."""
    output = str(output).rstrip("/") or output
    top = storage.list(output)
    if SUMMARY_FILE in top or EXPERIMENT_FILE in top:  # a run folder itself
        parts = output.rstrip("/").split("/")
        return [_run_row(parts[-2] if len(parts) > 1 else "", parts[-1], output)]
    rows = []
    for name in top:
        sub = storage.join(output, name)
        runs = storage.list(sub)
        if SUMMARY_FILE in runs or EXPERIMENT_FILE in runs:  # `output` was one experiment's folder
            rows.append(_run_row(output.rstrip("/").split("/")[-1], name, sub))
            continue
        for run_id in runs:
            run = storage.join(sub, run_id)
            kids = storage.list(run)
            if kids and (SUMMARY_FILE in kids or EXPERIMENT_FILE in kids):
                rows.append(_run_row(name, run_id, run))
    return sorted(rows, key=lambda r: (r["name"], r["run_id"]))
