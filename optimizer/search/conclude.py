"""The end of a run: the robust phase, then `conclude` = `rank` (the worlds by their truth), `re_evaluate` (the
winner and the baseline at the final sample count, its complete tolerance check) and `assemble` (the run's
records: `Summary`, `TargetRow`s, `WorldStep`s). Writing them is the store's job, drawing the report's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from optimizer import objectives
from optimizer.console import say
from optimizer.errors import ReflectoptError
from optimizer.physics import backend, tolerance
from optimizer.physics.metrics import has_path, rss_stats, worst_over_band
from optimizer.records import (
    BandFrequency,
    Convergence,
    Counts,
    CoverageGain,
    Failure,
    Gain,
    JointPose,
    NoteKind,
    ObjectiveResult,
    ProtectResult,
    Pruning,
    ReusedSlot,
    RunMeta,
    SizeResult,
    Summary,
    TargetRow,
    Winner,
    WinnerNote,
    WinnerPlate,
    WorldOutcome,
    WorldStep,
)
from optimizer.constants import NO_GAIN_DB
from optimizer.records.text import NO_PATH, fmt_db, fmt_pct, fmt_power
from optimizer.search.driver import Prepared, driver_scene, now_utc
from optimizer.search.space import PoseSpace
from optimizer.search.tune import Collected, rungs

CONVERGENCE_LIMIT_DB = 1.0  # [dB] a winner's min RSS may move this much with a deeper or denser truth

if TYPE_CHECKING:
    from optimizer.experiment import Experiment
    from optimizer.spec import RunSpec


@dataclass
class Concluded:
    summary: Summary
    targets: list[TargetRow]
    steps: list[WorldStep]
    winner_pose: JointPose
    spec: RunSpec  # at the winner's plate sizes (sizes_m: the chosen option; else the run's)
    rs: object  # RadioScene with those plates
    notes: list[WinnerNote] = field(default_factory=list)  # `summary.winner.notes`, typed

    @property
    def exp(self) -> Experiment:
        return self.spec.exp


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


def robust_phase(spec: RunSpec, prep: Prepared, collected: list[Collected], scenes: dict):
    """The tolerance checks and worst-case polish after the search (`search.robust_phase: halving`,
    optimizer.search.robust_phase), in the driver's scenes at each world's plate sizes (`scenes`: size option
    -> RadioScene, filled here as needed)."""
    from optimizer.search import robust_phase as phase

    exp = spec.exp

    def exp_for(size):
        return spec.sized(size).exp

    def scene_for(size):
        return scene_at(spec, prep, size, scenes)

    def area_of(cfg):
        k = cfg.get("size")
        return (0, None) if k is None or not spec.options else (spec.area_ranks[int(k)], int(k))

    if (exp.search.robust_phase == "halving" and spec.tolerance_on
            and any(c.status == "completed" for c in collected)):
        say("robust phase: checking the best candidates over the mounting tolerance box, best first")
    t0 = time.perf_counter()
    collected, stats = phase.run(exp, collected, prep.baseline, scene_for, exp_for, area_of)
    if stats is not None:
        say(f"robust phase: {stats.candidates} candidates, {stats.checked} checked, {stats.polished} polished, "
            f"{stats.stopped} stopped; {stats.evaluations} truth evaluations"
            f"{f' ({stats.parallel_tasks} Ray tasks)' if stats.parallel_tasks else ''} "
            f"({time.perf_counter() - t0:.1f} s)")
    return collected, stats


def scene_at(spec: RunSpec, prep: Prepared, size: int | None, scenes: dict):
    """The driver's scene with the plates at size option `size` (None, or the catalogue's smallest: the
    prepared one), built once per option into `scenes`."""
    from optimizer.experiment import catalogue

    if size is None or spec.options[int(size)] == catalogue.of_plates(spec.exp):
        return prep.rs
    if int(size) not in scenes:
        scenes[int(size)] = driver_scene(spec.sized(size).exp)
    return scenes[int(size)]


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


@dataclass
class Ranked:
    """The worlds ranked (`rank`): every outcome, the best, the size options' results, and the spec and
    driver's scene at the winner's plate sizes."""

    outcomes: list[WorldOutcome]
    best: WorldOutcome
    sizes: list[SizeResult]
    spec: RunSpec
    rs: object


@dataclass
class Evaluated:
    """The winner re-evaluated (`re_evaluate`) in the driver's scene."""

    pose: JointPose
    run_truth: np.ndarray  # [targets] dBm at the run's settings (the worlds' own truth of this pose)
    final_samples: int
    base_final: np.ndarray  # [targets] dBm, the baseline at the final sample count
    win_final: np.ndarray  # [targets] dBm, the winner at the final sample count
    base_band: np.ndarray  # [frequencies, targets] dBm, the baseline per frequency (final samples)
    win_band: np.ndarray  # [frequencies, targets] dBm, the winner per frequency (final samples)
    objective: object  # the objective judged at the final sample count (objective.protect: its baseline there)
    conv: Convergence
    chk: object  # ToleranceCheck (complete) or None
    serving: list  # per target, the plate on its strongest path
    evaluations: int  # truth evaluations in the driver
    sizes: list[SizeResult]  # with the chosen size's row from the winner's complete check
    notes: list[WinnerNote]


