"""`reflectopt run | resume | evaluate | grid | calibrate`: the experiment-level commands."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, UTC
from pathlib import Path

import numpy as np

from optimizer import storage
from optimizer.config import Experiment, load_experiment_text
from optimizer.constants import (EXIT_INTERRUPTED, EXPERIMENT_FILE, SUMMARY_FILE, TARGETS_FILE, TRAJECTORIES_FILE,
                                 WINNER_SCENE_DIR)
from optimizer.errors import ConfigError, ReflectoptError
from optimizer.geometry import Pose, PoseSpace
from optimizer.metrics import floor_rss, rank_key, rss_metrics

RUN_FILE = "run.json"  # run metadata written first (what `resume` needs)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _say(msg: str):
    sys.stderr.write(f"[reflectopt] {msg}\n")
    sys.stderr.flush()


def parse_pose(text: str, exp: Experiment) -> Pose:
    try:
        vals = [float(v) for v in text.split(",")]
        pose = Pose.from_seq(vals)
    except ValueError:
        raise ConfigError(f"--pose: {text!r} is not x,y,z,yaw_deg[,pitch_deg] in metres and degrees, "
                          "e.g. --pose 24,8,5,140") from None
    space = PoseSpace(exp.reflector)
    if not space.contains(pose.as_array()):
        _say(f"note: pose {pose} is outside reflector.bounds / yaw range; evaluated as given")
    return pose


def _load(args) -> tuple[Experiment, str, str]:
    """The experiment (local scene paths made absolute), its text as submitted and its hash as submitted."""
    src = args.experiment
    text = storage.read_text(src) if storage.is_remote(src) else (
        Path(src).read_text() if Path(src).is_file() else None)
    if text is None:
        raise ConfigError(f"{src}: no such file; give the path of an experiment YAML (see examples/)")
    exp = load_experiment_text(text, src)
    sha = exp.sha256()
    exp.scene = resolve_local_scene(exp.scene, None if storage.is_remote(src) else Path(src).parent)
    return exp, text, sha


def resolve_local_scene(scene: str, exp_dir: Path | None) -> str:
    """A relative scene folder/archive becomes absolute (workers run elsewhere): relative to the current
    folder, else to the experiment file's folder."""
    if scene.startswith(("builtin:", "s3://")) or Path(scene).is_absolute():
        return scene
    for base in (Path.cwd(), exp_dir):
        if base is not None and (base / scene).exists():
            return str((base / scene).resolve())
    return scene


def _driver_scene(exp: Experiment, threads: int | None = None):
    from optimizer.scene import RadioScene

    return RadioScene(exp, device="cpu", threads=threads or os.cpu_count())


# --- run / resume -----------------------------------------------------------------------------------
def _cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))


def _prepare(exp: Experiment):
    """Driver-side set-up shared by run and resume: scene check, baseline, starting poses."""
    from optimizer.starts import initial_poses
    from optimizer.world import focus_mask

    t0 = time.perf_counter()
    rs = _driver_scene(exp)
    baseline = floor_rss(rs.rss_dbm(None))
    focus = focus_mask(baseline, exp.objective.coverage_threshold_dbm, exp.objective.focus_margin_db)
    starts = initial_poses(exp, rs, exp.search.worlds, focus)
    _say(f"scene ready: {len(rs.targets)} targets, baseline min RSS {baseline.min():.1f} dBm, "
         f"{int(np.sum(baseline >= exp.objective.coverage_threshold_dbm))}/{len(baseline)} covered "
         f"({time.perf_counter() - t0:.1f} s)")
    return rs, baseline, starts


def _start_ray(exp: Experiment, address: str | None):
    from optimizer.search import init_ray

    info = init_ray(address)
    gpus = _cluster_gpus()
    if exp.resources.gpu_per_world > 0 and gpus == 0:
        _say(f"no GPU in the Ray cluster: running worlds on CPUs (resources.gpu_per_world "
             f"{exp.resources.gpu_per_world} ignored)")
        exp.resources.gpu_per_world = 0.0
    if "dashboard" in info:
        _say(f"Ray dashboard: {info['dashboard']}")
    return info


