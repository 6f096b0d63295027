"""`reflectopt scene push|pull|hash` and `reflectopt results ls|get`: scene bundles and run folders."""

from __future__ import annotations

import json
import sys

from optimizer.constants import CHECKPOINTS_DIR, ENV_CACHE_DIR, SCENE_CACHE_DEFAULT, SUMMARY_FILE
from optimizer.errors import StorageError
from optimizer.store import storage
from optimizer.store.assets import content_hash, push_bundle, resolve_scene
from optimizer.records.text import fmt_dbm, fmt_pct
from optimizer.store.results import list_runs


def _cmd_push(args) -> int:
    sha = push_bundle(args.folder, args.uri)
    uri = str(args.uri).rstrip("/")
    print(f"pushed {args.folder} -> {uri}")
    print(f"sha256 {sha}")
    print("# in the experiment YAML:")
    print(f"scene: {uri}")
    print(f"scene_sha256: {sha}")
    return 0


def _cmd_hash(args) -> int:
    print(content_hash(args.folder))
    return 0


def _cmd_pull(args) -> int:
    print(resolve_scene(args.uri, sha256=args.sha256, cache_dir=args.cache_dir))
    return 0


def _register_scene(subparsers) -> None:
    p = subparsers.add_parser("scene", help="scene bundles: push to object storage, hash, pull into the cache")
    sub = p.add_subparsers(dest="scene_command", metavar="ACTION", parser_class=type(p))
    sub.required = True
    push = sub.add_parser("push", help="upload a scene folder (or .zip/.tar.gz) as a content-hashed bundle")
    push.add_argument("folder", help="folder with scene.xml + meshes, or a .zip/.tar.gz of one")
    push.add_argument("uri", help="destination, e.g. s3://bucket/scenes/NAME (or a local folder)")
    push.set_defaults(handler=_cmd_push)
    h = sub.add_parser("hash", help="print the content sha256 of a scene folder (what scene_sha256 pins)")
    h.add_argument("folder")
    h.set_defaults(handler=_cmd_hash)
    pull = sub.add_parser("pull", help="fetch a bundle into the local cache and print its folder")
    pull.add_argument("uri")
    pull.add_argument("--sha256", default=None, help="expected content hash")
    pull.add_argument("--cache-dir", default=None, help=f"default: ${ENV_CACHE_DIR} or {SCENE_CACHE_DEFAULT}")
    pull.set_defaults(handler=_cmd_pull)


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
    print(f"{'NAME':<{wn}}  {'RUN ID':<{wr}}  {'STATUS':<11}  {'MIN RSS [dBm]':>13}  COVERAGE")
    for r in rows:
        rss = fmt_dbm(r["min_rss_dbm"], 2) if r["complete"] else "-"
        cov = fmt_pct(r["coverage"]) if r["complete"] else "-"
        print(f"{r['name']:<{wn}}  {r['run_id']:<{wr}}  {r['status'] or 'incomplete':<11}  {rss:>13}  {cov}")
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


def _register_results(subparsers) -> None:
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


def register(subparsers) -> None:
    _register_scene(subparsers)
    _register_results(subparsers)