def meets_without_plate(objective, base_rss) -> bool:
    """Whether the targets meet the objective's requirement without a plate (`base_rss`: every receiver, the
    protected points of `objective.protect` included; the constraint itself is kept trivially there)."""
    return bool(objective.holds(base_rss))


def _power_unit(exp) -> str:
    """The unit of every RSS figure of the run: dB SINR under `combine: sinr`, else dBm."""
    return "dB SINR" if exp.combine() == "sinr" else "dBm"


def not_needed_note(exp, objective) -> str:
    """The note of a run whose targets meet the objective's requirement without a plate (`objective`: the
    run's, `objectives.of`: its parameters with their defaults resolved)."""
    o, params = exp.objective, objective.params()
    thr = f"{o.coverage_threshold_dbm:.1f} {_power_unit(exp)}"
    if o.kind == "percentile":
        need = f"the {params['p']:g}th percentile at or above {thr}"
    elif o.kind == "coverage":
        need = f"{100 * params['required']:g} % of the targets at or above {thr}"
    else:
        need = f"every target at or above {thr}" if o.kind == "min" else f"its requirement at {thr}"
    return (f"no plate is needed: without one the targets already meet the objective ({o.kind}: {need}); the pose "
            "below is the best found, for margin (its gain is in the table)")


def little_gain_note(exp, base, win) -> str | None:
    """The note of a winner that raises the objective's truth value (`base` -> `win`: dBm, or dB SINR, or the
    covered share for `coverage`; None: no path) by less than NO_GAIN_DB, or by no target's coverage; None
    where it does more."""
    o = exp.objective
    if o.kind == "coverage":
        if base is None or win is None or win > base:
            return None
        what = f"leaves the covered share at {fmt_pct(win)}"
    else:
        if win is not None and (base is None or win - base >= NO_GAIN_DB):
            return None
        shown = [NO_PATH if v is None else f"{v:.1f} {_power_unit(exp)}" for v in (base, win)]
        what = (f"raises the objective by less than {NO_GAIN_DB:g} dB ({shown[0]} without the plate, "
                f"{shown[1]} with it)")
    why = ("; objective.protect's constraint may rule out every pose that would help: run without it to see "
           "what it costs" if o.protect is not None else "")
    return f"the plate hardly helps here: the best pose found {what}{why}"


def protect_result(objective, win_final) -> ProtectResult | None:
    """`summary.objective.protect`: the constraint at the winner (None without `objective.protect`)."""
    rule = getattr(objective, "rule", None)
    if rule is None:
        return None
    c = rule.check(np.asarray(win_final, float)[objective.n:])
    return ProtectResult(held=c["held"], margin_db=c["margin_db"], lost=c["lost"], lost_area_m2=c["lost_area_m2"],
                         area_margin_m2=c["area_margin_m2"], **rule.params())


def band_frequencies(objective, exp: Experiment, base_band, win_band) -> list[BandFrequency]:
    """A band's per-frequency figures (`Summary.band`) from the truths [frequencies, targets] at the final
    sample count; none for one frequency."""
    freqs = exp.frequencies_hz()
    if len(freqs) == 1:
        return []
    return [BandFrequency(frequency_hz=f, objective_baseline=objective.truth(b), objective_winner=objective.truth(w),
                          baseline=objective.stats(b), winner=objective.stats(w))
            for f, b, w in zip(freqs, base_band, win_band)]


