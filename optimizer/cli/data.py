"""`reflectopt scene push|pull|hash|import|walls` and `reflectopt results ls|get`: scene bundles and run folders."""

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


def _cmd_import(args) -> int:
    from optimizer.sites.importer import import_site

    site = import_site(args.file, args.out, bbox=args.bbox, center=args.center, radius=args.radius,
                       level_height_m=args.level_height, default_height_m=args.default_height,
                       ground_material=args.ground)
    c = site["counts"]
    hs = ", ".join(f"{v} {k}" for k, v in c["height_source"].items())
    skipped = ", ".join(f"{v} {k}" for k, v in c["skipped"].items() if v) or "none"
    print(f"imported {c['buildings']} buildings -> {args.out} (heights: {hs}; repaired {c['repaired']}; "
          f"skipped: {skipped}; {c['walls']} facades)")
    f = site["frame"]
    print(f"frame EPSG:{f['epsg']}, origin {f['origin_lat_deg']:.7f}, {f['origin_lon_deg']:.7f}")
    if site["attribution"]:
        print(f"data {site['attribution']} ({site['license'] or 'see the source'})")
    print("# in the experiment YAML:")
    print(f"scene: {args.out}")
    return 0


def _cmd_walls(args) -> int:
    from optimizer.sites.facades import facades

    rows = facades(args.folder, near=args.near, limit=args.limit)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    wid = max([2, *(len(r["id"]) for r in rows)])
    near = "near" if args.near is not None else ""
    print(f"{'ID':<{wid}}  {'LENGTH':>7}  {'Z [m]':>11}  {'NORMAL':>6}  {'START x,y [m]':>19}  "
          f"{'END x,y [m]':>19}  {'START lat,lon':>24}  {'END lat,lon':>24}" + (f"  {'DIST':>7}" if near else ""))
    for r in rows:
        s, e = r["start"], r["end"]
        line = (f"{r['id']:<{wid}}  {r['length_m']:>7.2f}  {r['z0_m']:>5.1f}-{r['z1_m']:<5.1f}  "
                f"{r['normal_bearing_deg']:>6.1f}  {s['x_m']:>9.2f},{s['y_m']:>9.2f}  {e['x_m']:>9.2f},{e['y_m']:>9.2f}  "
                f"{s['lat_deg']:>11.7f},{s['lon_deg']:>12.7f}  {e['lat_deg']:>11.7f},{e['lon_deg']:>12.7f}")
        print(line + (f"  {r['distance_m']:>7.2f}" if near else ""))
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
    from optimizer.sites import tags
    from optimizer.sites.area import MAX_AREA_KM2, MAX_BUILDINGS
    from optimizer.sites.importer import GROUND_MATERIALS

    imp = sub.add_parser("import", help="a scene bundle from a map: OSM .osm.pbf/.osm or GeoJSON building "
                                        "footprints -> scene.xml, meshes/, footprints.geojson, site.json")
    imp.add_argument("file", metavar="FILE", help=".osm.pbf, .osm or .geojson (building footprints)")
    imp.add_argument("--out", required=True, help="new (or empty) folder for the bundle")
    imp.add_argument("--bbox", default=None, help=f"S,W,N,E in degrees (at most {MAX_AREA_KM2:g} km^2 and "
                                                  f"{MAX_BUILDINGS} buildings; default: the whole file)")
    imp.add_argument("--center", default=None, help="LAT,LON in degrees, with --radius")
    imp.add_argument("--radius", default=None, help="metres around --center")
    imp.add_argument("--level-height", type=float, default=tags.LEVEL_HEIGHT_M,
                     help=f"metres per building:levels (default {tags.LEVEL_HEIGHT_M:g})")
    imp.add_argument("--default-height", type=float, default=tags.DEFAULT_HEIGHT_M,
                     help=f"metres, for a building with neither height nor levels (default {tags.DEFAULT_HEIGHT_M:g})")
    imp.add_argument("--ground", default=tags.GROUND_MATERIAL, choices=GROUND_MATERIALS,
                     help=f"ITU material of the ground (default {tags.GROUND_MATERIAL}, defined for 1-10 GHz)")
    imp.set_defaults(handler=_cmd_import)
    walls = sub.add_parser("walls", help="list the facades of an imported scene (site.json): id, building, "
                                         "length, outward normal bearing, end points (scene and lat/lon)")
    walls.add_argument("folder", metavar="DIR", help="a scene folder written by `scene import`")
    walls.add_argument("--near", default=None, help="LAT,LON in degrees, or Xm,Ym in scene metres (e.g. "
                                                    "120m,-35m): nearest facades first, with their distance")
    walls.add_argument("--limit", type=int, default=None, help="list at most this many")
    walls.add_argument("--json", action="store_true", help="machine-readable output")
    walls.set_defaults(handler=_cmd_walls)


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
