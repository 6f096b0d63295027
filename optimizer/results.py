"""`reflectopt results ls|get`: list and download runs under an output folder or s3:// URI.

Layout: `<output>/<name>/<run-id>/...`; a run is complete when its `summary.json` is present (it is
written last, see `storage.publish_run`).
"""

from __future__ import annotations

import json
import sys

from optimizer import storage
from optimizer.constants import CHECKPOINTS_DIR, EXPERIMENT_FILE, SUMMARY_FILE
from optimizer.errors import StorageError


def _winner_min_rss(summary: dict) -> float | None:
    """The winner's min RSS [dBm] from summary.json, tolerant of where the writer put it."""
    for path in (("winner", "min_rss_dbm"), ("winner", "metrics", "min_rss_dbm"), ("winner", "final", "min_rss_dbm"),
                 ("final", "min_rss_dbm"), ("best", "min_rss_dbm"), ("min_rss_dbm",)):
        node = summary
        for k in path:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, (int, float)):
            return float(node)
    return None


def _run_row(name: str, run_id: str, uri: str) -> dict:
    children = storage.list(uri)
    row = {"name": name, "run_id": run_id, "uri": uri, "complete": SUMMARY_FILE in children,
           "min_rss_dbm": None}
    if row["complete"]:
        try:
            row["min_rss_dbm"] = _winner_min_rss(json.loads(storage.read_text(storage.join(uri, SUMMARY_FILE))))
        except (ValueError, StorageError):
            pass
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


def _cmd_ls(args) -> int:
    if not storage.exists(args.uri):
        raise StorageError(f"{args.uri}: nothing there (no such folder/prefix)")
    rows = list_runs(args.uri)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print(f"no runs under {args.uri}")
        return 0
    wn = max(4, *(len(r["name"]) for r in rows))
    wr = max(6, *(len(r["run_id"]) for r in rows))
    print(f"{'NAME':<{wn}}  {'RUN ID':<{wr}}  {'STATUS':<10}  MIN RSS [dBm]")
    for r in rows:
        rss = f"{r['min_rss_dbm']:.2f}" if r["min_rss_dbm"] is not None else "-"
        status = "complete" if r["complete"] else "incomplete"
        print(f"{r['name']:<{wn}}  {r['run_id']:<{wr}}  {status:<10}  {rss}")
    return 0


def _cmd_get(args) -> int:
    exclude = () if args.checkpoints else (CHECKPOINTS_DIR + "/",)
    n = storage.download_dir(args.run_uri, args.dest, exclude_prefixes=exclude)
    complete = storage.exists(storage.join(args.dest, SUMMARY_FILE))
    print(f"{n} files -> {args.dest}")
    if not complete:
        sys.stderr.write(f"reflectopt: warning: {args.run_uri} has no {SUMMARY_FILE}: the run is incomplete "
                         f"(still running, failed, or interrupted)\n")
    return 0


def register_commands(subparsers) -> None:
    p = subparsers.add_parser("results", help="list and download runs (local folder or s3://)")
    sub = p.add_subparsers(dest="results_command", metavar="ACTION", parser_class=type(p))
    sub.required = True
    ls = sub.add_parser("ls", help="runs under an output URI: name, run id, complete or not, winner min RSS")
    ls.add_argument("uri", help="the experiments' `output:` (e.g. s3://bucket/results), or one experiment's folder")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(handler=_cmd_ls)
    get = sub.add_parser("get", help="download one run folder")
    get.add_argument("run_uri", help="e.g. s3://bucket/results/NAME/RUN-ID")
    get.add_argument("dest", help="local folder")
    get.add_argument("--checkpoints", action="store_true", help=f"also download {CHECKPOINTS_DIR}/ (can be big)")
    get.set_defaults(handler=_cmd_get)