def rank(spec: RunSpec, prep: Prepared, collected: list[Collected], scenes: dict) -> Ranked:
    """The worlds' outcomes and the best by `world_rank` (under sizes_m: the catalogue's rule)."""
    from optimizer.experiment import catalogue

    space, options = PoseSpace.of(spec.exp), spec.options
    objective = objectives.of(spec.exp, prep.rs, prep.baseline)  # objective.protect: against the baseline
    outcomes = [_outcome(c, space, spec.search.steps, options) for c in collected]
    candidates = [o for o in outcomes if o.best is not None]
    if not candidates:
        raise ReflectoptError("every world failed; see the errors above (summary.json not written)")
    best = max(candidates, key=lambda o: world_rank(o, _area_rank(o, options), objective))
    if not options:
        return Ranked(outcomes, best, [], spec, prep.rs)
    chosen = catalogue.as_option(best.size_m)  # the winner's sizes: its own spec and scene from here on
    sizes = size_results(outcomes, options, chosen, tol_on=spec.tolerance_on, objective=objective)
    won = spec.at_option(chosen)
    return Ranked(outcomes, best, sizes, won, scene_at(spec, prep, won.size, scenes))


def re_evaluate(r: Ranked) -> Evaluated:
    """The winner and the baseline at the final sample count, the truth's convergence, the winner's complete
    tolerance check (and its margin where it does not hold), which plate serves each target; the notes."""
    spec, rs, best, sizes = r.spec, r.rs, r.best, r.sizes
    exp, thr = spec.exp, spec.exp.objective.coverage_threshold_dbm
    chk = best.tolerance
    win_pose = chk.pose if chk is not None and chk.pose is not None else best.best_pose
    run_truth = rs.rss_dbm(win_pose)  # at the run's settings (the worlds' own truth of this pose)
    final_samples = exp.final_samples()
    say(f"winner: world {best.world} at {win_pose}; re-evaluating with {final_samples} samples")
    base_band = rs.band_rss_dbm(None, samples_per_src=final_samples)  # [frequencies, targets]
    win_band = rs.band_rss_dbm(win_pose, samples_per_src=final_samples)
    base_final, win_final = worst_over_band(base_band), worst_over_band(win_band)
    final = objectives.of(exp, rs, base_final)  # objective.protect judged against the baseline at this count
    wanted = final.wanted  # the targets' part of every receiver array (objective.protect appends its points)
    conv, conv_evals = convergence(rs, exp, win_pose, wanted(run_truth), wanted(win_final), thr)
    # truth evaluations in the driver: the baseline, the winner at the run's settings, baseline and winner
    # at the final sample count, which plate serves each target, the convergence check, the tolerance margin
    serving = rs.serving_plates(win_pose, samples_per_src=final_samples)  # targets.csv's `plate`
    evaluations = 5 + conv_evals
    notes: list[WinnerNote] = []
    if meets_without_plate(final, base_final):
        notes.append(WinnerNote(NoteKind.NOT_NEEDED, not_needed_note(exp, final)))
    else:
        little = little_gain_note(exp, final.truth(base_final), final.truth(win_final))
        if little:
            notes.append(WinnerNote(NoteKind.NO_GAIN, little))
    if chk is not None:
        if not chk.complete:  # a world's failing check stopped early: the whole box for the report
            chk, raw = tolerance.check(rs, win_pose, exp, nominal_rss=run_truth)
            evaluations += raw["evaluations"]
        if not chk.holds:
            scale, spent = tolerance.margin(rs, exp, chk)
            evaluations += spent
            chk = chk.model_copy(update={"margin_scale": scale,
                                         "suggestions": tolerance.suggestions(rs, exp, chk, scale)})
            notes.append(WinnerNote(NoteKind.TOLERANCE_FAILS, (
                f"coverage does NOT hold over the mounting tolerance ±{100 * chk.position_m:.1f} cm / "
                f"±{chk.yaw_deg:g}° yaw / ±{chk.pitch_deg:g}° pitch: at its worst corner "
                f"{fmt_pct(chk.worst_coverage)} of the targets are covered; " + "; ".join(chk.suggestions))))
        else:
            chk = chk.model_copy(update={"margin_scale": 1.0})
            notes.append(WinnerNote(NoteKind.TOLERANCE_HOLDS, (
                f"coverage holds over the mounting tolerance ±{100 * chk.position_m:.1f} cm / "
                f"±{chk.yaw_deg:g}° yaw / ±{chk.pitch_deg:g}° pitch ({chk.poses_checked} poses checked; "
                f"worst min RSS {fmt_power(chk.worst_min_rss_dbm)})")))
    if sizes and chk is not None:  # the chosen size's row: the winner's complete check
        sizes = [s.model_copy(update={"holds": chk.holds, "worst_min_rss_dbm": chk.worst_min_rss_dbm,
                                      "worst_coverage": chk.worst_coverage}) if s.chosen else s for s in sizes]
    if sizes:
        notes.append(WinnerNote(NoteKind.SIZE_CHOICE, size_note(sizes)))
    if conv.warning:
        notes.append(WinnerNote(NoteKind.CONVERGENCE, conv.warning))
    if exp.solver.plate_model == "go":
        notes.append(WinnerNote(NoteKind.PLATE_MODEL, (
            "plate paths are geometric optics (solver.plate_model: go; the power of an infinite mirror "
            "wherever the specular point lies on the plate): small or distant plates are optimistic")))
    return Evaluated(win_pose, run_truth, final_samples, base_final, win_final, base_band, win_band, final, conv, chk, serving, evaluations,
                     sizes, notes)