def cmd_run(args) -> int:
    exp, text, sha = _load(args)
    if args.output:
        exp.output = args.output
    if args.device:
        exp.device = args.device
    if args.worlds:
        exp.search.worlds = args.worlds
    run_id = storage.new_run_id()
    run_uri = storage.run_uri(exp.output, exp.name, run_id)
    remote = storage.is_remote(run_uri)
    local_dir = Path(tempfile.mkdtemp(prefix="reflectopt-run-")) if remote else Path(run_uri)
    local_dir.mkdir(parents=True, exist_ok=True)
    (local_dir / EXPERIMENT_FILE).write_text(text)
    meta = {"name": exp.name, "run_id": run_id, "run_uri": run_uri, "status": "running", "created_utc": _now(),
            "experiment_sha256": sha, "overrides": {"output": exp.output, "device": exp.device,
                                                             "worlds": exp.search.worlds, "scene": exp.scene}}
    _write_meta(local_dir, run_uri, meta)
    _say(f"run {exp.name}/{run_id} -> {run_uri}")
    return _execute(exp, meta, local_dir, run_uri, args, resume=False)


def _write_meta(local_dir: Path, run_uri: str, meta: dict):
    (local_dir / RUN_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    if storage.is_remote(run_uri):
        storage.upload_file(local_dir / EXPERIMENT_FILE, storage.join(run_uri, EXPERIMENT_FILE))
        storage.upload_file(local_dir / RUN_FILE, storage.join(run_uri, RUN_FILE))


def cmd_resume(args) -> int:
    run_uri = args.results.rstrip("/")
    remote = storage.is_remote(run_uri)
    if storage.exists(storage.join(run_uri, SUMMARY_FILE)):
        raise ReflectoptError(f"RESULTS: {run_uri} is already complete (summary.json present); nothing to resume")
    if not storage.exists(storage.join(run_uri, RUN_FILE)):
        raise ConfigError(f"RESULTS: {run_uri} has no {RUN_FILE}; give the run folder printed by `reflectopt run`")
    meta = json.loads(storage.read_text(storage.join(run_uri, RUN_FILE)))
    text = storage.read_text(storage.join(run_uri, EXPERIMENT_FILE))
    exp = load_experiment_text(text, storage.join(run_uri, EXPERIMENT_FILE))
    ov = meta.get("overrides", {})
    exp.output, exp.device, exp.search.worlds = ov.get("output", exp.output), ov.get("device", exp.device), \
        ov.get("worlds", exp.search.worlds)
    exp.scene = ov.get("scene", exp.scene)
    local_dir = Path(tempfile.mkdtemp(prefix="reflectopt-run-")) if remote else Path(run_uri)
    (local_dir / EXPERIMENT_FILE).write_text(text)
    meta["status"] = "running"
    meta["resumed_utc"] = _now()
    _write_meta(local_dir, run_uri, meta)
    _say(f"resuming {exp.name}/{meta['run_id']} from {run_uri}")
    return _execute(exp, meta, local_dir, run_uri, args, resume=True)


def _execute(exp: Experiment, meta: dict, local_dir: Path, run_uri: str, args, resume: bool) -> int:
    from optimizer.search import run_worlds

    t_start = time.perf_counter()
    rs, baseline, starts = _prepare(exp)
    _start_ray(exp, getattr(args, "address", None))
    tune_path, tune_fs = storage.tune_storage(storage.join(run_uri, "checkpoints"))
    _say(f"{len(starts)} worlds ({exp.search.gradient} gradient, {exp.resources.cpu_per_world:g} CPU / "
         f"{exp.resources.gpu_per_world:g} GPU each), {exp.search.steps} steps, pruning "
         f"{'off' if exp.search.prune == 'off' else 'successive halving'}")
    outcomes = run_worlds(exp, exp.model_dump(mode="json"), starts, baseline, tune_path, tune_fs, resume=resume,
                          progress=not getattr(args, "no_progress", False), pruned_before=meta.get("pruned", []))
    meta["pruned"] = sorted(o["world"] for o in outcomes if o["status"] == "pruned")
    unfinished = [o for o in outcomes if o["status"] == "interrupted"]
    if unfinished:
        meta["status"] = "interrupted"
        _write_meta(local_dir, run_uri, meta)
        _say(f"interrupted: {len(unfinished)} worlds unfinished; checkpoints kept. Continue with:\n"
             f"    reflectopt resume {run_uri}")
        return EXIT_INTERRUPTED
    return _finish(exp, meta, rs, baseline, starts, outcomes, local_dir, run_uri, t_start)


def _finish(exp, meta, rs, baseline, starts, outcomes, local_dir: Path, run_uri: str, t_start: float) -> int:
    from optimizer import backend
    from optimizer.outputs import write_json, write_targets, write_trajectories

    thr = exp.objective.coverage_threshold_dbm
    candidates = [o for o in outcomes if o["state"] and o["state"].get("best")]
    if not candidates:
        raise ReflectoptError("every world failed; see the errors above (summary.json not written)")
    best = max(candidates, key=lambda o: rank_key(o["state"]["best"]["metrics"]))
    win_pose = Pose(**best["state"]["best"]["pose"])
    final_samples = exp.final_samples()
    _say(f"winner: world {best['world']} at {win_pose}; re-evaluating with {final_samples} samples")
    base_final = floor_rss(rs.rss_dbm(None, samples_per_src=final_samples))
    win_final = floor_rss(rs.rss_dbm(win_pose, samples_per_src=final_samples))
    base_m, win_m = rss_metrics(base_final, thr), rss_metrics(win_final, thr)
    # truth evaluations in the driver: the baseline, then baseline and winner at the final sample count
    worlds, rows, failures, evaluations = [], [], [], 3
    space = PoseSpace(exp.reflector)
    for o in outcomes:
        st = o["state"] or {}
        init = o["config"].get("initial_pose") or st.get("initial_pose")
        hist = st.get("history", [])
        rows += hist
        evaluations += int(st.get("evaluations", 0))
        final_pose = space.to_pose(space.from_unit(st["unit"])).to_dict() if st.get("unit") else None
        bm = (st.get("best") or {}).get("metrics", {})
        worlds.append({"world": o["world"], "start_kind": o["config"].get("start_kind"), "initial_pose": init,
                       "final_pose": final_pose, "best_pose": (st.get("best") or {}).get("pose"),
                       "min_rss_dbm": bm.get("min_rss_dbm"), "coverage": bm.get("coverage"),
                       "mean_rss_dbm": bm.get("mean_rss_dbm"), "status": o["status"], "steps": o["steps"],
                       "restarts": o["restarts"], "evaluations": int(st.get("evaluations", 0))})
        if o["status"] == "failed" or o["restarts"]:
            failures.append({"world": o["world"], "restarts": o["restarts"], "status": o["status"],
                             "error": o["error"] or "process died; resumed from its last checkpoint"})
    counts = {"worlds": len(outcomes)}
    for k in ("completed", "pruned", "failed"):
        counts[k] = sum(1 for o in outcomes if o["status"] == k)
    from optimizer.search import rungs

    prune = exp.search.prune
    summary = {
        "name": exp.name, "run_id": meta["run_id"], "experiment_sha256": meta["experiment_sha256"],
        "created_utc": meta["created_utc"], "finished_utc": _now(),
        "wall_time_s": round(time.perf_counter() - t_start, 3), "scene": exp.scene, "frequency_hz": exp.frequency_hz,
        "device": backend.resolve_device(exp.device) if exp.resources.gpu_per_world > 0 else "cpu",
        "output": run_uri, "threshold_dbm": thr, "targets_count": int(len(rs.targets)),
        "baseline": base_m,
        "winner": {**win_m, "pose": win_pose.to_dict(), "world": best["world"], "samples_per_src": final_samples,
                   "search_min_rss_dbm": best["state"]["best"]["metrics"]["min_rss_dbm"]},
        "gain_db": {"min": win_m["min_rss_dbm"] - base_m["min_rss_dbm"],
                    "p5": win_m["p5_rss_dbm"] - base_m["p5_rss_dbm"],
                    "mean": win_m["mean_rss_dbm"] - base_m["mean_rss_dbm"]},
        "worlds": worlds, "failures": failures, "counts": counts, "evaluations": evaluations,
        "pruning": {"enabled": prune != "off" and bool(rungs(exp.search.steps, prune.grace_steps,
                                                               prune.reduction_factor)),
                    "reduction_factor": None if prune == "off" else prune.reduction_factor,
                    "grace_steps": None if prune == "off" else prune.grace_steps,
                    "rungs": [] if prune == "off" else rungs(exp.search.steps, prune.grace_steps,
                                                             prune.reduction_factor)},
        "world_steps": int(sum(w["steps"] for w in worlds)),
        "peak_host_mb_per_world": max((float(o["peak_host_mb"]) for o in outcomes if o.get("peak_host_mb")),
                                      default=None),
        "search": exp.search.model_dump(mode="json"), "resources": exp.resources.model_dump(mode="json"),
        "versions": backend.versions(),
    }
    write_targets(local_dir / TARGETS_FILE, rs.targets, base_final, win_final, thr)
    write_trajectories(local_dir / TRAJECTORIES_FILE, sorted(rows, key=lambda r: (r["world"], r["step"])))
    try:
        rs.export_with_plate(win_pose, local_dir / WINNER_SCENE_DIR)
    except ReflectoptError as err:
        _say(f"warning: {err}")
    # Pictures and the report: a failure to draw never loses the numbers.
    staged_summary = local_dir / (SUMMARY_FILE + ".pending")
    write_json(staged_summary, summary)
    t_rep = time.perf_counter()
    try:
        from optimizer import report

        report.write_report(local_dir, exp, summary=summary, radio_scene=rs, threads=os.cpu_count() or 1)
    except Exception as err:  # noqa: BLE001
        _say(f"warning: report not drawn ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})")
    summary["report_time_s"] = round(time.perf_counter() - t_rep, 3)
    summary["wall_time_s"] = round(time.perf_counter() - t_start, 3)
    staged_summary.unlink(missing_ok=True)
    meta["status"] = "complete"
    (local_dir / RUN_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    if storage.is_remote(run_uri):
        write_json(local_dir / SUMMARY_FILE, summary)
        storage.publish_run(local_dir, run_uri)
        shutil.rmtree(local_dir, ignore_errors=True)
    else:
        write_json(local_dir / SUMMARY_FILE, summary)  # last: its presence marks a complete run
    _print_final(summary, run_uri)
    return 0


def _print_final(s: dict, run_uri: str):
    b, w = s["baseline"], s["winner"]
    p = w["pose"]
    out = sys.stdout
    out.write(f"\n{s['name']} / {s['run_id']}: {s['counts']['worlds']} worlds "
              f"({s['counts']['completed']} completed, {s['counts']['pruned']} pruned, {s['counts']['failed']} failed), "
              f"{s['evaluations']} truth evaluations, {s['wall_time_s']:.0f} s\n")
    out.write(f"{'':<12}{'min [dBm]':>11}{'P5 [dBm]':>11}{'mean [dBm]':>12}{'coverage':>10}\n")
    for label, m in (("baseline", b), ("winner", w)):
        out.write(f"{label:<12}{m['min_rss_dbm']:>11.1f}{m['p5_rss_dbm']:>11.1f}{m['mean_rss_dbm']:>12.1f}"
                  f"{m['coverage']:>10.0%}\n")
    out.write(f"winner pose: x={p['x']:.2f} m, y={p['y']:.2f} m, z={p['z']:.2f} m, yaw={p['yaw_deg']:.1f} deg, "
              f"pitch={p['pitch_deg']:.1f} deg (world {w['world']})\n")
    out.write(f"results: {run_uri}\n")
    out.flush()


# --- evaluate / grid / calibrate --------------------------------------------------------------------
def cmd_evaluate(args) -> int:
    exp, _, _ = _load(args)
    pose = parse_pose(args.pose, exp)
    rs = _driver_scene(exp)
    thr = exp.objective.coverage_threshold_dbm
    samples = args.samples or exp.solver.samples_per_src
    base = floor_rss(rs.rss_dbm(None, samples_per_src=samples))
    rss = floor_rss(rs.rss_dbm(pose, samples_per_src=samples))
    bm, pm = rss_metrics(base, thr), rss_metrics(rss, thr)
    if args.json:
        json.dump({"pose": pose.to_dict(), "samples_per_src": samples, "baseline": bm, "with_plate": pm,
                   "targets": [{"x": t[0], "y": t[1], "z": t[2], "baseline_rss_dbm": float(b),
                                "rss_dbm": float(r)} for t, b, r in zip(rs.targets.tolist(), base, rss)]},
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"pose {pose}; truth from Sionna PathSolver ({samples} samples, depth {exp.solver.max_depth})")
    print(f"{'':<12}{'min [dBm]':>11}{'P5 [dBm]':>11}{'mean [dBm]':>12}{'coverage':>10}")
    for label, m in (("no plate", bm), ("with plate", pm)):
        print(f"{label:<12}{m['min_rss_dbm']:>11.1f}{m['p5_rss_dbm']:>11.1f}{m['mean_rss_dbm']:>12.1f}"
              f"{m['coverage']:>10.0%}")
    if args.targets:
        print(f"\n{'target':>6} {'x':>8} {'y':>8} {'z':>6} {'no plate':>9} {'plate':>9}")
        for i, (t, b, r) in enumerate(zip(rs.targets, base, rss)):
            print(f"{i:>6} {t[0]:>8.2f} {t[1]:>8.2f} {t[2]:>6.2f} {b:>9.1f} {r:>9.1f}")
    return 0


def cmd_grid(args) -> int:
    from optimizer.baselines import grid_search

    exp, _, _ = _load(args)
    if args.spacing <= 0 or args.yaw_step <= 0:
        raise ConfigError("--spacing and --yaw-step must be positive (metres, degrees)")
    rs = _driver_scene(exp)
    res = grid_search(exp, rs, args.spacing, args.yaw_step, refine=args.refine, max_evals=args.max_evals)
    m, p = res["metrics"], res["pose"]
    out = {"pose": p.to_dict(), **m, "evaluations": res["evaluations"], "wall_s": round(res["wall_s"], 2),
           "spacing_m": args.spacing, "yaw_step_deg": args.yaw_step, "refine": args.refine}
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"grid optimum over {res['evaluations']} truth evaluations ({res['wall_s']:.0f} s): {p}")
        print(f"min {m['min_rss_dbm']:.1f} dBm, P5 {m['p5_rss_dbm']:.1f} dBm, mean {m['mean_rss_dbm']:.1f} dBm, "
              f"coverage {m['coverage']:.0%}")
    return 0


def _peak_host_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _gpu_memory_mb() -> tuple[float | None, float | None]:
    """(this process's GPU memory, the card's total) [MB] from nvidia-smi, or (None, None)."""
    import subprocess

    try:
        used = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=10).stdout
        total = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                               capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    mine = [float(line.split(",")[1]) for line in used.splitlines() if line.split(",")[0].strip() == str(os.getpid())]
    return (sum(mine) if mine else None), (float(total.splitlines()[0]) if total.strip() else None)


