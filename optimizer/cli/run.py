"""`reflectopt run | resume`: an experiment end to end (worlds on Ray, records to a folder or S3, report).

Everything that can be checked before the run folder exists is (the experiment and its overrides, that the
output can be written, the scene and its baseline), so bad input writes nothing. Once the folder exists,
its run.json never stays "running" for a run that ended: a failure writes "failed" and the reason, Ctrl-C
or SIGTERM (what Kubernetes sends a pod it deletes or evicts) "interrupted", with the checkpoints kept, one
line saying how to resume and exit status 130 (Ctrl-C) or 143 (SIGTERM); `resume` continues either.

The driver of a run holds its folder's lease (optimizer.store.lease) while it runs: `resume` of a run whose
driver is alive is refused, naming it; `resume` of a run whose experiment.yaml was edited is refused, naming
the keys that changed.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from optimizer.constants import (CHECKPOINTS_DIR, EXIT_INTERRUPTED, EXIT_TERMINATED, RUN_FILE, SUMMARY_FILE,
                                 WINNER_SCENE_DIR)
from optimizer.errors import ConfigError, ReflectoptError, StorageError, StoreUnreachable, caused_by_interrupt
from optimizer.experiment import load_run_experiment, load_submitted, with_overrides
from optimizer.experiment.loading import check_run_experiment_unchanged
from optimizer.records import Overrides, RunMeta, Summary, WinnerNote
from optimizer.records.text import fmt_pct, fmt_power
from optimizer.console import say
from optimizer.search import robust_phase
from optimizer.search.conclude import conclude
from optimizer.search.driver import now_utc, prepare, run_search, start_ray
from optimizer.spec import RunSpec
from optimizer.store import lease, storage, tunefs
from optimizer.store.runstore import RunStore

if TYPE_CHECKING:
    from optimizer.experiment import Experiment


RUN_FLAGS = {"output": "--output", "device": "--device", "search.worlds": "--worlds"}


def cmd_run(args) -> int:
    t_start = time.perf_counter()
    sub = load_submitted(args.experiment)
    exp = with_overrides(sub.exp, sub.source, {"output": args.output, "device": args.device,
                                               "search.worlds": args.worlds}, RUN_FLAGS)
    label = RUN_FLAGS["output"] if args.output is not None else "output"
    RunStore.check_output(exp.output, label)
    prep = prepare(exp)  # a scene that cannot be fetched or loaded fails here, before any folder is made

    def first_meta(store: RunStore) -> RunMeta:
        return RunMeta(name=exp.name, run_id=store.run_id, run_uri=store.uri, status="running",
                       created_utc=now_utc(), experiment_sha256=sub.sha256,
                       overrides=Overrides(output=exp.output, device=exp.device, worlds=exp.search.worlds,
                                           scene=exp.scene))

    earlier = _earlier_runs(exp.output, exp.name)
    store, meta = RunStore.create(exp.output, exp.name, first_meta, label)
    try:
        held = lease.Lease(store.uri, "run").acquire()  # a new folder: nobody else holds it
    except ReflectoptError as err:  # the store went down since check_output
        _write_status(store, meta, "failed", str(err).splitlines()[0])
        raise
    say(f"run {exp.name}/{store.run_id} -> {store.uri}")
    return _execute(exp, meta, store, args, resume=False, prep=prep, t_start=t_start, earlier=earlier,
                    experiment_text=sub.text, held=held)


def cmd_resume(args) -> int:
    t_start = time.perf_counter()
    store = RunStore(args.results)
    if store.complete:
        raise ReflectoptError(f"RESULTS: {store.uri} is already complete (summary.json present); nothing to resume")
    if not storage.exists(store.join(RUN_FILE)):
        raise ConfigError(f"RESULTS: {store.uri} has no run.json; give the run folder printed by `reflectopt run`")
    lease.check_free(store.uri)  # its driver still runs: refused, naming it
    meta = store.read_meta()
    exp = load_run_experiment(store, meta)
    check_run_experiment_unchanged(store, meta, exp)
    held = lease.Lease(store.uri, "resume").acquire()
    earlier = [(store, meta)]
    meta = meta.model_copy(update={"status": "running", "resumed_utc": now_utc(), "error": None})
    store.write_meta(meta)
    say(f"resuming {exp.name}/{meta.run_id} from {store.uri}")
    return _execute(exp, meta, store, args, resume=True, t_start=t_start, earlier=earlier,
                    experiment_text=store.read_experiment_text(), held=held)


def _earlier_runs(output: str, name: str, newest: int = 20) -> list[tuple[RunStore, RunMeta]]:
    """The newest runs of this experiment under `output` that run.json says are still running (a driver
    that was killed leaves that): their Ray leftovers are stopped before this run starts Ray."""
    base = storage.join(output, name)
    out = []
    for run_id in sorted(storage.list(base), reverse=True)[:newest]:
        store = RunStore(storage.join(base, run_id))
        try:
            meta = store.read_meta() if store.exists(RUN_FILE) else None
        except (StorageError, ValueError):
            meta = None
        finally:
            store.discard_staging()
        if meta is not None and meta.status == "running" and meta.ray_session:
            out.append((store, meta))
    return out


def _stop_leftovers(earlier: list[tuple[RunStore, RunMeta]], resuming: bool) -> None:
    """Stop the Ray processes that these runs' killed drivers left on this machine (only theirs). An
    earlier run whose Ray session is dead here is marked interrupted (resumable) unless it is the run
    being resumed."""
    from optimizer.search.cluster import stop_leftovers

    for store, meta in earlier:
        n = stop_leftovers(meta.ray_session)
        if n is None:
            continue  # its Ray still runs, or ran on another machine: not ours to touch
        if n:
            say(f"stopped {n} Ray process(es) left by {meta.name}/{meta.run_id} (its driver was killed)")
        if not resuming:
            store.write_meta(meta.model_copy(update={"status": "interrupted",
                                                     "error": "its driver was killed; resume continues it"}))
            store.discard_staging()


class _Stop:
    """How the run was asked to stop (`_on_sigterm` sets "SIGTERM"; else a Ctrl-C)."""

    by: str | None = None


def _on_sigterm(signum, frame) -> None:
    """SIGTERM as Ctrl-C: Tune's interrupt handler (while the worlds run) ends its loop with every checkpoint
    kept; elsewhere KeyboardInterrupt. A second SIGTERM, like a second Ctrl-C, stops at once."""
    _Stop.by = "SIGTERM"
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def _catch_sigterm() -> None:
    """Handle SIGTERM as `_on_sigterm` (again after Ray starts: ray.init puts its own handler there)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