def conclude(spec: RunSpec, meta: RunMeta, prep: Prepared, collected: list[Collected], t_start: float) -> Concluded:
    """Run the robust phase (halving), rank the worlds by truth (`rank`), re-evaluate the winner and the
    baseline at the final sample count (`re_evaluate`), and build the run's records (`assemble`)."""
    scenes: dict = {}
    collected, phase_stats = robust_phase(spec, prep, collected, scenes)
    ranked = rank(spec, prep, collected, scenes)
    return assemble(meta, ranked, re_evaluate(ranked), collected, phase_stats, t_start)


def assemble(meta: RunMeta, r: Ranked, e: Evaluated, collected: list[Collected], phase_stats,
             t_start: float) -> Concluded:
    """The run's records from the ranking and the winner's re-evaluation."""
    from optimizer.experiment import catalogue

    spec, rs, outcomes, best = r.spec, r.rs, r.outcomes, r.best
    exp, objective = spec.exp, e.objective
    thr = exp.objective.coverage_threshold_dbm
    space = PoseSpace.of(exp)
    win_pose, chk, sizes, base_final, win_final = e.pose, e.chk, e.sizes, e.base_final, e.win_final
    base_m, win_m = objective.stats(base_final), objective.stats(win_final)
    objective_result = ObjectiveResult(kind=objective.kind, params=objective.params(),
                                       baseline=objective.truth(base_final), winner=objective.truth(win_final),
                                       protect=protect_result(objective, win_final))
    wanted = objective.wanted
    evaluations = e.evaluations + sum(o.evaluations for o in outcomes)
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
        plates=[WinnerPlate(name=p_.name, pose=p, size_m=list(p_.size_m),
                            tolerance=chk.plates[k] if chk is not None and k < len(chk.plates) else None,
                            mount=mounts[k])
                for k, (p, p_) in enumerate(zip(win_pose.plates, spec.plates))], mount=mounts[0],
        world=best.world, samples_per_src=e.final_samples,
        search_min_rss_dbm=rss_stats(wanted(e.run_truth), thr).min_rss_dbm, pose_arg=win_pose.cli_value(),
        size_arg=catalogue.cli_value(catalogue.of_plates(exp)) if sizes else None,
        on_bounds=space.on_bounds(space.to_vec(win_pose)), tolerance=chk,
        truth_convergence=e.conv, notes=[note.text for note in e.notes])
    steps = sorted((s for c in collected for s in c.history), key=lambda s: (s.world, s.step))
    summary = Summary(
        name=exp.name, run_id=meta.run_id, experiment_sha256=meta.experiment_sha256,
        created_utc=meta.created_utc, finished_utc=now_utc(), wall_time_s=round(time.perf_counter() - t_start, 3),
        scene=exp.scene, frequency_hz=exp.frequency_hz,
        band=band_frequencies(objective, exp, e.base_band, e.win_band), device="+".join(devices) or "cpu", output=meta.run_uri,
        threshold_dbm=thr, targets_count=n, targets_dropped=rs.targets_dropped, solver=exp.solver.effective(),
        baseline=base_m, winner=winner, objective=objective_result, gain_db=_gain(wanted(base_final), wanted(win_final)),
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
                                                          and chk.target_worst_dbm else None, e.serving[:n]),
                     steps=steps, winner_pose=win_pose, spec=spec, rs=rs, notes=e.notes)
