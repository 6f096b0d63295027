"""`reflectopt evaluate | grid | calibrate`: truth at one pose, the exhaustive reference, one world measured.

A pose whose plate cuts through scene geometry is never evaluated: `evaluate` refuses it (exit 2), `grid`
skips it and counts it."""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from typing import TYPE_CHECKING

from optimizer.constants import (ANGLE_LIMIT_DEG, CALIBRATE_GROWTH_PER_DOUBLING, CALIBRATE_MAX_WORLDS_GPU,
                                 POSITION_LIMIT_M)
from optimizer.errors import ConfigError, ReflectoptError
from optimizer.experiment import load_submitted, with_overrides
from optimizer.physics.metrics import rss_stats, worst_over_band
from optimizer.records import JointPose
from optimizer.records.text import fmt_db, fmt_dbm, fmt_pct, fmt_power
from optimizer.console import say
from optimizer.search.driver import check_boxes_clear, check_targets, driver_scene
from optimizer.search.space import PoseSpace
from optimizer.search.throughput import growth_per_doubling

if TYPE_CHECKING:
    from optimizer.experiment import Experiment


GRID_ASK_ABOVE = 1000  # poses: above this, `grid` asks before it starts (on a terminal, without --yes)


def _positive(value: float, flag: str, what: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{flag}: {value} is not allowed; give a positive number of {what}")


def _at_least(value: int, flag: str, low: int, high: int | None = None) -> None:
    if value < low or (high is not None and value > high):
        span = f"{low} to {high}" if high is not None else f"{low} or more"
        raise ConfigError(f"{flag}: {value} is not allowed; give {span}")


def parse_pose(text: str, exp) -> JointPose:
    try:
        pose = JointPose.parse(text)
    except ValueError:
        raise ConfigError(f"--pose: {text!r} is not x,y,z,yaw_deg[,pitch_deg] in metres and degrees, "
                          "e.g. --pose 24,8,5,140") from None
    for plate in pose.plates:
        xyz, angles = plate.as_list()[:3], plate.as_list()[3:]
        if not all(math.isfinite(v) and abs(v) <= POSITION_LIMIT_M for v in xyz) or \
                not all(math.isfinite(v) and abs(v) <= ANGLE_LIMIT_DEG for v in angles):
            raise ConfigError(f"--pose: {text!r}: give finite numbers, metres within +-{POSITION_LIMIT_M:g} and "
                              f"degrees within +-{ANGLE_LIMIT_DEG:g}")
    space = PoseSpace.of(exp)
    if len(pose.plates) != len(space.plates):
        raise ConfigError(f"--pose: {len(pose.plates)} plate(s) given, the experiment has {len(space.plates)}; "
                          "separate plates with ';'")
    if not space.contains(space.to_vec(pose)):
        say(f"note: pose {pose} is outside reflector.bounds / yaw range; evaluated as given")
    return pose


def with_size(exp, text: str | None, flag: str):
    """The experiment at the plate sizes `text` gives (WxH per plate, ';' between plates); without it, as
    written (a catalogue's smallest sizes, said in a line)."""
    from optimizer.experiment import catalogue

    if text is None:
        if catalogue.has_catalogue(exp):
            smallest = catalogue.options(exp)[0]
            say(f"note: sizes_m: at the catalogue's smallest size {catalogue.label(smallest)}; give {flag}=WxH for "
                "another")
            return catalogue.sized(exp, smallest)
        return exp
    try:
        option = catalogue.parse_cli(text, len(exp.plates()))
    except ValueError as err:
        raise ConfigError(f"{flag}: {err}") from None
    return catalogue.sized(exp, option)


def cmd_evaluate(args) -> int:
    sub = load_submitted(args.experiment)
    exp = with_overrides(sub.exp, sub.source, {"solver.samples_per_src": args.samples},
                         {"solver.samples_per_src": "--samples"})
    exp = with_size(exp, getattr(args, "size", None), "--size")
    pose = parse_pose(args.pose, exp)
    rs = driver_scene(exp)
    check_targets(exp, rs)
    cut = rs.scene_cuts([pose])[0]
    if cut is not None:
        k, shape = cut
        r = exp.plates()[k]
        raise ConfigError(f"--pose: {args.pose!r}: plate {r.name!r} cuts through {shape!r} (it could not be mounted "
                          f"there; not evaluated); move it off {shape!r} by at least half its width "
                          f"({0.5 * r.size_m[0]:g} m) or turn it")
    thr = exp.objective.coverage_threshold_dbm
    samples = exp.solver.samples_per_src
    base_band = rs.band_rss_dbm(None, samples_per_src=samples)  # [frequencies, targets]: one row per frequency
    band_rows = rs.band_rss_dbm(pose, samples_per_src=samples)
    base, rss = worst_over_band(base_band), worst_over_band(band_rows)
    from optimizer import objectives
    from optimizer.search.conclude import protect_result

    objective = objectives.of(exp, rs, base)
    guard = protect_result(objective, rss)  # objective.protect at this pose (None without it)
    n = rs.n_targets  # the targets; objective.protect's points follow them
    full_rss = rss  # every receiver (the tolerance check judges the protected points too)
    targets, base, rss = rs.targets[:n], objective.wanted(base), objective.wanted(rss)
    base_band, band_rows = [b[:n] for b in base_band], [r[:n] for r in band_rows]
    bm, pm = rss_stats(base, thr), rss_stats(rss, thr)
    per_f = [(f, rss_stats(b, thr), rss_stats(r, thr)) for f, b, r in zip(exp.frequencies_hz(), base_band, band_rows)
             ] if len(base_band) > 1 else []
    conv = _convergence(rs, exp, pose, samples, rss, thr) if args.convergence else None
    chk = _tolerance(rs, exp, pose, samples, full_rss) if args.tolerance else None
    if args.json:
        def db(v):
            return float(v) if v > -float("inf") else None

        out = {"pose": pose.first.model_dump(), "joint_pose": pose.model_dump(), "samples_per_src": samples,
               "plate_model": exp.solver.plate_model,
               "baseline": bm.model_dump(), "with_plate": pm.model_dump(),
               "targets": [{"x": t[0], "y": t[1], "z": t[2], "baseline_rss_dbm": db(b), "rss_dbm": db(r)}
                           for t, b, r in zip(targets.tolist(), base, rss)]}
        if guard is not None:
            out["protect"] = guard.model_dump(mode="json")
        if per_f:
            out["band"] = [{"frequency_hz": f, "baseline": b.model_dump(), "with_plate": w.model_dump()}
                           for f, b, w in per_f]
        if conv is not None:
            out["convergence"] = conv
        if chk is not None:  # what text mode prints: the check, its margin and what would make it hold
            out["tolerance"] = chk.model_dump(mode="json")
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"pose {pose}; truth from Sionna PathSolver ({samples} samples, depth {exp.solver.max_depth}, "
          f"plate model {exp.solver.plate_model})")
    rows = [("no plate", bm), ("with plate", pm)]
    if per_f:  # a band: each target's worst over it, then each frequency alone
        rows = [(f"{label} (worst of the band)", m) for label, m in rows] + [
            (f"{label} at {f / 1e9:.3f} GHz", m) for f, b, w in per_f for label, m in (("no plate", b), ("with plate", w))]
    width = max(len(label) for label, _ in rows) + 2
    print(f"{'':<{width}}{'min':>14}{'P5':>14}{'mean':>14}{'coverage':>10}")
    for label, m in rows:
        print(f"{label:<{width}}{fmt_power(m.min_rss_dbm):>14}{fmt_power(m.p5_rss_dbm):>14}"
              f"{fmt_power(m.mean_rss_dbm):>14}{fmt_pct(m.coverage):>10}")
    if exp.combine() == "sinr":
        print("objective.combine: sinr: every figure above and below is dB SINR, not dBm")
    if args.targets:
        print(f"\n{'target':>6} {'x':>8} {'y':>8} {'z':>6} {'no plate':>9} {'plate':>9}")
        for i, (t, b, r) in enumerate(zip(targets, base, rss)):
            print(f"{i:>6} {t[0]:>8.2f} {t[1]:>8.2f} {t[2]:>6.2f} {fmt_dbm(b):>9} {fmt_dbm(r):>9}")
    if guard is not None:
        print(f"protect: {'held' if guard.held else 'BROKEN'}: {guard.lost} of {guard.constrained} covered protected "
              f"points lost (margin {fmt_db(guard.margin_db)}, lost area {guard.lost_area_m2:g} m²)")
    if conv is not None:
        _print_convergence(conv)
    if chk is not None:
        _print_tolerance(rs, exp, chk)
    return 0


