"""`reflectopt report RESULTS`: redraw the pictures and report.html/.md of a run (local folder or s3://)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from optimizer.constants import CHECKPOINTS_DIR, EXIT_OK, HEATMAPS_DIR, RADIO_MAPS_FILE, SUMMARY_FILE
from optimizer.errors import ReflectoptError
from optimizer.report.build import write_report
from optimizer.store import storage


def _cmd_report(args) -> int:
    src = str(args.results)
    kw = {"radio_maps": not args.no_radio_maps, "retrace": args.retrace}
    if storage.is_remote(src):
        if not storage.exists(storage.join(src, SUMMARY_FILE)):
            raise ReflectoptError(f"RESULTS: no {SUMMARY_FILE} in {src}; is the run complete?")
        with tempfile.TemporaryDirectory(prefix="reflectopt-report-") as tmp:
            storage.download_dir(src, tmp, exclude_prefixes=(CHECKPOINTS_DIR + "/",))
            files = write_report(tmp, **kw)
            for p in files:
                rel = Path(p).relative_to(tmp).as_posix()
                storage.upload_file(p, storage.join(src, rel))
                print(storage.join(src, rel))
        return EXIT_OK
    run_dir = Path(src)
    if not run_dir.is_dir():
        raise ReflectoptError(f"RESULTS: {src} is not a folder; give a run folder (results/NAME/RUN-ID) "
                              "or an s3:// run URI")
    if not (run_dir / SUMMARY_FILE).is_file():
        raise ReflectoptError(f"RESULTS: no {SUMMARY_FILE} in {src}; is the run complete?")
    for p in write_report(run_dir, **kw):
        print(p)
    sys.stdout.flush()
    return EXIT_OK


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="draw radio maps, trajectories, convergence and report.html/.md "
                                             "for a run (local folder or s3://)")
    p.add_argument("results", metavar="RESULTS", help="a run folder (results/NAME/RUN-ID) or an s3:// run URI")
    p.add_argument("--no-radio-maps", action="store_true",
                   help="do not ray-trace radio maps (maps saved by an earlier report are still drawn)")
    p.add_argument("--retrace", action="store_true",
                   help=f"ray-trace the radio maps again even if {HEATMAPS_DIR}/{RADIO_MAPS_FILE} exists")
    p.set_defaults(handler=_cmd_report)