def _interrupted(store: RunStore, what: str) -> int:
    """The one line of a run stopped early, and its exit status (143 after SIGTERM, 130 after Ctrl-C)."""
    by = f" by {_Stop.by}" if _Stop.by else ""
    say(f"interrupted{by}{what}; checkpoints kept; continue with `reflectopt resume {store.uri}`")
    return EXIT_TERMINATED if _Stop.by == "SIGTERM" else EXIT_INTERRUPTED


def _execute(exp: Experiment, meta: RunMeta, store: RunStore, args, resume: bool, t_start: float, earlier=(),
             prep=None, experiment_text: str | None = None, held: lease.Lease | None = None) -> int:
    """The run from here on: its folder exists, so every way out leaves run.json saying how it ended."""
    _Stop.by = None
    before = signal.getsignal(signal.SIGTERM)
    try:
        _catch_sigterm()
        if experiment_text is not None:
            store.write_experiment(experiment_text)
        return _run(exp, meta, store, args, resume, t_start, earlier, prep)
    except KeyboardInterrupt:
        _write_status(store, meta, "interrupted", None)
        return _interrupted(store, "")
    except StoreUnreachable as err:
        if held is not None:
            held.abandon()  # no more waits on a store that is down
        _write_status(store, meta, "failed", str(err))
        raise StoreUnreachable(f"{err}; nothing is lost: once the store answers, continue with "
                               f"`reflectopt resume {store.uri}`") from None
    except ReflectoptError as err:
        _write_status(store, meta, "failed", str(err).splitlines()[0] if str(err) else type(err).__name__)
        raise
    except Exception as err:
        if caused_by_interrupt(err):  # Ctrl-C / SIGTERM inside a Dr.Jit loop: it wraps the KeyboardInterrupt
            _write_status(store, meta, "interrupted", None)
            return _interrupted(store, "")
        _write_status(store, meta, "failed", f"{type(err).__name__}: {err}".splitlines()[0][:300])
        raise
    finally:
        if held is not None:
            held.release()
        store.discard_staging()  # an s3:// run's local copy: published or not, it goes
        if threading.current_thread() is threading.main_thread() and before is not None:
            signal.signal(signal.SIGTERM, before)