def _convergence(rs, exp, pose, samples: int, at_run, thr: float) -> list[dict]:
    """The pose's truth at max_depth + 1 and + 2 and at 4 x the samples, against the run's settings: one row
    per setting (`min_change_db`: its min RSS minus the run's; None where either has no path)."""
    depth = exp.solver.max_depth
    rows = [("as set", depth, samples, at_run), ("max_depth + 1", depth + 1, samples, None),
            ("max_depth + 2", depth + 2, samples, None), ("4 x samples", depth, 4 * samples, None)]
    ref = rss_stats(at_run, thr)
    out = []
    for label, d, n, rss in rows:
        rss = rss if rss is not None else rs.rss_dbm(pose, samples_per_src=n, max_depth=d)[:rs.n_targets]
        m = rss_stats(rss, thr)
        change = None if m.min_rss_dbm is None or ref.min_rss_dbm is None else m.min_rss_dbm - ref.min_rss_dbm
        out.append({"setting": label, "max_depth": d, "samples_per_src": n, "with_plate": m.model_dump(),
                    "min_change_db": change})
    return out


def _print_convergence(rows: list[dict]):
    print(f"\nconvergence (with plate): {'setting':<14}{'depth':>6}{'samples':>10}{'min':>14}{'change':>10}"
          f"{'coverage':>10}")
    for r in rows:
        m = r["with_plate"]
        change = "-" if r["min_change_db"] is None else f"{r['min_change_db']:+.2f} dB"
        print(f"{'':<26}{r['setting']:<14}{r['max_depth']:>6}{r['samples_per_src']:>10}"
              f"{fmt_power(m['min_rss_dbm']):>14}{change:>10}{fmt_pct(m['coverage']):>10}")


