"""Pictures and a one-page report of a finished run: `heatmaps/*.png`, `report.html`, `report.md`.

`write_report(run_dir)` reads a local run folder (summary.json, targets.csv, trajectories.csv,
experiment.yaml), ray-traces two radio maps (Sionna RadioMapSolver; without the plate and with the plate at
the winner pose, same seed), draws each picture independently (a failure is one warning line, never an
exception) and writes the report last. It never modifies the numeric result files.
`reflectopt report RESULTS` does the same for a local folder or an s3:// run URI.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from optimizer.constants import (
    CHECKPOINTS_DIR,
    EXIT_OK,
    EXPERIMENT_FILE,
    HEATMAPS_DIR,
    PLATE_OBJECT_NAME,
    PNG_CONVERGENCE,
    PNG_RADIO_MAP_BASELINE,
    PNG_RADIO_MAP_GAIN,
    PNG_RADIO_MAP_WINNER,
    PNG_RSS_CDF,
    PNG_TRAJECTORIES,
    RADIO_MAP_MARGIN_M,
    RADIO_MAP_MAX_CELLS,
    RADIO_MAP_MIN_CELL_M,
    RADIO_MAP_SAMPLES_PER_TX,
    RADIO_MAPS_FILE,
    REPORT_HTML,
    REPORT_MD,
    RSS_FLOOR_DBM,
    SUMMARY_FILE,
    TARGETS_FILE,
    TRAJECTORIES_FILE,
)
from optimizer.errors import ReflectoptError

log = logging.getLogger(__name__)

PICTURES = (PNG_RADIO_MAP_BASELINE, PNG_RADIO_MAP_WINNER, PNG_RADIO_MAP_GAIN, PNG_TRAJECTORIES, PNG_CONVERGENCE,
            PNG_RSS_CDF)
_CAPTIONS = {
    PNG_RADIO_MAP_BASELINE: "Radio map without the plate (baseline)",
    PNG_RADIO_MAP_WINNER: "Radio map with the plate at the winner pose",
    PNG_RADIO_MAP_GAIN: "Gain: winner minus baseline",
    PNG_TRAJECTORIES: "Trajectories of all worlds",
    PNG_CONVERGENCE: "Convergence",
    PNG_RSS_CDF: "RSS distribution over targets",
}
_MAX_FOOTPRINT_TRIANGLES = 200_000  # above this, only the wall cut is drawn


# --- number formats (the report and its tests use these) ---------------------------------------------
def fmt_dbm(v) -> str:
    return "-" if v is None or not np.isfinite(float(v)) else f"{float(v):.1f}"


def fmt_db(v) -> str:
    return "-" if v is None or not np.isfinite(float(v)) else f"{float(v):+.1f}"


def fmt_pct(v) -> str:
    return "-" if v is None or not np.isfinite(float(v)) else f"{100.0 * float(v):.1f} %"


def fmt_pose(p: dict | None) -> str:
    if not p:
        return "-"
    return (f"x {p.get('x', 0):.2f} m, y {p.get('y', 0):.2f} m, z {p.get('z', 0):.2f} m, "
            f"yaw {p.get('yaw_deg', 0):.1f}°, pitch {p.get('pitch_deg', 0.0):.1f}°")


def fmt_s(v) -> str:
    return "-" if v is None else f"{float(v):.1f} s"


# --- reading a run -----------------------------------------------------------------------------------
def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _num(v, default=float("nan")) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def _bool(v) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes", "y")


def _load_summary(run_dir: Path) -> dict:
    path = run_dir / SUMMARY_FILE
    if not path.is_file():
        raise ReflectoptError(f"RESULTS: no {SUMMARY_FILE} in {run_dir}; is the run complete?")
    try:
        summary = json.loads(path.read_text())
    except ValueError as err:
        raise ReflectoptError(f"RESULTS: {path} is not valid JSON ({err})") from None
    if not isinstance(summary, dict):
        raise ReflectoptError(f"RESULTS: {path} does not hold a JSON object")
    return summary


def _target_table(run_dir: Path, exp, summary: dict) -> dict | None:
    """xyz [N, 3], baseline/winner RSS [dBm], covered flags, from targets.csv (fallback: experiment)."""
    path = run_dir / TARGETS_FILE
    if path.is_file():
        rows = _read_csv(path)
        if rows:
            xyz = np.array([[_num(r["x"]), _num(r["y"]), _num(r["z"])] for r in rows], float)
            base = np.array([_num(r.get("baseline_rss_dbm"), RSS_FLOOR_DBM) for r in rows], float)
            win = np.array([_num(r.get("winner_rss_dbm"), RSS_FLOOR_DBM) for r in rows], float)
            thr = _num(summary.get("threshold_dbm"))
            cb = np.array([_bool(r["covered_baseline"]) if "covered_baseline" in r else b >= thr
                           for r, b in zip(rows, base)], bool)
            cw = np.array([_bool(r["covered_winner"]) if "covered_winner" in r else w >= thr
                           for r, w in zip(rows, win)], bool)
            return {"xyz": xyz, "baseline": base, "winner": win, "covered_baseline": cb, "covered_winner": cw}
    if exp is not None:
        xyz = np.array(exp.target_points(), float)
        return {"xyz": xyz, "baseline": None, "winner": None, "covered_baseline": None, "covered_winner": None}
    return None


def _trajectory_series(run_dir: Path) -> dict:
    """world -> {step, x, y, min_rss, best_min_rss, objective, surrogate} arrays sorted by step."""
    rows = _read_csv(run_dir / TRAJECTORIES_FILE)
    out: dict[int, dict] = {}
    for r in rows:
        w = int(_num(r["world"]))
        d = out.setdefault(w, {k: [] for k in ("step", "x", "y", "min_rss", "best_min_rss", "objective",
                                               "surrogate")})
        d["step"].append(_num(r["step"]))
        d["x"].append(_num(r["x"]))
        d["y"].append(_num(r["y"]))
        d["min_rss"].append(_num(r.get("min_rss_dbm")))
        d["best_min_rss"].append(_num(r.get("best_min_rss_dbm")))
        d["objective"].append(_num(r.get("objective_dbm")))
        d["surrogate"].append(_num(r.get("surrogate_dbm")))
    for d in out.values():
        order = np.argsort(np.asarray(d["step"], float), kind="stable")
        for k in d:
            d[k] = np.asarray(d[k], float)[order]
    return out


def _world_status(summary: dict) -> dict:
    return {int(w.get("world", i)): str(w.get("status", "completed"))
            for i, w in enumerate(summary.get("worlds") or []) if isinstance(w, dict)}


def _winner_pose(summary: dict):
    from optimizer.geometry import Pose

    p = (summary.get("winner") or {}).get("pose")
    if not isinstance(p, dict):
        return None
    return Pose(**{k: float(p[k]) for k in ("x", "y", "z", "yaw_deg", "pitch_deg") if k in p})


# --- scene geometry ------------------------------------------------------------------------------------
def _mesh_arrays(obj):
    m = obj.mi_mesh
    v = np.array(m.vertex_positions_buffer(), dtype=float).reshape(-1, 3)
    f = np.array(m.faces_buffer(), dtype=np.int64).reshape(-1, 3)
    return v, f


def section_segments(tris: np.ndarray, h: float) -> np.ndarray:
    """Where triangles [T, 3, 3] cross the plane z = h: segments [S, 2, 2] (x, y) [m]."""
    if len(tris) == 0:
        return np.zeros((0, 2, 2))
    z = tris[:, :, 2] - h
    z = np.where(np.abs(z) < 1e-7, 1e-7, z)  # a vertex exactly on the plane counts as just above it
    segs = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        za, zb = z[:, a], z[:, b]
        cross = (za * zb) < 0
        t = np.where(cross, za / np.where(cross, za - zb, 1.0), 0.0)
        p = tris[:, a, :2] + t[:, None] * (tris[:, b, :2] - tris[:, a, :2])
        segs.append((cross, p))
    c0, c1, c2 = (s[0] for s in segs)
    pts = np.stack([s[1] for s in segs], axis=1)  # [T, 3 edges, 2]
    out = []
    for (i, j), mask in (((0, 1), c0 & c1), ((1, 2), c1 & c2), ((0, 2), c0 & c2)):
        if mask.any():
            out.append(np.stack([pts[mask, i], pts[mask, j]], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2, 2))


def scene_geometry(rs, h: float) -> tuple[np.ndarray, np.ndarray]:
    """(wall cut segments [S, 2, 2], footprint triangles [T, 3, 2]) of the objects that cross height h;
    objects entirely below or above it (floor, ceiling, ground) and the plate are left out."""
    segs, foot, n_tri = [], [], 0
    for name, obj in rs.scene.objects.items():
        if name == PLATE_OBJECT_NAME:
            continue
        try:
            v, f = _mesh_arrays(obj)
        except Exception:  # noqa: BLE001, S112 - an object we cannot read is simply not drawn
            continue
        if len(v) == 0 or len(f) == 0 or not (v[:, 2].min() < h < v[:, 2].max()):
            continue
        tris = v[f]
        segs.append(section_segments(tris, h))
        n_tri += len(tris)
        xy = tris[:, :, :2]
        area = 0.5 * np.abs((xy[:, 1, 0] - xy[:, 0, 0]) * (xy[:, 2, 1] - xy[:, 0, 1])
                            - (xy[:, 2, 0] - xy[:, 0, 0]) * (xy[:, 1, 1] - xy[:, 0, 1]))
        foot.append(xy[area > 1e-6])
    sections = np.concatenate(segs) if segs else np.zeros((0, 2, 2))
    footprints = np.concatenate(foot) if foot and n_tri <= _MAX_FOOTPRINT_TRIANGLES else np.zeros((0, 3, 2))
    return sections, footprints


def map_area(exp, targets_xyz: np.ndarray | None, scene_bbox=None):
    """(x0, x1, y0, y1) [m]: targets, transmitters and the plate box plus a margin, clipped to the scene."""
    pts = [np.asarray(t.position[:2], float) for t in exp.transmitters]
    b = exp.reflector.bounds
    half = 0.5 * max(exp.reflector.size_m)
    pts += [np.array([b.min[0] - half, b.min[1] - half]), np.array([b.max[0] + half, b.max[1] + half])]
    if targets_xyz is not None and len(targets_xyz):
        pts += list(np.asarray(targets_xyz, float)[:, :2])
    p = np.array(pts)
    lo, hi = p.min(axis=0), p.max(axis=0)
    margin = max(RADIO_MAP_MARGIN_M, 0.05 * float(np.max(hi - lo)))
    lo, hi = lo - margin, hi + margin
    if scene_bbox is not None:
        slo, shi = np.asarray(scene_bbox[0], float)[:2], np.asarray(scene_bbox[1], float)[:2]
        if np.all(shi > slo):
            lo, hi = np.maximum(lo, np.minimum(slo, p.min(axis=0))), np.minimum(hi, np.maximum(shi, p.max(axis=0)))
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def _to_dbm(watts) -> np.ndarray:
    w = np.asarray(watts, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = 10.0 * np.log10(w) + 30.0
    return np.maximum(np.nan_to_num(d, nan=RSS_FLOOR_DBM, neginf=RSS_FLOOR_DBM, posinf=RSS_FLOOR_DBM),
                      RSS_FLOOR_DBM)


def compute_radio_maps(rs, exp, pose, area, height: float, samples_per_tx: int = RADIO_MAP_SAMPLES_PER_TX) -> dict:
    """Baseline (plate parked) and winner (plate at `pose`) RSS maps [dBm] on a horizontal plane at
    `height`, same seed and cells; gain = winner - baseline [dB] (both floored at RSS_FLOOR_DBM)."""
    import mitsuba as mi
    from sionna import rt

    x0, x1, y0, y1 = area
    span = max(x1 - x0, y1 - y0)
    cell = max(span / RADIO_MAP_MAX_CELLS, RADIO_MAP_MIN_CELL_M)
    nx = max(1, math.ceil((x1 - x0) / cell - 1e-9))
    ny = max(1, math.ceil((y1 - y0) / cell - 1e-9))
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    solver = rt.RadioMapSolver()
    s = exp.solver
    out = {}
    for key, p in (("baseline", None), ("winner", pose)):
        if key == "winner" and p is None:
            continue
        if p is None:
            rs.park_plate()
        else:
            rs.set_pose(p)
        rm = solver(rs.scene, center=mi.Point3f(float(cx), float(cy), float(height)),
                    orientation=mi.Point3f(0.0, 0.0, 0.0), size=mi.Point2f(float(nx * cell), float(ny * cell)),
                    cell_size=mi.Point2f(float(cell), float(cell)), samples_per_tx=int(samples_per_tx),
                    max_depth=int(s.max_depth), refraction=bool(s.refraction), seed=int(s.seed))
        rss = np.array(rm.rss, dtype=np.float64)  # [num_tx, ny, nx] [W]
        out[f"{key}_dbm"] = _to_dbm(rss.reshape(rss.shape[0], rss.shape[-2], rss.shape[-1]).sum(axis=0))
        if "x" not in out:
            cc = np.array(rm.cell_centers, dtype=np.float64)  # [ny, nx, 3]
            out["x"], out["y"] = cc[0, :, 0], cc[:, 0, 1]
    rs.park_plate()
    if "winner_dbm" in out:
        out["gain_db"] = out["winner_dbm"] - out["baseline_dbm"]
    out["height_m"] = np.float64(height)
    out["cell_m"] = np.float64(cell)
    out["samples_per_tx"] = np.int64(samples_per_tx)
    return out


# --- the report ------------------------------------------------------------------------------------------
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


def _plan(exp, targets, sections, footprints, height):
    from optimizer.plots import FloorPlan

    b = exp.reflector.bounds
    return FloorPlan(sections=np.asarray(sections, float).reshape(-1, 2, 2),
                     footprints=np.asarray(footprints, float).reshape(-1, 3, 2),
                     tx_xy=np.array([t.position[:2] for t in exp.transmitters], float),
                     tx_names=[t.name for t in exp.transmitters],
                     targets_xy=(targets["xyz"][:, :2] if targets is not None else np.zeros((0, 2))),
                     bounds_min=(b.min[0], b.min[1]), bounds_max=(b.max[0], b.max[1]),
                     plate_size=tuple(exp.reflector.size_m), height_m=float(height))


def write_report(run_dir, exp=None, radio_maps: bool = True, *, summary: dict | None = None,
                 radio_scene=None, retrace: bool = False, device: str = "cpu", threads: int = 2,
                 samples_per_tx: int = RADIO_MAP_SAMPLES_PER_TX) -> list[Path]:
    """Draw the pictures and write report.html + report.md into the local run folder `run_dir`.

    summary: the run's summary (default: read summary.json; the run command passes it before writing it).
    radio_scene: an existing `RadioScene` of this experiment to trace with (default: a new one on `device`
    with `threads`); its plate is parked afterwards.
    radio_maps=False: no ray tracing (radio maps saved by an earlier report are still drawn).
    retrace=True: ray-trace the radio maps even if heatmaps/radio_maps.npz exists.
    Returns the files written. Raises ReflectoptError only when there is no summary (file missing/unreadable)."""
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    if summary is None:
        summary = _load_summary(run_dir)
    heat = run_dir / HEATMAPS_DIR
    heat.mkdir(parents=True, exist_ok=True)
    steps = _Steps()
    written: list[Path] = []

    if exp is None:
        from optimizer.config import load_experiment

        exp = steps.run("experiment", load_experiment, run_dir / EXPERIMENT_FILE)
    threshold = _num(summary.get("threshold_dbm"),
                     exp.objective.coverage_threshold_dbm if exp is not None else -90.0)
    targets = steps.run("targets", _target_table, run_dir, exp, summary)
    series = steps.run("trajectories.csv", _trajectory_series, run_dir) if (run_dir / TRAJECTORIES_FILE).is_file() \
        else None
    if series is None and not (run_dir / TRAJECTORIES_FILE).is_file():
        log.warning("report: %s missing in %s; trajectories and convergence skipped", TRAJECTORIES_FILE, run_dir)
        steps.failed.append(f"{TRAJECTORIES_FILE}: missing")
    pose = _winner_pose(summary)
    status = _world_status(summary)
    winner_world = (summary.get("winner") or {}).get("world")
    height = float(np.median(targets["xyz"][:, 2])) if targets is not None and len(targets["xyz"]) else 1.5

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
            from optimizer.scene import RadioScene

            rs = radio_scene if radio_scene is not None else RadioScene(exp, device=device, threads=threads)
            sections, footprints = scene_geometry(rs, height)
            out = {"sections": sections, "footprints": footprints}
            if need_maps:
                bbox = rs.scene.mi_scene.bbox()
                area = map_area(exp, targets["xyz"] if targets is not None else None,
                                (np.array(bbox.min), np.array(bbox.max)))
                out.update(compute_radio_maps(rs, exp, pose, area, height, samples_per_tx))
            return out

        t0 = time.perf_counter()
        traced = steps.run("radio maps (ray tracing)" if need_maps else "scene geometry", _trace)
        rm_time = time.perf_counter() - t0
        if traced is not None:
            maps = {**(maps or {}), **traced}
            if "baseline_dbm" in maps:
                steps.run(RADIO_MAPS_FILE, np.savez_compressed, npz_path, **maps)
                written.append(npz_path)
    maps = maps or {}

    if exp is not None:
        plan = _plan(exp, targets, maps.get("sections", np.zeros((0, 2, 2))),
                     maps.get("footprints", np.zeros((0, 3, 2))), height)
    else:
        plan = None
    t_draw = time.perf_counter()
    from optimizer import plots

    def _p(name):
        return heat / name

    # --- radio-map pictures ------------------------------------------------------------------------------
    if "baseline_dbm" in maps and plan is not None:
        x, y = maps["x"], maps["y"]
        lo, hi = plots.dbm_range(maps["baseline_dbm"], maps.get("winner_dbm", maps["baseline_dbm"]),
                                 threshold=threshold)
        cov_b = targets["covered_baseline"] if targets is not None else None
        cov_w = targets["covered_winner"] if targets is not None else None
        name = summary.get("name", "")
        written.append(steps.run(PNG_RADIO_MAP_BASELINE, plots.radio_map, _p(PNG_RADIO_MAP_BASELINE), x, y,
                                 maps["baseline_dbm"], plan, title=f"{name}: without plate (baseline), "
                                 f"z = {height:.1f} m", vmin=lo, vmax=hi, threshold=threshold, covered=cov_b))
        if "winner_dbm" in maps:
            written.append(steps.run(PNG_RADIO_MAP_WINNER, plots.radio_map, _p(PNG_RADIO_MAP_WINNER), x, y,
                                     maps["winner_dbm"], plan, title=f"{name}: with plate at winner pose, "
                                     f"z = {height:.1f} m", vmin=lo, vmax=hi, threshold=threshold,
                                     covered=cov_w, pose=pose))
            dark = (maps["baseline_dbm"] <= RSS_FLOOR_DBM) & (maps["winner_dbm"] <= RSS_FLOOR_DBM)
            written.append(steps.run(PNG_RADIO_MAP_GAIN, plots.gain_map, _p(PNG_RADIO_MAP_GAIN), x, y,
                                     maps["gain_db"], plan, title=f"{name}: gain of the plate (winner − baseline)",
                                     both_dark=dark, covered=cov_w, pose=pose))

    # --- trajectories and convergence ---------------------------------------------------------------------
    if series:
        if plan is not None:
            area = (float(maps["x"][0]), float(maps["x"][-1]), float(maps["y"][0]), float(maps["y"][-1])) \
                if "x" in maps else map_area(exp, targets["xyz"] if targets is not None else None)
            paths = {w: np.stack([d["x"], d["y"]], axis=1) for w, d in series.items()}
            written.append(steps.run(PNG_TRAJECTORIES, plots.trajectories, _p(PNG_TRAJECTORIES), plan, paths,
                                     status, winner_world, extent=area, winner_pose=pose))
        use_sur = any(np.isfinite(d["surrogate"]).any() for d in series.values())
        conv = {w: {"step": d["step"], "min_rss": d["min_rss"], "best_min_rss": d["best_min_rss"],
                    "objective": d["surrogate"] if use_sur else d["objective"]} for w, d in series.items()}
        label = ("surrogate objective (soft-min, plate path) [dBm]" if use_sur
                 else "objective: soft-min of truth RSS [dBm]")
        written.append(steps.run(PNG_CONVERGENCE, plots.convergence, _p(PNG_CONVERGENCE), conv, status,
                                 winner_world, (summary.get("pruning") or {}).get("rungs") or [], threshold,
                                 objective_label=label))

    # --- distribution -------------------------------------------------------------------------------------
    if targets is not None and targets["baseline"] is not None:
        written.append(steps.run(PNG_RSS_CDF, plots.rss_cdf, _p(PNG_RSS_CDF), targets["baseline"],
                                 targets["winner"], threshold))
    draw_time = time.perf_counter() - t_draw

    timing = {"radio_maps_s": rm_time, "pictures_s": draw_time, "total_s": time.perf_counter() - t_start,
              "cells": (len(maps["x"]), len(maps["y"])) if "x" in maps else None,
              "samples_per_tx": int(maps["samples_per_tx"]) if "samples_per_tx" in maps else None}
    pictures = [heat / n for n in PICTURES if (heat / n).is_file()]
    md = steps.run(REPORT_MD, _write_md, run_dir / REPORT_MD, summary, exp, pictures, timing, steps.failed)
    timing["total_s"] = time.perf_counter() - t_start
    page = steps.run(REPORT_HTML, _write_html, run_dir / REPORT_HTML, summary, exp, pictures, timing, steps.failed)
    written += [md, page]
    return [p for p in dict.fromkeys(written) if p is not None]


# --- report text -----------------------------------------------------------------------------------------
def _facts(summary: dict, exp) -> list[tuple[str, str]]:
    counts = summary.get("counts") or {}
    f = float(summary.get("frequency_hz") or (exp.frequency_hz if exp is not None else float("nan")))
    rows = [("experiment", str(summary.get("name", "-"))), ("run id", str(summary.get("run_id", "-"))),
            ("scene", str(summary.get("scene", "-"))), ("frequency", f"{f / 1e9:.3f} GHz"),
            ("coverage threshold", f"{fmt_dbm(summary.get('threshold_dbm'))} dBm")]
    if exp is not None:
        rows += [("transmitters", ", ".join(f"{t.name} ({t.power_dbm:g} dBm)" for t in exp.transmitters)),
                 ("targets", str(len(exp.target_points()))),
                 ("plate", f"{exp.reflector.size_m[0]:g} m × {exp.reflector.size_m[1]:g} m {exp.reflector.material}"),
                 ("search", (f"{exp.search.gradient}, {exp.search.worlds} worlds × {exp.search.steps} steps, "
                            f"starts {exp.search.starts}"))]
    rows += [("worlds run / completed / pruned / failed",
              (f"{counts.get('worlds', '-')} / {counts.get('completed', '-')} / {counts.get('pruned', '-')} / "
              f"{counts.get('failed', '-')}")),
             ("truth evaluations", str(summary.get("evaluations", "-"))),
             ("wall time", fmt_s(summary.get("wall_time_s"))),
             ("device", str(summary.get("device", "-"))),
             ("started / finished (UTC)", f"{summary.get('created_utc', '-')} / {summary.get('finished_utc', '-')}"),
             ("experiment sha256", str(summary.get("experiment_sha256", "-")))]
    return rows


def _metric_rows(summary: dict) -> list[tuple[str, str, str, str]]:
    b = summary.get("baseline") or {}
    w = summary.get("winner") or {}
    g = summary.get("gain_db") or {}
    rows = []
    for key, gkey, label in (("min_rss_dbm", "min", "min RSS [dBm]"), ("p5_rss_dbm", "p5", "P5 RSS [dBm]"),
                             ("mean_rss_dbm", "mean", "mean RSS [dBm]")):
        rows.append((label, fmt_dbm(b.get(key)), fmt_dbm(w.get(key)), fmt_db(g.get(gkey)) + " dB"))
    cb, cw = b.get("coverage"), w.get("coverage")
    dc = (f"{100.0 * (float(cw) - float(cb)):+.1f} points" if cb is not None and cw is not None else "-")
    rows.append(("coverage", fmt_pct(cb), fmt_pct(cw), dc))
    return rows


def _world_rows(summary: dict) -> list[list[str]]:
    win = (summary.get("winner") or {}).get("world")
    rows = []
    for w in summary.get("worlds") or []:
        if not isinstance(w, dict):
            continue
        rows.append([str(w.get("world", "-")) + (" ★" if w.get("world") == win else ""), str(w.get("start_kind", "-")),
                     str(w.get("status", "-")), str(w.get("steps", "-")), str(w.get("evaluations", "-")),
                     fmt_dbm(w.get("min_rss_dbm")), fmt_pct(w.get("coverage")), fmt_pose(w.get("best_pose"))])
    return rows


_WORLD_HEAD = ["world", "start", "status", "steps", "evaluations", "min RSS [dBm]", "coverage", "best pose"]


def _timing_line(timing: dict, summary: dict) -> str:
    parts = []
    if timing.get("radio_maps_s") is not None:
        cells = timing.get("cells")
        parts.append(f"scene + radio maps {timing['radio_maps_s']:.1f} s"
                     + (f" ({cells[0]} × {cells[1]} cells, {timing['samples_per_tx']:,} rays per transmitter)"
                        if cells and timing.get("samples_per_tx") else ""))
    parts.append(f"pictures {timing['pictures_s']:.1f} s")
    line = "Rendering: " + ", ".join(parts) + f"; report total {timing['total_s']:.1f} s"
    wall = summary.get("wall_time_s")
    if wall:
        line += f" ({100.0 * timing['total_s'] / float(wall):.0f} % of the run's wall time)"
    return line + "."


def _winner_line(summary: dict) -> str:
    w = summary.get("winner") or {}
    extra = []
    if "world" in w:
        extra.append(f"world {w['world']}")
    if "search_min_rss_dbm" in w:
        extra.append(f"min RSS during search {fmt_dbm(w['search_min_rss_dbm'])} dBm")
    if "samples_per_src" in w:
        extra.append(f"re-evaluated with {int(w['samples_per_src']):,} samples per source")
    return fmt_pose(w.get("pose")) + (f" ({'; '.join(extra)})" if extra else "")


def _write_md(path: Path, summary: dict, exp, pictures: list[Path], timing: dict, problems: list[str]) -> Path:
    L = [f"# reflectopt report: {summary.get('name', '-')} ({summary.get('run_id', '-')})", "",
         f"**Winner pose:** {_winner_line(summary)}", "",
         "| metric | baseline (no plate) | winner (with plate) | gain |", "|---|---:|---:|---:|"]
    L += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in _metric_rows(summary)]
    L += ["", "RSS values are floored at -200 dBm (a target no path reaches).", "", "## Run", "",
          "| | |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in _facts(summary, exp)]
    L += ["", "## Worlds", "", "| " + " | ".join(_WORLD_HEAD) + " |", "|" + "---|" * len(_WORLD_HEAD)]
    L += ["| " + " | ".join(r) + " |" for r in _world_rows(summary)]
    fails = summary.get("failures") or []
    if fails:
        L += ["", "## Failures", ""] + [f"- {json.dumps(f) if not isinstance(f, str) else f}" for f in fails]
    L += ["", "## Pictures", ""]
    for p in pictures:
        L += [f"### {_CAPTIONS.get(p.name, p.name)}", "", f"![{_CAPTIONS.get(p.name, p.name)}]({HEATMAPS_DIR}/{p.name})",
              ""]
    if problems:
        L += ["## Not drawn", ""] + [f"- {p}" for p in problems] + [""]
    L += ["## Versions", "", "| package | version |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in (summary.get("versions") or {}).items()]
    L += ["", _timing_line(timing, summary), ""]
    path.write_text("\n".join(L))
    return path


_CSS = ("body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:24px auto;"
        "padding:0 16px;color:#212121}table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ddd;"
        "padding:4px 10px;font-size:14px}th{background:#f5f5f5;text-align:left}td.n{text-align:right;"
        "font-variant-numeric:tabular-nums}figure{margin:16px 0}figure img{max-width:100%;border:1px solid #eee}"
        "figcaption{font-size:13px;color:#555}.win{font-size:17px;margin:12px 0}.warn{color:#b71c1c}"
        "small{color:#666}")


def _table(head, rows, numeric_from=1) -> str:
    e = html.escape
    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>")
    for r in rows:
        out.append("<tr>" + "".join(f"<td class='n'>{e(c)}</td>" if i >= numeric_from else f"<td>{e(c)}</td>"
                                    for i, c in enumerate(r)) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _write_html(path: Path, summary: dict, exp, pictures: list[Path], timing: dict, problems: list[str]) -> Path:
    e = html.escape
    title = f"reflectopt report: {summary.get('name', '-')} ({summary.get('run_id', '-')})"
    body = [f"<h1>{e(title)}</h1>",
            f"<p class='win'><b>Winner pose:</b> {e(_winner_line(summary))}</p>",
            _table(["metric", "baseline (no plate)", "winner (with plate)", "gain"], _metric_rows(summary)),
            "<p><small>RSS values are floored at -200 dBm (a target no path reaches).</small></p>",
            "<h2>Run</h2>", _table(None, _facts(summary, exp), numeric_from=99),
            "<h2>Worlds</h2>", _table(_WORLD_HEAD, _world_rows(summary), numeric_from=3)]
    fails = summary.get("failures") or []
    if fails:
        body += ["<h2>Failures</h2><ul>"] + [f"<li>{e(f if isinstance(f, str) else json.dumps(f))}</li>"
                                              for f in fails] + ["</ul>"]
    body.append("<h2>Pictures</h2>")
    for p in pictures:
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        cap = _CAPTIONS.get(p.name, p.name)
        body.append(f"<figure><img alt='{e(cap)}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{e(cap)} ({e(HEATMAPS_DIR + '/' + p.name)})</figcaption></figure>")
    if problems:
        body += ["<h2>Not drawn</h2><ul class='warn'>"] + [f"<li>{e(p)}</li>" for p in problems] + ["</ul>"]
    body += ["<h2>Versions</h2>", _table(["package", "version"],
                                         [(k, str(v)) for k, v in (summary.get("versions") or {}).items()],
                                         numeric_from=99),
             f"<p><small>{e(_timing_line(timing, summary))}</small></p>"]
    doc = ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
           f"<title>{e(title)}</title><style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    path.write_text(doc, encoding="utf-8")
    return path


# --- CLI ----------------------------------------------------------------------------------------------------
def _cmd_report(args) -> int:
    from optimizer import storage

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


def register_commands(subparsers) -> None:
    p = subparsers.add_parser("report", help="draw radio maps, trajectories, convergence and report.html/.md "
                                             "for a run (local folder or s3://)")
    p.add_argument("results", metavar="RESULTS", help="a run folder (results/NAME/RUN-ID) or an s3:// run URI")
    p.add_argument("--no-radio-maps", action="store_true",
                   help="do not ray-trace radio maps (maps saved by an earlier report are still drawn)")
    p.add_argument("--retrace", action="store_true",
                   help=f"ray-trace the radio maps again even if {HEATMAPS_DIR}/{RADIO_MAPS_FILE} exists")
    p.set_defaults(handler=_cmd_report)