def _write_status(store: RunStore, meta: RunMeta, status: str, error: str | None) -> None:
    """run.json's status after the run ended early (best effort: a store that is down keeps "running",
    which `resume` continues just the same)."""
    try:
        current = store.read_meta()
    except (ReflectoptError, ValueError):
        current = meta
    if current.status in ("complete", "interrupted") and status == "interrupted":
        return
    try:
        store.write_meta(current.model_copy(update={"status": status, "error": error}))
    except ReflectoptError:
        pass


def _run(exp: Experiment, meta: RunMeta, store: RunStore, args, resume: bool, t_start: float, earlier,
         prep) -> int:
    exp = robust_phase.with_freed_steps(exp)  # the robust phase's freed budget: more steps for the search
    if prep is None:
        prep = prepare(exp)
    _stop_leftovers(earlier, resuming=resume)
    info, exp = start_ray(exp, getattr(args, "address", None))
    spec = RunSpec.of(exp)  # the run as resolved, once: the worlds, the robust phase and the winner read it
    _catch_sigterm()
    meta = meta.model_copy(update={"ray_session": info.get("session_dir")})
    store.write_meta(meta)
    tune_path, tune_fs = tunefs.tune_storage(store.join(CHECKPOINTS_DIR))
    collected = run_search(spec, prep, tune_path, tune_fs, meta, resume=resume,
                           progress=not getattr(args, "no_progress", False))
    meta = meta.model_copy(update={"pruned": sorted(c.world for c in collected if c.status == "pruned"),
                                   "merged": {c.world: c.merged_into for c in collected if c.status == "merged"},
                                   "restarts": {c.world: c.restarts for c in collected if c.restarts}})
    if threading.current_thread() is threading.main_thread():
        # Tune's own SIGINT handler outlives fit(): without this, Ctrl-C (and SIGTERM, `_on_sigterm`) during
        # the conclusion (the robust phase, the final truth) only set Tune's flag and the run went on.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    unfinished = [c for c in collected if c.status == "interrupted"]
    if unfinished:
        store.write_meta(meta.model_copy(update={"status": "interrupted"}))
        return _interrupted(store, f": {len(unfinished)} worlds unfinished")
    done = conclude(spec, meta, prep, collected, t_start)
    summary = done.summary
    store.write_targets(done.targets)
    store.write_trajectories(done.steps)
    try:
        done.rs.export_with_plate(done.winner_pose, store.path(WINNER_SCENE_DIR))
    except ReflectoptError as err:
        say(f"warning: {err}")
    # Pictures and the report: a failure to draw never loses the numbers.
    staged = store.write_summary(summary, SUMMARY_FILE + ".pending")
    t_rep = time.perf_counter()
    try:
        from optimizer.report.build import run_collateral, write_report

        write_report(store.local, done.spec, summary=summary, radio_scene=done.rs, threads=os.cpu_count() or 1)
        protect = summary.objective.protect if summary.objective is not None else None
        summary = summary.model_copy(update={"collateral": run_collateral(store.local, summary.threshold_dbm,
                                                                          protect)})
    except Exception as err:  # noqa: BLE001
        say(f"warning: report not drawn ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})")
    summary = summary.model_copy(update={"report_time_s": round(time.perf_counter() - t_rep, 3),
                                         "wall_time_s": round(time.perf_counter() - t_start, 3)})
    staged.unlink(missing_ok=True)
    store.write_meta(meta.model_copy(update={"status": "complete", "finished_utc": summary.finished_utc}))
    store.write_summary(summary)  # last: its presence marks a complete run
    store.publish()
    print_final(summary, store.uri, done.notes)
    return 0


