"""Pictures and a one-page report of a finished run: `heatmaps/*.png`, `report.html`, `report.md`.

`write_report(run_dir)` reads a local run folder's records (through `RunStore`), ray-traces two radio maps
(Sionna RadioMapSolver; without the plate and with the plate at the winner pose, same seed), draws each
picture independently (a failure is one warning line, never an exception) and writes the report last.
Where the scene has a site.json it also writes site.geojson and site.kml (`optimizer.sites.export`), and
credits the map data (site.json's attribution, "© OpenStreetMap contributors" for OSM) on every page.
It never modifies the numeric result files.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from optimizer.constants import (
    GAIN_MAP_LIMIT_DB,
    HEATMAPS_DIR,
    MOUNTING_HTML,
    PNG_COLLATERAL,
    PNG_CONVERGENCE,
    PNG_RADIO_MAP_BASELINE,
    PNG_RADIO_MAP_GAIN,
    PNG_RADIO_MAP_WINNER,
    PNG_RSS_CDF,
    PNG_TOLERANCE,
    PNG_TRAJECTORIES,
    RADIO_MAP_SAMPLES_PER_TX,
    RADIO_MAPS_FILE,
    RADIO_MAPS_GEOTIFF,
    REPORT_HTML,
    REPORT_MD,
    TOLERANCE_MAP_FILE,
    TOLERANCE_MAP_STEPS,
)
from optimizer.records import Summary, TargetRow, WorldStep
from optimizer.report.collateral import collateral_of_maps, with_constraint
from optimizer.experiment.areas import map_area
from optimizer.report.radio_maps import compute_radio_maps, scene_geometry
from optimizer.report.text import build_document, to_html, to_markdown
from optimizer.store.runstore import RunStore
from optimizer.spec import RunSpec

log = logging.getLogger(__name__)

PICTURES = (PNG_RADIO_MAP_BASELINE, PNG_RADIO_MAP_WINNER, PNG_RADIO_MAP_GAIN, PNG_COLLATERAL, PNG_TOLERANCE,
            PNG_TRAJECTORIES, PNG_CONVERGENCE, PNG_RSS_CDF)
CAPTIONS = {
    PNG_RADIO_MAP_BASELINE: "Radio map without the plate (baseline)",
    PNG_RADIO_MAP_WINNER: "Radio map with the plate at the winner pose (Sionna's RadioMapSolver reflects off the "
                          "plate by geometric optics; the tables use the run's plate model)",
    PNG_RADIO_MAP_GAIN: f"Gain: winner minus baseline (fixed scale ±{GAIN_MAP_LIMIT_DB:g} dB; the plate by geometric "
                        "optics, as in the radio maps)",
    PNG_TOLERANCE: "Truth min RSS around the winner: along the wall against yaw, the mounting tolerance box dashed",
    PNG_TRAJECTORIES: "Trajectories of all worlds",
    PNG_CONVERGENCE: "Convergence: the ray-traced truth per step (left); the search model's own objective "
                     "(right, a diagnostic: a model's prediction, refit as the search goes, not a measurement)",
    PNG_COLLATERAL: "Collateral loss: what the plate takes away (baseline minus winner over the cells covered "
                    "without the plate; hatched: covered without it, not with it, by more than the noise margin; the "
                    "plate by geometric optics, as in the radio maps)",
    PNG_RSS_CDF: "RSS distribution over targets (solid) and over the radio map's area outside buildings (dashed)",
}

if TYPE_CHECKING:
    from optimizer.experiment import Experiment


class _Steps:
    """Runs drawing steps independently: a failure is one warning line, the rest go on."""

    def __init__(self):
        self.failed: list[str] = []
        self.times: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - drawing must never lose the run's numbers
            msg = str(err).splitlines()[0] if str(err) else type(err).__name__
            log.warning("report: %s skipped (%s: %s)", name, type(err).__name__, msg)
            self.failed.append(f"{name}: {type(err).__name__}: {msg}")
            return None
        finally:
            self.times[name] = time.perf_counter() - t0


def _rss(values) -> np.ndarray:
    """A record column of dBm (None: no path) as floats for drawing (no path: -inf)."""
    return np.array([-np.inf if v is None else float(v) for v in values], float)


def _plan(exp: Experiment, targets: list[TargetRow] | None, sections, footprints, height):
    from optimizer.report.plots import FloorPlan

    b = exp.plates()[0].bounds
    xy = np.array([[t.x, t.y] for t in targets], float) if targets else np.array(exp.target_points(), float)[:, :2]
    return FloorPlan(sections=np.asarray(sections, float).reshape(-1, 2, 2),
                     footprints=np.asarray(footprints, float).reshape(-1, 3, 2),
                     tx_xy=np.array([t.position[:2] for t in exp.transmitters], float),
                     tx_names=[t.name for t in exp.transmitters], targets_xy=xy.reshape(-1, 2),
                     bounds_min=(b.min[0], b.min[1]), bounds_max=(b.max[0], b.max[1]),
                     plate_size=tuple(exp.plates()[0].size_m), height_m=float(height),
                     plate_sizes=[tuple(r.size_m) for r in exp.plates()], plate_names=[r.name for r in exp.plates()],
                     more_boxes=[(r.bounds.min[0], r.bounds.min[1], r.bounds.max[0], r.bounds.max[1])
                                 for r in exp.plates()[1:]], box_rings=_box_rings(exp))


def _box_rings(exp: Experiment) -> list:
    """Every plate's mounting box in plan as its 4 corners where one is in a wall's frame; [] otherwise."""
    if all(r.bounds.frame is None for r in exp.plates()):
        return []
    out = []
    for r in exp.plates():
        b = r.bounds
        out.append(b.frame.corners() if b.frame is not None else
                   np.array([[b.min[0], b.min[1]], [b.max[0], b.min[1]], [b.max[0], b.max[1]], [b.min[0], b.max[1]]]))
    return out


def write_report(run_dir, exp=None, radio_maps: bool = True, *, summary: Summary | None = None,
                 radio_scene=None, retrace: bool = False, device: str = "cpu", threads: int = 2,
                 samples_per_tx: int = RADIO_MAP_SAMPLES_PER_TX) -> list[Path]:
    """Draw the pictures and write report.html + report.md into the local run folder `run_dir`.

    exp: the run's `RunSpec` (the run command passes the winner's) or an `Experiment` (default: the run
    folder's).
    summary: the run's summary (default: read summary.json; the run command passes it before writing it).
    radio_scene: an existing `RadioScene` of this experiment to trace with (default: a new one on `device`
    with `threads`); its plate is parked afterwards.
    radio_maps=False: no ray tracing (radio maps saved by an earlier report are still drawn).
    retrace=True: ray-trace the radio maps even if heatmaps/radio_maps.npz exists.
    Returns the files written. Raises ReflectoptError only when there is no readable summary."""
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    store = RunStore(str(run_dir))
    if summary is None:
        summary = store.read_summary()
    heat = run_dir / HEATMAPS_DIR
    heat.mkdir(parents=True, exist_ok=True)
    steps = _Steps()
    written: list[Path] = []
    if exp is None:
        from optimizer.experiment import load_run_experiment

        exp = steps.run("experiment", load_run_experiment, store)
    spec = RunSpec.of(exp) if exp is not None and not isinstance(exp, RunSpec) else exp
    exp = spec.exp if spec is not None else None
    thr = summary.threshold_dbm
    targets: list[TargetRow] | None = steps.run("targets.csv", store.read_targets)
    history: list[WorldStep] | None = steps.run("trajectories", store.read_trajectories)
    pose = summary.winner.joint_pose
    status = {o.world: o.status for o in summary.worlds}
    winner_world = summary.winner.world
    height = float(np.median([t.z for t in targets])) if targets else 1.5
    from optimizer.sites.export import scene_site, write_site_files  # only where there is a site.json
    from optimizer.sites.record import credit

    site = steps.run("site.json", scene_site, exp) if exp is not None else None
    attribution = credit(site)  # the map data's credit (OSM: ODbL) on report.html/.md and mounting.html
    if site is not None:
        written += steps.run("site.geojson / site.kml", write_site_files, run_dir, exp, pose, targets, site) or []

    # --- radio maps (ray tracing) and scene geometry -------------------------------------------------------
    npz_path = heat / RADIO_MAPS_FILE
    maps = None
    if npz_path.is_file() and not retrace:
        maps = steps.run("radio maps (saved)", lambda: dict(np.load(npz_path)))
    rm_time = None
    need_geometry = "sections" not in (maps or {})
    need_maps = radio_maps and "baseline_dbm" not in (maps or {})
    if exp is not None and (need_geometry or need_maps):
        def _trace():
            from optimizer.physics.scene import RadioScene

            rs = radio_scene if radio_scene is not None else RadioScene(exp, device=device, threads=threads)
            sections, footprints = scene_geometry(rs, height)
            out = {"sections": sections, "footprints": footprints}
            if need_maps:
                bbox = rs.scene.mi_scene.bbox()
                xyz = np.array([[t.x, t.y, t.z] for t in targets], float) if targets else None
                area = map_area(exp, xyz, (np.array(bbox.min), np.array(bbox.max)))
                out.update(compute_radio_maps(rs, exp, pose, area, height, samples_per_tx))
            return out

        t0 = time.perf_counter()
        traced = steps.run("radio maps (ray tracing)" if need_maps else "scene geometry", _trace)
        rm_time = time.perf_counter() - t0
        if traced is not None:
            maps = {**(maps or {}), **traced}
            coll = collateral_of_maps(maps, thr)
            if coll is not None:
                maps["collateral"] = coll[1]
            if "baseline_dbm" in maps:
                steps.run(RADIO_MAPS_FILE, np.savez_compressed, npz_path, **maps)
                written.append(npz_path)
    maps = maps or {}
    if site is not None and "baseline_dbm" in maps:  # the maps for GIS, in the site's projection
        from optimizer.sites.geotiff import write_radio_maps_geotiff

        written += steps.run(RADIO_MAPS_GEOTIFF, write_radio_maps_geotiff, heat, maps, site) or []
    coll = steps.run("collateral loss", collateral_of_maps, maps, thr)
    if coll is not None:
        summary = summary.model_copy(update={"collateral": coll[0]})
    plan = _plan(exp, targets, maps.get("sections", np.zeros((0, 2, 2))), maps.get("footprints", np.zeros((0, 3, 2))),
                 height) if exp is not None else None
    t_draw = time.perf_counter()
    from optimizer.report import plots

    # --- radio-map pictures ----------------------------------------------------------------------------------
    cov_b = np.array([t.covered_baseline for t in targets], bool) if targets else None
    cov_w = np.array([t.covered_winner for t in targets], bool) if targets else None
    if "baseline_dbm" in maps and plan is not None:
        x, y = maps["x"], maps["y"]
        lo, hi = plots.dbm_range(maps["baseline_dbm"], maps.get("winner_dbm", maps["baseline_dbm"]), threshold=thr)
        name = summary.name
        written.append(steps.run(PNG_RADIO_MAP_BASELINE, plots.radio_map, heat / PNG_RADIO_MAP_BASELINE, x, y,
                                 maps["baseline_dbm"], plan, title=f"{name}: without plate (baseline), "
                                 f"z = {height:.1f} m", vmin=lo, vmax=hi, threshold=thr, covered=cov_b))
        if "winner_dbm" in maps:
            written.append(steps.run(PNG_RADIO_MAP_WINNER, plots.radio_map, heat / PNG_RADIO_MAP_WINNER, x, y,
                                     maps["winner_dbm"], plan, title=f"{name}: with plate at winner pose, "
                                     f"z = {height:.1f} m", vmin=lo, vmax=hi, threshold=thr, covered=cov_w,
                                     pose=pose))
            written.append(steps.run(PNG_RADIO_MAP_GAIN, plots.gain_map, heat / PNG_RADIO_MAP_GAIN, x, y,
                                     maps["baseline_dbm"], maps["winner_dbm"], plan,
                                     title=f"{name}: gain of the plate (winner − baseline)", covered=cov_w,
                                     pose=pose))
        if coll is not None:
            rec, mask, buildings = coll
            worst = "" if rec.worst_loss_db is None else (
                f"; worst cell loses {rec.worst_loss_db:.0f} dB" + (" (no path)" if rec.worst_no_path else ""))
            written.append(steps.run(PNG_COLLATERAL, plots.collateral_map, heat / PNG_COLLATERAL, x, y,
                                     maps["baseline_dbm"], maps["winner_dbm"], mask, plan,
                                     title=f"{name}: collateral loss {rec.area_m2:.1f} m² (covered without the "
                                     f"plate, not with it){worst}", threshold=thr, buildings=buildings, pose=pose,
                                     worst_xy=rec.worst_xy_m))

    # --- the truth around the winner, over the mounting tolerance ---------------------------------------------
    tol_path = heat / TOLERANCE_MAP_FILE
    chk = summary.winner.tolerance
    if chk is not None and exp is not None:
        grid = steps.run("tolerance map (saved)", lambda: dict(np.load(tol_path))) if tol_path.is_file() and \
            not retrace else None
        if grid is None and radio_maps:
            def _tol_grid():
                from optimizer.physics import tolerance
                from optimizer.physics.scene import RadioScene

                rs = radio_scene if radio_scene is not None else RadioScene(exp, device=device, threads=threads)
                out = tolerance.along_yaw_grid(rs, exp, pose, TOLERANCE_MAP_STEPS)
                rs.park_plate()
                return out

            grid = steps.run("tolerance map (ray tracing)", _tol_grid)
            if grid is not None:
                steps.run(TOLERANCE_MAP_FILE, np.savez_compressed, tol_path, **grid)
                written.append(tol_path)
        if grid is not None:
            written.append(steps.run(PNG_TOLERANCE, plots.tolerance_map, heat / PNG_TOLERANCE, grid["along_m"],
                                     grid["yaw_deg"], grid["min_rss_dbm"], grid["covered"],
                                     box_along_m=chk.position_m, box_yaw_deg=chk.yaw_deg, threshold=thr,
                                     title=f"{summary.name}: truth around the winner (other axes nominal)"))

    # --- trajectories and convergence ----------------------------------------------------------------------
    if history:
        series: dict[int, dict] = {}
        for st in history:
            d = series.setdefault(st.world, {k: [] for k in ("step", "x", "y", "min_rss", "best_min_rss",
                                                             "objective", "surrogate")})
            d["step"].append(st.step)
            d["x"].append(st.pose.first.x)
            d["y"].append(st.pose.first.y)
            d["min_rss"].append(st.truth.min_rss_dbm)
            d["best_min_rss"].append(st.best.min_rss_dbm)
            d["objective"].append(st.objective_dbm)
            d["surrogate"].append(st.surrogate_dbm)
        series = {w: {k: (_rss(v) if k in ("min_rss", "best_min_rss", "objective", "surrogate") else np.asarray(v, float))
                      for k, v in d.items()} for w, d in series.items()}
        if plan is not None:
            area = (float(maps["x"][0]), float(maps["x"][-1]), float(maps["y"][0]), float(maps["y"][-1])) \
                if "x" in maps else map_area(exp, np.array([[t.x, t.y, t.z] for t in targets]) if targets else None)
            paths = {w: np.stack([d["x"], d["y"]], axis=1) for w, d in series.items()}
            written.append(steps.run(PNG_TRAJECTORIES, plots.trajectories, heat / PNG_TRAJECTORIES, plan, paths,
                                     status, winner_world, extent=area, winner_pose=pose))
        use_sur = any(np.isfinite(d["surrogate"]).any() for d in series.values())
        conv = {w: {"step": d["step"], "min_rss": d["min_rss"], "best_min_rss": d["best_min_rss"],
                    "objective": d["surrogate"] if use_sur else d["objective"]} for w, d in series.items()}
        label = ("MODEL: surrogate objective (soft-min, plate path) [dBm]" if use_sur
                 else "objective: soft-min of truth RSS [dBm]")
        written.append(steps.run(PNG_CONVERGENCE, plots.convergence, heat / PNG_CONVERGENCE, conv, status,
                                 winner_world, summary.pruning.rungs, thr, objective_label=label, model=use_sur))

    # --- distribution ----------------------------------------------------------------------------------------
    if targets:
        area = None
        if coll is not None:
            outside = ~coll[2]
            area = (maps["baseline_dbm"][outside], maps["winner_dbm"][outside])
        written.append(steps.run(PNG_RSS_CDF, plots.rss_cdf, heat / PNG_RSS_CDF,
                                 _rss(t.baseline_rss_dbm for t in targets), _rss(t.winner_rss_dbm for t in targets),
                                 thr, area))
    draw_time = time.perf_counter() - t_draw

    timing = {"radio_maps_s": rm_time, "pictures_s": draw_time, "total_s": time.perf_counter() - t_start,
              "cells": (len(maps["x"]), len(maps["y"])) if "x" in maps else None,
              "samples_per_tx": int(maps["samples_per_tx"]) if "samples_per_tx" in maps else None}
    if any(p.mount is not None for p in summary.winner.plates):
        from optimizer.report import mounting

        written.append(steps.run(MOUNTING_HTML, lambda: _write(run_dir / MOUNTING_HTML,
                                                               mounting.to_html(summary, attribution))))
    pictures = [heat / n for n in PICTURES if (heat / n).is_file()]
    doc = build_document(summary, exp, pictures, CAPTIONS, timing, steps.failed, attribution)
    md = steps.run(REPORT_MD, _write, run_dir / REPORT_MD, to_markdown(doc))
    timing["total_s"] = time.perf_counter() - t_start
    page = steps.run(REPORT_HTML, lambda: _write(run_dir / REPORT_HTML,
                                                 to_html(build_document(summary, exp, pictures, CAPTIONS, timing,
                                                                        steps.failed, attribution))))
    written += [md, page]
    return [p for p in dict.fromkeys(written) if p is not None]


def run_collateral(run_dir, threshold_dbm: float, protect=None):
    """`summary.collateral` of a run folder whose report saved its radio maps (None: no maps, no winner map);
    `protect` (summary.objective.protect) adds the constraint's verdict (`collateral.with_constraint`)."""
    npz = Path(run_dir) / HEATMAPS_DIR / RADIO_MAPS_FILE
    if not npz.is_file():
        return None
    coll = collateral_of_maps(dict(np.load(npz)), threshold_dbm)
    return with_constraint(coll[0], protect) if coll is not None else None


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