def calibrate(exp: Experiment, steps: int = 5, device: str | None = None) -> dict:
    from optimizer import backend
    from optimizer.starts import initial_poses
    from optimizer.world import World

    dev = backend.resolve_device(device or exp.device)
    threads = max(1, int(round(exp.resources.cpu_per_world)))
    from optimizer.scene import RadioScene

    rs = RadioScene(exp, device=dev, threads=threads)
    pose = initial_poses(exp, None, 1)[0][0]
    world = World(exp, 0, pose, radio_scene=rs)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        world.step()
        times.append(time.perf_counter() - t)
    host = _peak_host_mb()
    gpu, gpu_total = _gpu_memory_mb() if dev == "cuda" else (None, None)
    per_gpu = None
    if gpu and gpu_total:
        per_gpu = int(max(1, min(16, (0.9 * gpu_total) // max(gpu, 1.0))))
    cpus = os.cpu_count() or 1
    per_cpu_worker = max(1, int(cpus // max(exp.resources.cpu_per_world, 1e-9)))
    return {"device": dev, "steps": steps, "step_s_median": statistics.median(times[1:] or times),
            "first_step_s": times[0], "peak_host_mb": host, "peak_gpu_mb": gpu, "gpu_total_mb": gpu_total,
            "worlds_per_gpu": per_gpu if per_gpu else 4, "worlds_per_gpu_measured": per_gpu is not None,
            "cpu_per_world": exp.resources.cpu_per_world, "worlds_per_cpu_worker": per_cpu_worker, "cpus": cpus}


def cmd_calibrate(args) -> int:
    exp, _, _ = _load(args)
    c = calibrate(exp, args.steps, args.device)
    gpu = f"{c['peak_gpu_mb']:.0f} MB of {c['gpu_total_mb']:.0f} MB" if c["peak_gpu_mb"] else "n/a (no GPU used)"
    sys.stdout.write(
        f"# reflectopt calibrate: {exp.name} on {c['device']}, {c['steps']} steps\n"
        f"#   step time (median): {c['step_s_median']:.3f} s (first step {c['first_step_s']:.2f} s, compiles kernels)\n"
        f"#   peak host memory per world: {c['peak_host_mb']:.0f} MB; GPU memory per world: {gpu}\n"
        f"#   worlds per CPU worker of {c['cpus']} cores at {c['cpu_per_world']:g} CPU each: "
        f"{c['worlds_per_cpu_worker']}\n"
        + ("" if c["worlds_per_gpu_measured"] else
           "#   worlds per GPU not measured on this machine (no GPU): default 4 kept\n")
        + "# Helm values (helm/reflectopt): \n"
        f"worlds:\n  perGpu: {c['worlds_per_gpu']}\n  cpuPerWorld: {c['cpu_per_world']:g}\n")
    return 0


# --- CLI ---------------------------------------------------------------------------------------------
def register_commands(sub):
    p = sub.add_parser("run", help="optimise the reflector pose (many worlds on Ray, results to a folder or S3)")
    p.add_argument("experiment", help="experiment YAML (path or s3:// URI)")
    p.add_argument("--output", help="override `output:` (folder or s3://bucket/prefix)")
    p.add_argument("--address", help="Ray cluster to attach to (default: RAY_ADDRESS, else a local Ray on 127.0.0.1)")
    p.add_argument("--worlds", type=int, help="override search.worlds")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override `device:`")
    p.add_argument("--no-progress", action="store_true", help="no live table")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("resume", help="continue an interrupted run from its checkpoints")
    p.add_argument("results", help="the run folder or s3:// URI printed by `reflectopt run`")
    p.add_argument("--address", help="Ray cluster to attach to")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=cmd_resume)

    p = sub.add_parser("evaluate", help="ray-traced truth for one plate pose (and without the plate)")
    p.add_argument("experiment")
    p.add_argument("--pose", required=True, help="x,y,z,yaw_deg[,pitch_deg] [m, deg]")
    p.add_argument("--samples", type=int, help="samples per source (default: solver.samples_per_src)")
    p.add_argument("--targets", action="store_true", help="print every target")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("grid", help="exhaustive grid search (truth at every pose): the reference optimum")
    p.add_argument("experiment")
    p.add_argument("--spacing", type=float, default=0.25, help="position step [m] (default 0.25)")
    p.add_argument("--yaw-step", type=float, default=5.0, help="yaw (and pitch) step [deg] (default 5)")
    p.add_argument("--refine", type=int, default=0, help="rounds of 4x finer local refinement around the best")
    p.add_argument("--max-evals", type=int, default=200_000)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_grid)

    p = sub.add_parser("calibrate", help="measure one world (memory, step time) and print Helm values")
    p.add_argument("experiment")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.set_defaults(handler=cmd_calibrate)