def print_final(s: Summary, run_uri: str, notes: list[WinnerNote]):
    b, w = s.baseline, s.winner
    out = sys.stdout
    c = s.counts
    reused = f", {c.reused} of them in freed slots" if c.reused else ""
    merged = f", {c.merged} merged" if c.merged else ""
    out.write(f"\n{s.name} / {s.run_id}: {c.worlds} worlds{reused} ({c.completed} completed, {c.pruned} pruned"
              f"{merged}, {c.failed} failed), {s.evaluations} truth evaluations, {s.wall_time_s:.0f} s\n")
    out.write(f"{'':<12}{'min':>14}{'P5':>14}{'mean':>14}{'coverage':>10}\n")
    for label, m in (("baseline", b), ("winner", w)):
        out.write(f"{label:<12}{fmt_power(m.min_rss_dbm):>14}{fmt_power(m.p5_rss_dbm):>14}"
                  f"{fmt_power(m.mean_rss_dbm):>14}{fmt_pct(m.coverage):>10}\n")
    o = s.objective
    if o is not None and o.kind != "min":  # min: the table's first column says it
        what = {"percentile": fmt_power, "coverage": fmt_pct}.get(o.kind, str)
        given = ", ".join(f"{k} {v:g}" for k, v in o.params.items() if k in ("p", "required"))
        out.write(f"objective:   {o.kind} ({given}): baseline {what(o.baseline)}, winner {what(o.winner)}\n")
    out.write(f"winner pose: {w.joint_pose} (world {w.world})\n")
    size = f" --size={w.size_arg}" if w.size_arg else ""
    out.write(f"reproduce:   reflectopt evaluate EXPERIMENT --pose={w.pose_arg}{size} --tolerance --convergence\n")
    if w.tolerance is not None:
        t = w.tolerance
        out.write(f"{'HOLDS' if t.holds else 'DOES NOT HOLD'} over the mounting tolerance "
                  f"±{100 * t.position_m:g} cm / ±{t.yaw_deg:g}° yaw / ±{t.pitch_deg:g}° pitch "
                  f"({t.poses_checked} poses): worst min RSS {fmt_power(t.worst_min_rss_dbm)}, lowest coverage "
                  f"{fmt_pct(t.worst_coverage)}\n")
    if s.collateral is not None:
        k = s.collateral
        worst = "" if k.worst_loss_db is None else f"; worst covered cell loses {k.worst_loss_db:.0f} dB"
        out.write(f"collateral loss: {k.area_m2:.1f} m² covered without the plate are not with it{worst} "
                  f"(radio maps, {k.margin_db:g} dB noise margin; heatmaps/collateral.png)\n")
    p = s.objective.protect if s.objective is not None else None
    if p is not None:
        margin = "no protected point is covered without the plate" if p.margin_db is None else \
            f"margin {p.margin_db:+.1f} dB"
        area = "" if p.max_area_m2 is None else f", lost area {p.lost_area_m2:g} of {p.max_area_m2:g} m² allowed"
        out.write(f"protect:     {'HELD' if p.held else 'BROKEN'}: {p.lost} of {p.constrained} covered protected "
                  f"points lost ({margin}{area})\n")
    if w.on_bounds:
        out.write(f"note: the winner lies on the mounting box's bound(s) {', '.join(w.on_bounds)}; widening "
                  "`reflector.bounds` / `yaw_deg` there may find a better pose\n")
    for note in notes:
        if note.on_console:
            out.write(f"note: {note.text}\n")
    out.write(f"results: {run_uri}\n")
    out.flush()


def register(sub) -> None:
    p = sub.add_parser("run", help="optimise the reflector pose (many worlds on Ray, results to a folder or S3)")
    p.add_argument("experiment", help="experiment YAML (path or s3:// URI)")
    p.add_argument("--output", help="override `output:` (folder or s3://bucket/prefix)")
    p.add_argument("--address", help="Ray cluster to attach to (default: RAY_ADDRESS, else a local Ray on 127.0.0.1)")
    p.add_argument("--worlds", type=int, help="override search.worlds (1 to 10000)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override `device:`")
    p.add_argument("--no-progress", action="store_true", help="no live table")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("resume", help="continue an interrupted run from its checkpoints")
    p.add_argument("results", help="the run folder or s3:// URI printed by `reflectopt run`")
    p.add_argument("--address", help="Ray cluster to attach to")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=cmd_resume)