def _tolerance(rs, exp, pose, samples: int, at_run):
    """The truth over the mounting tolerance box around the pose, with the margin where it fails
    (`margin_scale`) and what would make it hold (`suggestions`): a `ToleranceCheck`."""
    from optimizer.physics import tolerance

    chk, _ = tolerance.check(rs, pose, exp, samples_per_src=samples, nominal_rss=at_run)
    scale, _ = tolerance.margin(rs, exp, chk, samples_per_src=samples)
    return chk.model_copy(update={"margin_scale": scale, "suggestions": tolerance.suggestions(rs, exp, chk, scale)})


def _print_tolerance(rs, exp, chk):
    from optimizer.physics import tolerance
    from optimizer.physics.wall import frame_label

    tol = exp.plates()[0].tolerance
    box = (f"±{100 * tol.position_m:g} cm / ±{tol.yaw_deg:g}° yaw / ±{tol.pitch_deg:g}° pitch"
           if len(exp.plates()) == 1 else "each plate's own box in turn, the others nominal")
    print(f"\nmounting tolerance {box}: {chk.poses_checked} poses checked; coverage "
          f"{'HOLDS' if chk.holds else 'does NOT hold'}")
    for f in tolerance.frames(rs, exp):
        print(f"  {f.plate}: the box in the frame of {frame_label(f)}")
    print(f"  worst min RSS {fmt_power(chk.worst_min_rss_dbm)} (nominal {fmt_power(chk.nominal_min_rss_dbm)}), "
          f"lowest coverage {fmt_pct(chk.worst_coverage)}, margin {chk.margin_scale:.0%} of the box")
    if len(chk.plates) > 1:
        for t in chk.plates:
            print(f"  {t.name}: ±{100 * t.position_m:g} cm / ±{t.yaw_deg:g}° yaw / ±{t.pitch_deg:g}° pitch, "
                  f"{t.poses_checked} poses: {'holds' if t.holds else 'does NOT hold'}, worst min RSS "
                  f"{fmt_power(t.worst_min_rss_dbm)}, lowest coverage {fmt_pct(t.worst_coverage)}")
    for line in chk.suggestions:
        print(f"  {line}")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else (f"{seconds / 60:.0f} min" if seconds < 7200
                                                      else f"{seconds / 3600:.1f} h")


