"""The driver of a run: baseline and starts, the worlds on Ray, then the winner and the records of it.

`prepare` ray-traces the baseline and picks the starting poses; `run_search` runs (or resumes) the worlds
on Ray Tune; `conclude` ranks the worlds by their truth, re-evaluates the winner and returns the run's
records (`Summary`, `TargetRow`s, `WorldStep`s). Writing them is the store's job, drawing the report's.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from optimizer import objectives
from optimizer.errors import ConfigError, ReflectoptError
from optimizer.physics import backend, tolerance
from optimizer.physics.metrics import focus_mask, has_path, rss_stats, worst_over_band
from optimizer.records import (
    BandFrequency,
    Convergence,
    Counts,
    CoverageGain,
    Failure,
    Gain,
    JointPose,
    ObjectiveResult,
    ProtectResult,
    Pruning,
    ReusedSlot,
    RunMeta,
    SizeResult,
    Summary,
    TargetRow,
    Winner,
    WinnerPlate,
    WorldOutcome,
    WorldStep,
)
from optimizer.records.text import fmt_db, fmt_pct, fmt_power
from optimizer.console import say
from optimizer.search.space import PoseSpace
from optimizer.search.tune import Collected, rungs

CONVERGENCE_LIMIT_DB = 1.0  # [dB] a winner's min RSS may move this much with a deeper or denser truth
BOX_CUT_SAMPLES = 256  # poses of each mounting box (its corners, then seeded draws) tested against the scene

if TYPE_CHECKING:
    from optimizer.experiment import Experiment


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def driver_scene(exp: Experiment, threads: int | None = None):
    """The driver's own scene (baseline, winner re-evaluation), on this machine's device."""
    from optimizer.physics.scene import RadioScene

    return RadioScene(exp, device=backend.resolve_device(exp.device), threads=threads or os.cpu_count())


@dataclass
class Prepared:
    rs: object  # RadioScene
    baseline: np.ndarray  # [targets] dBm, -inf: no path
    starts: list  # [(JointPose, kind)]


def box_samples(space: PoseSpace, samples: int, seed: int = 0) -> list[JointPose]:
    """Poses of a one-plate search box: every corner (position bounds x yaw and pitch extremes, the free axes),
    then seeded uniform draws, `samples` in all (the corners first where there are more)."""
    free = np.flatnonzero(space.free)
    corners = []
    for bits in itertools.product((0.0, 1.0), repeat=free.size):
        u = np.full(space.dim, 0.5)
        u[free] = bits
        corners.append(u)
    rng = np.random.default_rng([seed, 43])
    units = corners[:samples] + list(rng.uniform(0.0, 1.0, (max(0, samples - len(corners)), space.dim)))
    return [space.unit_pose(u) for u in units]


def check_boxes_clear(exp: Experiment, rs) -> None:
    """Pre-flight: sample each plate's mounting box (`box_samples`, BOX_CUT_SAMPLES poses) against the scene.
    Every sampled pose cuts it: ConfigError naming the box and what it cuts. Some do: one warning with the
    share (the search rejects those poses)."""
    for k, r in enumerate(exp.plates()):
        key = "reflector.bounds" if exp.reflectors is None else f"reflectors[{k}].bounds ({r.name})"
        poses = box_samples(PoseSpace([r]), BOX_CUT_SAMPLES, exp.search.seed)
        cuts = rs.plate_cuts([p.first for p in poses], [k] * len(poses))
        hit = [(p, c) for p, c in zip(poses, cuts) if c is not None]
        if not hit:
            continue
        names = [c for _, c in hit]
        shape = max(sorted(set(names)), key=names.count)  # what most of them cut
        example = next(p for p, c in hit if c == shape).first
        fix = (f"move the box off {shape!r} by at least half the plate's width ({0.5 * r.size_m[0]:g} m), "
               "or narrow its yaw/pitch range")
        if len(hit) == len(poses):
            raise ConfigError(f"{key}: the plate cuts through {shape!r} at every one of {len(poses)} poses sampled "
                              f"in the mounting box (e.g. {example}); {fix}")
        say(f"warning: {key}: the plate cuts through {shape!r} at {len(hit)} of {len(poses)} poses sampled in the "
            f"mounting box ({len(hit) / len(poses):.0%}); the search rejects such poses ({fix} to use all of it)")


def check_targets(exp: Experiment, rs) -> None:
    """Pre-flight: the targets against the scene's geometry (`RadioScene.geometry_bounds`). A target more than
    TARGET_OUTSIDE_MARGIN_M below the scene's lowest surface (the ground), or farther outside its bounding box
    than the scene is wide: ConfigError naming it (no path would reach it: the run would end with "no path"
    there). Targets below the lowest surface or more than TARGET_OUTSIDE_MARGIN_M outside the box, or inside an
    object (`RadioScene.enclosing_objects`): one warning line each kind, naming the first and counting the
    rest. A scene without geometry has nothing to check against."""
    from optimizer.constants import TARGET_OUTSIDE_MARGIN_M

    pts = np.asarray(rs.targets, float).reshape(-1, 3)[:rs.n_targets]
    lo, hi = rs.geometry_bounds()
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo <= hi)) or not len(pts):
        return
    extent = float(max(hi[0] - lo[0], hi[1] - lo[1]))
    box = (f"x {lo[0]:.1f} to {hi[0]:.1f} m, y {lo[1]:.1f} to {hi[1]:.1f} m, z {lo[2]:.1f} to {hi[2]:.1f} m")
    outside = np.linalg.norm(np.maximum(0.0, np.maximum(lo - pts, pts - hi)), axis=1)
    below = lo[2] - pts[:, 2]

    def named(i: int) -> str:
        return f"{exp.target_key(i)}: {[round(float(v), 3) for v in pts[i]]}"

    fix = "give targets in the scene (where the receivers stand)"
    for i in np.flatnonzero(below > TARGET_OUTSIDE_MARGIN_M)[:1]:
        raise ConfigError(f"{named(i)} is {below[i]:.4g} m below the scene's lowest surface (z {lo[2]:.2f} m, the "
                          f"ground): no path would reach it; {fix}")
    for i in np.flatnonzero(outside > max(extent, TARGET_OUTSIDE_MARGIN_M))[:1]:
        raise ConfigError(f"{named(i)} is {outside[i]:.4g} m outside the scene ({box}), farther than the scene is "
                          f"wide ({extent:.0f} m): no path would reach it; {fix}")

    def more(n: int) -> str:
        return f" (and {n - 1} more target{'s' if n > 2 else ''})" if n > 1 else ""

    far = np.flatnonzero((outside > TARGET_OUTSIDE_MARGIN_M) | (below > 0))
    if far.size:
        i = far[0]
        where = (f"{below[i]:.4g} m below the scene's lowest surface (the ground)" if below[i] > 0 else
                 f"{outside[i]:.4g} m outside the scene's bounding box")
        say(f"warning: {named(i)}{more(far.size)} lies {where} ({box}); no path may reach it")
    near = np.flatnonzero(outside <= 0.0)
    inside = [(i, obj) for i, obj in zip(near, rs.enclosing_objects(pts[near])) if obj is not None]
    if inside:
        i, obj = inside[0]
        say(f"warning: {named(i)}{more(len(inside))} lies inside {obj!r}; its power is what reaches it there "
            "(through walls or not at all)")


def band_frequencies(objective, exp: Experiment, base_band, win_band) -> list[BandFrequency]:
    """A band's per-frequency figures (`Summary.band`) from the truths [frequencies, targets] at the final
    sample count; none for one frequency."""
    freqs = exp.frequencies_hz()
    if len(freqs) == 1:
        return []
    return [BandFrequency(frequency_hz=f, objective_baseline=objective.truth(b), objective_winner=objective.truth(w),
                          baseline=objective.stats(b), winner=objective.stats(w))
            for f, b, w in zip(freqs, base_band, win_band)]


def prepare(exp: Experiment) -> Prepared:
    """Driver-side set-up shared by run and resume: scene check, targets and mounting boxes against the scene
    (`check_targets`, `check_boxes_clear`), baseline, starting poses."""
    from optimizer.search.starts import initial_poses

    t0 = time.perf_counter()
    rs = driver_scene(exp)
    check_targets(exp, rs)
    check_boxes_clear(exp, rs)
    baseline = rs.baseline_dbm()
    obj = exp.objective
    focus = focus_mask(baseline, obj.coverage_threshold_dbm, obj.focus_margin_db, rs.n_targets)
    starts = initial_poses(exp, rs, exp.search.worlds, focus)
    n = rs.n_targets
    b = rss_stats(baseline[:n], obj.coverage_threshold_dbm)
    covered = int(round(b.coverage * n))
    guarded = (f", {len(baseline) - n} protected points ({int(objectives.of(exp, rs, baseline).rule.constrained.sum())} "
               "covered without the plate)" if len(baseline) > n else "")
    say(f"scene ready: {n} targets, baseline min RSS {fmt_power(b.min_rss_dbm)}, "
        f"{covered}/{n} covered{f', {b.no_path} with no path' if b.no_path else ''}{guarded}"
        f"{f', {rs.targets_dropped} area points inside buildings dropped' if rs.targets_dropped else ''} "
        f"({time.perf_counter() - t0:.1f} s)")
    return Prepared(rs, baseline, starts)


def start_ray(exp: Experiment, address: str | None) -> dict:
    import ray

    from optimizer.search.cluster import init_ray

    info = init_ray(address)
    gpus = float(ray.cluster_resources().get("GPU", 0.0))
    if exp.resources.gpu_per_world > 0 and gpus == 0:
        say(f"no GPU in the Ray cluster: running worlds on CPUs (resources.gpu_per_world "
            f"{exp.resources.gpu_per_world} ignored)")
        exp.resources.gpu_per_world = 0.0
    if "dashboard" in info:
        say(f"Ray dashboard: {info['dashboard']}")
    return info


def run_search(exp: Experiment, prep: Prepared, tune_path: str, tune_fs, meta: RunMeta, resume: bool,
               progress: bool) -> list[Collected]:
    from optimizer.experiment import catalogue
    from optimizer.search.tune import run_worlds

    if catalogue.has_catalogue(exp):
        opts = catalogue.options(exp)
        unstarted = opts[len(prep.starts):]
        say(f"sizes_m: {len(opts)} size options, {len(prep.starts)} worlds in turn"
            + (f"; no starting world for {', '.join(catalogue.label(o) for o in unstarted)} (raise search.worlds "
               "to try them)" if unstarted else ""))
    say(f"{len(prep.starts)} worlds ({exp.search.gradient} gradient, {exp.resources.cpu_per_world:g} CPU / "
        f"{exp.resources.gpu_per_world:g} GPU each), {exp.search.steps} steps, pruning "
        f"{'off' if exp.search.prune == 'off' else 'successive halving'}")
    return run_worlds(exp, exp.model_dump(mode="json"), prep.starts, prep.baseline, tune_path, tune_fs,
                      resume=resume, progress=progress, pruned_before=meta.pruned,
                      restarts_before=meta.restarts, merged_before=meta.merged, radio_scene=prep.rs)


@dataclass
class Concluded:
    summary: Summary
    targets: list[TargetRow]
    steps: list[WorldStep]
    winner_pose: JointPose
    exp: Experiment  # at the winner's plate sizes (sizes_m: the chosen option; else the run's experiment)
    rs: object  # RadioScene with those plates


def _outcome(c: Collected, space: PoseSpace, steps: int, options=None) -> WorldOutcome:
    st = c.state
    init = st.initial_pose if st is not None else (JointPose.model_validate(c.config["initial_pose"])
                                                    if c.config.get("initial_pose") else None)
    return WorldOutcome(
        world=c.world, status=c.status, start_kind=(st.start_kind if st is not None else c.config.get("start_kind")),
        parent=c.config.get("parent"), planned_steps=c.config.get("steps") or steps,
        merged_into=c.merged_into,
        size_m=([list(s) for s in options[int(c.config["size"])]]
                if options and c.config.get("size") is not None else None),
        initial_pose=init, final_pose=space.unit_pose(st.unit) if st is not None else None,
        best_pose=st.best.pose if st is not None and st.best is not None else None,
        best=st.best.truth if st is not None and st.best is not None else None,
        score=st.best.score if st is not None and st.best is not None else None,
        steps=c.steps, evaluations=st.evaluations if st is not None else 0, restarts=c.restarts, error=c.error,
        device=(st.device if st is not None else None) or c.device, peak_host_mb=c.peak_host_mb,
        tolerance=st.tolerance if st is not None else None)


def _gain(base, win) -> Gain:
    both = has_path(base) & has_path(win)
    bmin = float(np.min(base)) if has_path(base).all() else None
    wmin = float(np.min(win)) if has_path(win).all() else None
    b5, w5 = rss_stats(base, 0).p5_rss_dbm, rss_stats(win, 0).p5_rss_dbm
    return Gain(min=None if bmin is None or wmin is None else wmin - bmin,
                p5=None if b5 is None or w5 is None else w5 - b5,
                mean=float(np.mean(win[both] - base[both])) if both.any() else None)


def target_rows(targets, base, win, thr: float, worst: list | None = None,
                plates: list | None = None) -> list[TargetRow]:
    """`plates`: per target, the plate on its strongest path at the winner (None: none)."""
    rows = []
    for i, (p, b, r) in enumerate(zip(targets, base, win)):
        hb, hw = bool(has_path(b)), bool(has_path(r))
        w = worst[i] if worst else None
        rows.append(TargetRow(target=i, x=float(p[0]), y=float(p[1]), z=float(p[2]),
                              baseline_rss_dbm=float(b) if hb else None, winner_rss_dbm=float(r) if hw else None,
                              gain_db=float(r - b) if hb and hw else None,
                              covered_baseline=hb and b >= thr, covered_winner=hw and r >= thr,
                              worst_rss_dbm=w, covered_worst=None if not worst else (w is not None and w >= thr),
                              plate=plates[i] if plates else None))
    return rows


def protect_result(objective, win_final) -> ProtectResult | None:
    """`summary.objective.protect`: the constraint at the winner (None without `objective.protect`)."""
    rule = getattr(objective, "rule", None)
    if rule is None:
        return None
    c = rule.check(np.asarray(win_final, float)[objective.n:])
    return ProtectResult(held=c["held"], margin_db=c["margin_db"], lost=c["lost"], lost_area_m2=c["lost_area_m2"],
                         area_margin_m2=c["area_margin_m2"], **rule.params())


def world_rank(o: WorldOutcome, area_rank: int | None = None, objective=None) -> tuple:
    """Worlds whose result was checked over the tolerance box first, by their worst case (see
    `Objective.rank_check`); the others (pruned, or tolerance off) by their nominal truth. Under sizes_m
    (`area_rank`: the rank of the world's total plate area, 0 the smallest) a result that holds (tolerance
    off: meets the objective at its pose) ranks smaller plates first (optimizer.experiment.catalogue).
    `objective`: `optimizer.objectives` (None: min)."""
    objective = objective or objectives.default()
    if o.tolerance is not None:
        holds, worst, nominal = objective.rank_check(o.tolerance)
        return (True, holds, -(area_rank or 0) if holds else 0, worst, nominal)
    covers = area_rank is not None and o.best is not None and objective.met(o.best)
    return (False, covers, -area_rank if covers else 0, o.score, o.score)


def _area_rank(o: WorldOutcome, options) -> int | None:
    if not options or o.size_m is None:
        return None
    from optimizer.experiment import catalogue

    return catalogue.area_ranks(options)[options.index(catalogue.as_option(o.size_m))]


def size_results(outcomes: list[WorldOutcome], options, chosen, tol_on: bool = True,
                 objective=None) -> list[SizeResult]:
    """The best result of each size option (`world_rank` within the option's worlds), smallest area first;
    `tol_on` False (every plate's tolerance off): `holds` is whether it meets the objective at its pose."""
    objective = objective or objectives.default()
    from optimizer.experiment import catalogue

    out = []
    for opt in options:
        mine = [o for o in outcomes if o.size_m is not None and catalogue.as_option(o.size_m) == opt]
        ran = [o for o in mine if o.best is not None]
        best = max(ran, key=lambda o: world_rank(o, 0, objective)) if ran else None
        chk = best.tolerance if best is not None else None
        holds = chk.holds if chk is not None else (objective.met(best.best) if best is not None and not tol_on
                                                   else None)
        out.append(SizeResult(
            size_m=[list(s) for s in opt], area_m2=catalogue.total_area(opt), worlds=[o.world for o in mine],
            world=best.world if best is not None else None, holds=holds,
            worst_min_rss_dbm=chk.worst_min_rss_dbm if chk is not None else None,
            worst_coverage=chk.worst_coverage if chk is not None else None,
            min_rss_dbm=best.best.min_rss_dbm if best is not None else None,
            coverage=best.best.coverage if best is not None else None, chosen=opt == chosen))
    return out


def size_note(sizes: list[SizeResult]) -> str:
    """What the catalogue's rule chose and why, for the winner's notes."""
    from optimizer.experiment import catalogue

    def lab(r):
        return catalogue.label(catalogue.as_option(r.size_m))

    def what(r):
        if r.world is None:
            return "not run"
        if r.holds is None:
            return f"not checked over the tolerance (nominal min RSS {fmt_power(r.min_rss_dbm)})"
        if r.holds:
            return f"holds, worst min RSS {fmt_power(r.worst_min_rss_dbm)}"
        return f"does not hold (lowest coverage {fmt_pct(r.worst_coverage)})"

    chosen = next(r for r in sizes if r.chosen)
    others = "; ".join(f"{lab(r)}: {what(r)}" for r in sizes if not r.chosen)
    rule = ("the smallest catalogue size that holds over the mounting tolerance" if chosen.holds else
            "no catalogue size holds over the mounting tolerance: the best worst case")
    return f"plate size {lab(chosen)}: {rule}" + (f" (others: {others})" if others else "")


def convergence(rs, exp: Experiment, pose: JointPose, at_run, at_final, thr: float) -> tuple[Convergence, int]:
    """The winner's min RSS at the run's settings, at max_depth + 1 and at 4 x the samples (the final
    re-evaluation); a warning when either moves it by more than CONVERGENCE_LIMIT_DB."""
    deeper = rs.rss_dbm(pose, max_depth=exp.solver.max_depth + 1)[:len(at_run)]  # the targets (`at_run`'s)
    run_m, deep_m, fin_m = rss_stats(at_run, thr), rss_stats(deeper, thr), rss_stats(at_final, thr)

    def change(m):
        if run_m.min_rss_dbm is None and m.min_rss_dbm is None:
            return 0.0
        if run_m.min_rss_dbm is None or m.min_rss_dbm is None:
            return None  # a target gains or loses its only path: not a dB change
        return m.min_rss_dbm - run_m.min_rss_dbm

    d1, d4 = change(deep_m), change(fin_m)
    bad = [f"{label} moves the min RSS by {fmt_db(d)} dB" if d is not None else f"{label} changes whether every "
           "target has a path" for label, d in (("max_depth + 1", d1), ("4 x samples", d4))
           if d is None or abs(d) > CONVERGENCE_LIMIT_DB]
    warning = None
    if bad:
        warning = (f"truth not converged: {'; '.join(bad)} (limit {CONVERGENCE_LIMIT_DB:g} dB); raise "
                   "solver.max_depth / solver.samples_per_src and run again")
    return Convergence(min_rss_dbm=run_m.min_rss_dbm, depth_plus_1_db=d1, samples_x4_db=d4,
                       coverage_depth_plus_1=deep_m.coverage, coverage_samples_x4=fin_m.coverage,
                       warning=warning), 1


def robust_phase(exp: Experiment, prep: Prepared, collected: list[Collected]):
    """The tolerance checks and worst-case polish after the search (`search.robust_phase: halving`,
    optimizer.search.robust_phase), in the driver's scenes at each world's plate sizes."""
    from optimizer.experiment import catalogue
    from optimizer.search import robust_phase as phase

    opts = catalogue.options(exp) if catalogue.has_catalogue(exp) else None
    scenes: dict = {}

    def exp_for(size):
        return exp if size is None else catalogue.sized(exp, opts[size])

    def scene_for(size):
        if size is None or opts[size] == catalogue.of_plates(exp):
            return prep.rs
        if size not in scenes:
            scenes[size] = driver_scene(exp_for(size))
        return scenes[size]

    def area_of(cfg):
        k = cfg.get("size")
        return (0, None) if k is None or not opts else (catalogue.area_ranks(opts)[int(k)], int(k))

    if exp.search.robust_phase == "halving" and any(c.status == "completed" for c in collected):
        say("robust phase: checking the best candidates over the mounting tolerance box, best first")
    t0 = time.perf_counter()
    collected, stats = phase.run(exp, collected, prep.baseline, scene_for, exp_for, area_of)
    if stats is not None:
        say(f"robust phase: {stats.candidates} candidates, {stats.checked} checked, {stats.polished} polished, "
            f"{stats.stopped} stopped; {stats.evaluations} truth evaluations"
            f"{f' ({stats.parallel_tasks} Ray tasks)' if stats.parallel_tasks else ''} "
            f"({time.perf_counter() - t0:.1f} s)")
    return collected, stats


def mount_figures_of(rs, exp: Experiment, pose: JointPose, frames) -> list:
    """Per plate, `winner.mount` (`wall.mount_figures`): the ground below each plate centre from the scene;
    where the scene is geo-referenced (`rs.site_frame`, from its site.json) the bearing, with true north
    taken at the plate centre, and the centre's latitude and longitude."""
    from optimizer.physics.wall import mount_figures

    site = getattr(rs, "site_frame", None)
    out = []
    for p, f, r in zip(pose.plates, frames, exp.plates()):
        north, lat_lon = getattr(rs, "site_north_yaw_deg", None), None
        if site is not None:
            north = site.north_yaw_deg(p.x, p.y)
            (lat,), (lon,) = site.to_geo([p.x], [p.y])
            lat_lon = (float(lat), float(lon))
        out.append(mount_figures(p, f, r, rs.ground_below(p.position), north, lat_lon))
    return out


def conclude(exp: Experiment, meta: RunMeta, prep: Prepared, collected: list[Collected], t_start: float) -> Concluded:
    """Run the robust phase (halving), rank the worlds by truth, re-evaluate the winner and the baseline at
    the final sample count, and build the run's records."""
    from optimizer.experiment import catalogue

    collected, phase_stats = robust_phase(exp, prep, collected)
    rs = prep.rs
    thr = exp.objective.coverage_threshold_dbm
    objective = objectives.of(exp, rs, prep.baseline)
    space = PoseSpace.of(exp)
    options = catalogue.options(exp) if catalogue.has_catalogue(exp) else None
    outcomes = [_outcome(c, space, exp.search.steps, options) for c in collected]
    candidates = [o for o in outcomes if o.best is not None]
    if not candidates:
        raise ReflectoptError("every world failed; see the errors above (summary.json not written)")
    best = max(candidates, key=lambda o: world_rank(o, _area_rank(o, options), objective))
    sizes: list[SizeResult] = []
    if options:  # the winner's sizes: its own experiment and scene from here on
        chosen = catalogue.as_option(best.size_m)
        sizes = size_results(outcomes, options, chosen, tol_on=any(r.tolerance.active for r in exp.plates()),
                             objective=objective)
        at_smallest = chosen == catalogue.of_plates(exp)  # the driver's scene has the catalogue's smallest plates
        exp = catalogue.sized(exp, chosen)
        if not at_smallest:
            rs = driver_scene(exp)
    chk = best.tolerance
    win_pose = chk.pose if chk is not None and chk.pose is not None else best.best_pose
    run_truth = rs.rss_dbm(win_pose)  # at the run's settings (the worlds' own truth of this pose)
    final_samples = exp.final_samples()
    say(f"winner: world {best.world} at {win_pose}; re-evaluating with {final_samples} samples")
    base_band = rs.band_rss_dbm(None, samples_per_src=final_samples)  # [frequencies, targets]
    win_band = rs.band_rss_dbm(win_pose, samples_per_src=final_samples)
    base_final, win_final = worst_over_band(base_band), worst_over_band(win_band)
    final = objectives.of(exp, rs, base_final)  # objective.protect judged against the baseline at this count
    base_m, win_m = final.stats(base_final), final.stats(win_final)
    objective_result = ObjectiveResult(kind=final.kind, params=final.params(), baseline=final.truth(base_final),
                                       winner=final.truth(win_final), protect=protect_result(final, win_final))
    wanted = final.wanted  # the targets' part of every receiver array (objective.protect appends its points)
    conv, conv_evals = convergence(rs, exp, win_pose, wanted(run_truth), wanted(win_final), thr)
    # truth evaluations in the driver: the baseline, the winner at the run's settings, baseline and winner
    # at the final sample count, which plate serves each target, the convergence check, the tolerance margin
    serving = rs.serving_plates(win_pose, samples_per_src=final_samples)  # targets.csv's `plate`
    evaluations = 5 + conv_evals + sum(o.evaluations for o in outcomes)
    notes = []
    if chk is not None:
        if not chk.complete:  # a world's failing check stopped early: the whole box for the report
            chk, raw = tolerance.check(rs, win_pose, exp, nominal_rss=run_truth)
            evaluations += raw["evaluations"]
        if not chk.holds:
            scale, spent = tolerance.margin(rs, exp, chk)
            evaluations += spent
            chk = chk.model_copy(update={"margin_scale": scale,
                                         "suggestions": tolerance.suggestions(rs, exp, chk, scale)})
            notes.append(f"coverage does NOT hold over the mounting tolerance ±{100 * chk.position_m:.1f} cm / "
                         f"±{chk.yaw_deg:g}° yaw / ±{chk.pitch_deg:g}° pitch: at its worst corner "
                         f"{fmt_pct(chk.worst_coverage)} of the targets are covered; " + "; ".join(chk.suggestions))
        else:
            chk = chk.model_copy(update={"margin_scale": 1.0})
            notes.append(f"coverage holds over the mounting tolerance ±{100 * chk.position_m:.1f} cm / "
                         f"±{chk.yaw_deg:g}° yaw / ±{chk.pitch_deg:g}° pitch ({chk.poses_checked} poses checked; "
                         f"worst min RSS {fmt_power(chk.worst_min_rss_dbm)})")
    if sizes and chk is not None:  # the chosen size's row: the winner's complete check
        sizes = [r.model_copy(update={"holds": chk.holds, "worst_min_rss_dbm": chk.worst_min_rss_dbm,
                                      "worst_coverage": chk.worst_coverage}) if r.chosen else r for r in sizes]
    if sizes:
        notes.append(size_note(sizes))
    if conv.warning:
        notes.append(conv.warning)
    if exp.solver.plate_model == "go":
        notes.append("plate paths are geometric optics (solver.plate_model: go; the power of an infinite mirror "
                     "wherever the specular point lies on the plate): small or distant plates are optimistic")
    failures = [Failure(world=o.world, restarts=o.restarts, status=o.status,
                        error=o.error or "process died; resumed from its last checkpoint")
                for o in outcomes if o.status == "failed" or o.restarts]
    reused = [ReusedSlot(world=c.world, kind=c.config["start_kind"], parent=c.config.get("parent"),
                         freed_by=c.config["freed_by"], start_pose=JointPose.model_validate(c.config["initial_pose"]),
                         steps=c.config["steps"], scale=c.config.get("scale"))
              for c in collected if c.config.get("freed_by") is not None]
    counts = Counts(worlds=len(outcomes), completed=sum(o.status == "completed" for o in outcomes),
                    pruned=sum(o.status == "pruned" for o in outcomes),
                    failed=sum(o.status == "failed" for o in outcomes),
                    merged=sum(o.status == "merged" for o in outcomes), reused=len(reused),
                    robust=sum(bool(o.holds) and o.tolerance.complete for o in outcomes))
    prune = exp.search.prune
    rung_list = [] if prune == "off" else rungs(exp.search.steps, prune.grace_steps, prune.reduction_factor)
    devices = sorted({o.device for o in outcomes if o.device})
    n = rs.n_targets
    cov_b, cov_w = int(round(base_m.coverage * n)), int(round(win_m.coverage * n))
    frames = tolerance.frames(rs, exp)
    mounts = mount_figures_of(rs, exp, win_pose, frames)
    winner = Winner(
        **win_m.model_dump(), pose=win_pose.first, joint_pose=win_pose,
        plates=[WinnerPlate(name=r.name, pose=p, size_m=list(r.size_m),
                            tolerance=chk.plates[k] if chk is not None and k < len(chk.plates) else None,
                            mount=mounts[k])
                for k, (p, r) in enumerate(zip(win_pose.plates, exp.plates()))], mount=mounts[0],
        world=best.world, samples_per_src=final_samples, search_min_rss_dbm=rss_stats(wanted(run_truth), thr).min_rss_dbm,
        pose_arg=win_pose.cli_value(),
        size_arg=catalogue.cli_value(catalogue.of_plates(exp)) if sizes else None,
        on_bounds=space.on_bounds(space.to_vec(win_pose)), tolerance=chk,
        truth_convergence=conv, notes=notes)
    steps = sorted((s for c in collected for s in c.history), key=lambda s: (s.world, s.step))
    summary = Summary(
        name=exp.name, run_id=meta.run_id, experiment_sha256=meta.experiment_sha256,
        created_utc=meta.created_utc, finished_utc=now_utc(), wall_time_s=round(time.perf_counter() - t_start, 3),
        scene=exp.scene, frequency_hz=exp.frequency_hz, band=band_frequencies(objective, exp, base_band, win_band),
        device="+".join(devices) or "cpu", output=meta.run_uri,
        threshold_dbm=thr, targets_count=n, targets_dropped=rs.targets_dropped, solver=exp.solver.effective(), baseline=base_m,
        winner=winner, objective=objective_result, gain_db=_gain(wanted(base_final), wanted(win_final)),
        coverage_gain=CoverageGain(targets=cov_w - cov_b, share=win_m.coverage - base_m.coverage,
                                   gained_path=int(np.sum(~has_path(wanted(base_final)) & has_path(wanted(win_final))))),
        worlds=outcomes, failures=failures, reused=reused, sizes=sizes, counts=counts, evaluations=evaluations,
        pruning=Pruning(enabled=bool(rung_list), reduction_factor=None if prune == "off" else prune.reduction_factor,
                        grace_steps=None if prune == "off" else prune.grace_steps, rungs=rung_list),
        robust_phase=phase_stats,
        world_steps=int(sum(o.steps for o in outcomes)),
        peak_host_mb_per_world=max((float(o.peak_host_mb) for o in outcomes if o.peak_host_mb), default=None),
        search=exp.search.model_dump(mode="json"), resources=exp.resources.model_dump(mode="json"),
        versions=backend.versions(), tolerance_frames=frames)
    return Concluded(summary=summary, targets=target_rows(rs.targets[:n], wanted(base_final), wanted(win_final), thr,
                                                          chk.target_worst_dbm[:n] if chk is not None
                                                          and chk.target_worst_dbm else None, serving[:n]),
                     steps=steps, winner_pose=win_pose, exp=exp, rs=rs)