def cmd_grid(args) -> int:
    from optimizer.search.grid import grid_search, planned_evaluations

    exp = with_size(load_submitted(args.experiment).exp, getattr(args, "size", None), "--size")
    if len(exp.plates()) > 1:
        raise ConfigError(f"grid: the exhaustive grid places one plate and this experiment has {len(exp.plates())} "
                          "(their joint grid is the product of theirs); grid each plate alone as `reflector:`")
    _positive(args.spacing, "--spacing", "metres")
    _positive(args.yaw_step, "--yaw-step", "degrees")
    _at_least(args.refine, "--refine", 0, 8)
    _at_least(args.max_evals, "--max-evals", 1)
    poses, planned = planned_evaluations(exp, args.spacing, args.yaw_step, args.refine)
    if poses > args.max_evals:
        raise ConfigError(f"--spacing/--yaw-step: {poses} grid poses exceed --max-evals {args.max_evals}; raise "
                          "--spacing or --yaw-step, or use --refine with a coarse grid")
    rs = driver_scene(exp)
    check_targets(exp, rs)
    check_boxes_clear(exp, rs)  # every pose cuts the scene: exit 2; some: a warning (they are skipped)
    t0 = time.perf_counter()
    rs.rss_dbm(None)  # one truth evaluation, timed: the estimate
    each = time.perf_counter() - t0
    refined = f" + up to {planned - poses} refining" if planned > poses else ""
    say(f"grid: {poses} poses{refined}, about {_duration(planned * each)} ({each:.2f} s per truth evaluation)")
    if planned > GRID_ASK_ABOVE and not args.yes and sys.stdin is not None and sys.stdin.isatty():
        sys.stderr.write(f"start {planned} truth evaluations? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            raise ReflectoptError("grid: not started; pass --yes to start without asking")
    res = grid_search(exp, rs, args.spacing, args.yaw_step, refine=args.refine, max_evals=args.max_evals)
    m, p = res["stats"], res["pose"]
    out = {"pose": p.first.model_dump(), "pose_arg": p.cli_value(), **m.model_dump(),
           "evaluations": res["evaluations"], "skipped_cut": res["skipped_cut"], "wall_s": round(res["wall_s"], 2),
           "spacing_m": args.spacing,
           "yaw_step_deg": args.yaw_step, "refine": args.refine}
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        skipped = f"; {res['skipped_cut']} grid poses skipped: the plate cuts the scene there" \
            if res["skipped_cut"] else ""
        print(f"grid optimum over {res['evaluations']} truth evaluations ({res['wall_s']:.0f} s{skipped}): {p}")
        print(f"min {fmt_power(m.min_rss_dbm)}, P5 {fmt_power(m.p5_rss_dbm)}, mean {fmt_power(m.mean_rss_dbm)}, "
              f"coverage {fmt_pct(m.coverage)}")
        print(f"reproduce: --pose={p.cli_value()}")
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


def calibrate(exp: Experiment, steps: int = 5, device: str | None = None, worlds: list[int] | None = None,
              scaling: bool = True) -> dict:
    from optimizer.physics import backend
    from optimizer.physics.scene import RadioScene
    from optimizer.search.starts import initial_poses
    from optimizer.search.world import World

    dev = backend.resolve_device(device or exp.device)  # the one device rule, as a world on this machine
    threads = max(1, int(round(exp.resources.cpu_per_world)))
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
    out = {"device": dev, "steps": steps, "step_s_median": statistics.median(times[1:] or times),
           "first_step_s": times[0], "peak_host_mb": host, "peak_gpu_mb": gpu, "gpu_total_mb": gpu_total,
           "worlds_per_gpu": per_gpu if per_gpu else 4, "worlds_per_gpu_measured": False,
           "cpu_per_world": exp.resources.cpu_per_world, "worlds_per_cpu_worker": per_cpu_worker, "cpus": cpus,
           "scaling": [], "recommended_worlds": None}
    if not scaling:
        return out
    from optimizer.search import throughput

    counts = worlds or throughput.world_counts(dev, cpus, exp.resources.cpu_per_world)
    if per_gpu:  # never more worlds than the card's memory holds
        counts = [n for n in counts if n <= per_gpu] or [1]
    for n in counts:
        say(f"calibrate: {n} concurrent world(s) on {dev} ...")
        out["scaling"].append(throughput.measure(exp, n, steps=steps, device=dev, threads=threads))
    rates = [r["world_steps_per_s"] for r in out["scaling"]]
    out["recommended_worlds"] = throughput.recommend(counts, rates)
    if dev == "cuda":
        out["worlds_per_gpu"], out["worlds_per_gpu_measured"] = out["recommended_worlds"], True
    return out


def cmd_calibrate(args) -> int:
    _at_least(args.steps, "--steps", 1, 1000)
    exp = load_submitted(args.experiment).exp
    worlds = None
    if args.worlds:
        try:
            worlds = sorted({int(v) for v in args.worlds.split(",")})
        except ValueError:
            raise ConfigError(f"--worlds: {args.worlds!r} is not a list of counts; give e.g. --worlds 1,2,4") from None
        if worlds[0] < 1 or worlds[-1] > 64:
            raise ConfigError(f"--worlds: {args.worlds!r}: give counts from 1 to 64, e.g. --worlds 1,2,4")
    c = calibrate(exp, args.steps, args.device, worlds=worlds, scaling=not args.no_scaling)
    gpu = f"{c['peak_gpu_mb']:.0f} MB of {c['gpu_total_mb']:.0f} MB" if c["peak_gpu_mb"] else "n/a (no GPU used)"
    lines = [f"# reflectopt calibrate: {exp.name} on {c['device']}, {c['steps']} steps",
             f"#   step time (median): {c['step_s_median']:.3f} s (first step {c['first_step_s']:.2f} s, compiles "
             "kernels)",
             f"#   peak host memory per world: {c['peak_host_mb']:.0f} MB; GPU memory per world: {gpu}",
             f"#   worlds per CPU worker of {c['cpus']} cores at {c['cpu_per_world']:g} CPU each: "
             f"{c['worlds_per_cpu_worker']}"]
    if c["scaling"]:
        lines.append(f"#   concurrent worlds on this {c['device']} (each after the same warm-up, all stepping; "
                     f"{c['cpus']} cores):")
        lines.append(f"#   {'worlds':>6} {'world-steps/s':>14} {'growth per doubling':>20} {'s per step':>11}"
                     f" {'host MB/world':>14} {'GPU MB/world':>13}")
        prev = None
        for r in c["scaling"]:
            g = "" if prev is None else f"{100 * growth_per_doubling(prev['worlds'], prev['world_steps_per_s'], r['worlds'], r['world_steps_per_s']):+.0f} %"  # noqa: E501
            gm = f"{r['gpu_mb_per_world']:.0f}" if r["gpu_mb_per_world"] is not None else "n/a"
            lines.append(f"#   {r['worlds']:>6} {r['world_steps_per_s']:>14.2f} {g:>20} {r['step_s']:>11.3f}"
                         f" {r['host_mb_per_world']:>14.0f} {gm:>13}")
            prev = r
        lines.append(f"#   largest count still growing >= {100 * CALIBRATE_GROWTH_PER_DOUBLING:.0f} % per doubling: "
                     f"{c['recommended_worlds']}"
                     + ("" if c["device"] == "cuda" else f" worlds on this CPU machine (at most {c['cpus']} cores)"))
    if not c["worlds_per_gpu_measured"]:
        lines.append("#   worlds per GPU not measured on this machine (no GPU): default 4 kept")
    lines += ["# Helm values (helm/reflectopt):", "worlds:", f"  perGpu: {c['worlds_per_gpu']}",
              f"  cpuPerWorld: {c['cpu_per_world']:g}"]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="ray-traced truth for one plate pose (and without the plate)")
    p.add_argument("experiment")
    p.add_argument("--pose", required=True, help="x,y,z,yaw_deg[,pitch_deg] [m, deg]; plates separated by ';'")
    p.add_argument("--samples", type=int, help="samples per source (default: solver.samples_per_src)")
    p.add_argument("--size", help="plate size WIDTHxHEIGHT [m] per plate, separated by ';' (default: size_m; with "
                                  "sizes_m the catalogue's smallest)")
    p.add_argument("--targets", action="store_true", help="print every target")
    p.add_argument("--convergence", action="store_true",
                   help="also at max_depth + 1 and + 2 and at 4 x the samples, with the changes")
    p.add_argument("--tolerance", action="store_true",
                   help="also the truth over the mounting tolerance box (corners + interior) and its margin")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("grid", help="exhaustive grid search (truth at every pose): the reference optimum")
    p.add_argument("experiment")
    p.add_argument("--spacing", type=float, default=0.25, help="position step [m] (default 0.25)")
    p.add_argument("--size", help="plate size WIDTHxHEIGHT [m] per plate, ';' between plates (default: size_m; "
                                  "with sizes_m the catalogue's smallest)")
    p.add_argument("--yaw-step", type=float, default=5.0, help="yaw (and pitch) step [deg] (default 5)")
    p.add_argument("--refine", type=int, default=0, help="rounds of 4x finer local refinement around the best")
    p.add_argument("--max-evals", type=int, default=200_000)
    p.add_argument("--yes", action="store_true", help=f"start without asking (it asks on a terminal above "
                                                      f"{GRID_ASK_ABOVE} poses)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_grid)

    p = sub.add_parser("calibrate", help="measure one world (memory, step time) and 1, 2, 4, ... concurrent "
                                         "worlds (world-steps/s); print Helm values")
    p.add_argument("experiment")
    p.add_argument("--steps", type=int, default=5, help="timed steps per world (after 2 warm-up steps)")
    p.add_argument("--worlds", help="concurrent world counts to measure, e.g. 1,2,4 (default: 1, 2, 4, ... up "
                                    f"to the cores on a CPU, {CALIBRATE_MAX_WORLDS_GPU} on a GPU)")
    p.add_argument("--no-scaling", action="store_true", help="one world only (memory and step time)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.set_defaults(handler=cmd_calibrate)
