"""Synthetic run folders written through the product's own records and RunStore (numbers made up, formats
exactly those of `reflectopt run`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from optimizer.constants import NO_PATH_FLOOR_DBM
from optimizer.objectives import default
from optimizer.physics.metrics import rss_stats
from optimizer.records import (Counts, CoverageGain, Failure, JointPose, Overrides, PlatePose, Pruning, RunMeta,
                               Summary, WallFrame, Winner, WinnerPlate, WorldOutcome, WorldStep)
from optimizer.physics.wall import mount_figures
from optimizer.search.conclude import _gain, target_rows
from optimizer.store.runstore import RunStore

RUN_ID = "20261126T101500Z-3fa9"


def synthetic_run(run_dir: Path, exp, *, baseline=None, winner=None, winner_pose: PlatePose | None = None,
                  worlds: int = 6, steps: int = 12, seed: int = 1) -> Summary:
    """A complete run folder for `exp` (default numbers: 3 targets without a path at baseline)."""
    rng = np.random.default_rng(seed)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    store = RunStore(str(run_dir))
    thr = exp.objective.coverage_threshold_dbm
    pts = np.array(exp.target_points(), float)
    n = len(pts)
    winner_pose = winner_pose or PlatePose(29.0, 1.6, 1.5, 45.0)
    base = np.asarray(baseline if baseline is not None else np.r_[[-np.inf] * 3, rng.uniform(-120, -95, n - 3)], float)
    win = np.asarray(winner if winner is not None else rng.uniform(-85, -70, n), float)
    mb, mw = rss_stats(base, thr), rss_stats(win, thr)
    store.write_experiment(yaml.safe_dump(exp.model_dump(mode="json"), sort_keys=False))
    store.write_meta(RunMeta(name=exp.name, run_id=RUN_ID, run_uri=str(run_dir), status="complete",
                             created_utc="2026-11-26T10:15:00Z", experiment_sha256=exp.sha256(),
                             overrides=Overrides(output=str(run_dir.parent), device="cpu", worlds=worlds,
                                                 scene=exp.scene)))
    store.write_targets(target_rows(pts, base, win, thr))
    b = exp.reflector.bounds
    status = {k: ("pruned" if k in (1, 4) else "failed" if k == 5 and worlds > 5 else "completed")
              for k in range(worlds)}
    history, outcomes = [], []
    for k in range(worlds):
        last = {"pruned": 3, "failed": 5}.get(status[k], steps)
        start = np.array([rng.uniform(b.min[0], b.max[0]), rng.uniform(b.min[1], b.max[1]), b.min[2],
                          rng.uniform(0, 90)])
        end = np.array([winner_pose.x, winner_pose.y, winner_pose.z, winner_pose.yaw_deg]) if k == 0 else \
            np.array([rng.uniform(b.min[0], b.max[0]), rng.uniform(b.min[1], b.max[1]), b.min[2], rng.uniform(0, 90)])
        best, best_pose, best_score = None, None, -1e18
        for s in range(1, last + 1):
            t = s / steps
            p = start + (end - start) * min(1.0, 1.3 * t) + rng.normal(0, 0.03, 4) * (1 - t)
            m = -np.inf if (s < 3 and k % 2) else -130 + 55 * t + rng.normal(0, 3) - 10 * (k != 0)
            rss = np.full(n, m) + np.linspace(0, 8, n)
            st = rss_stats(rss, thr)
            pose = JointPose.single(PlatePose(*p[:3], p[3]))
            if default().score(st) > best_score:
                best, best_pose, best_score = st, pose, default().score(st)
            obj = float(max(m, NO_PATH_FLOOR_DBM) + 0.5)
            history.append(WorldStep(world=k, step=s, pose=pose, truth=st, objective_dbm=obj, surrogate_dbm=obj + 1.5,
                                     best=best, best_score=best_score, best_pose=best_pose, evaluations=s,
                                     step_s=0.4))
        if k == 0:
            best_pose = JointPose.single(winner_pose)
        outcomes.append(WorldOutcome(world=k, status=status[k], start_kind="informed" if k % 2 == 0 else "uniform",
                                     initial_pose=JointPose.single(PlatePose(*start)),
                                     final_pose=history[-1].pose, best_pose=best_pose, best=best, score=best_score,
                                     steps=last, evaluations=last, restarts=2 if status[k] == "failed" else 0,
                                     error="RuntimeError: synthetic crash" if status[k] == "failed" else None,
                                     device="cpu"))
    store.write_trajectories(history)
    jp = JointPose.single(winner_pose)
    # the corridor's outer wall (x = 30 m, y 0..25 m; what `RadioScene.wall_frames` finds in its mesh)
    frame = WallFrame(plate="plate-1", yaw_deg=90.0, source="mesh", wall_id="walls", point=[30.0, 25.0],
                      normal=[-1.0, 0.0], ends_m=[0.0, 25.0])
    mount = mount_figures(winner_pose, frame, exp.plates()[0], ground_z=0.0)
    summary = Summary(
        name=exp.name, run_id=RUN_ID, experiment_sha256=exp.sha256(), created_utc="2026-11-26T10:15:00Z",
        finished_utc="2026-11-26T10:16:00Z", wall_time_s=60.0, scene=exp.scene, frequency_hz=exp.frequency_hz,
        device="cpu", output=str(run_dir), threshold_dbm=thr, targets_count=n, solver=exp.solver.model_dump(mode="json"),
        baseline=mb,
        winner=Winner(**mw.model_dump(), pose=winner_pose, joint_pose=jp,
                      plates=[WinnerPlate(name="plate-1", pose=winner_pose, size_m=list(exp.reflector.size_m),
                                          mount=mount)], mount=mount,
                      world=0, samples_per_src=400000,
                      search_min_rss_dbm=None if mw.min_rss_dbm is None else mw.min_rss_dbm - 0.7,
                      pose_arg=jp.cli_value()),
        gain_db=_gain(base, win),
        coverage_gain=CoverageGain(targets=int(round((mw.coverage - mb.coverage) * n)),
                                   share=mw.coverage - mb.coverage, gained_path=mb.no_path - mw.no_path),
        worlds=outcomes,
        failures=[Failure(world=o.world, restarts=o.restarts, status=o.status, error=o.error)
                  for o in outcomes if o.status == "failed"],
        counts=Counts(worlds=worlds, completed=sum(v == "completed" for v in status.values()),
                      pruned=sum(v == "pruned" for v in status.values()),
                      failed=sum(v == "failed" for v in status.values())),
        evaluations=len(history) + 2,
        pruning=Pruning(enabled=True, reduction_factor=2, grace_steps=3, rungs=[3, 6]),
        world_steps=len(history), peak_host_mb_per_world=300.0, search=exp.search.model_dump(mode="json"),
        resources=exp.resources.model_dump(mode="json"),
        versions={"reflectopt": "0.1.0", "sionna-rt": "2.2.0", "mitsuba": "3.9.1", "drjit": "1.5.0"},
        tolerance_frames=[frame])
    store.write_summary(summary)
    return summary


def minimal_summary(min_rss_dbm: float | None, name: str = "x") -> Summary:
    """The smallest valid summary: one world, one target, this winner min RSS."""
    st = rss_stats(np.array([-np.inf if min_rss_dbm is None else min_rss_dbm]), -90.0)
    pose = PlatePose(0, 0, 0, 0)
    jp = JointPose.single(pose)
    return Summary(
        name=name, run_id=RUN_ID, experiment_sha256="0" * 64, created_utc="2026-11-26T10:15:00Z",
        finished_utc="2026-11-26T10:16:00Z", wall_time_s=1.0, scene="builtin:box", frequency_hz=3.5e9, device="cpu",
        output="-", threshold_dbm=-90.0, targets_count=1, solver={}, baseline=st,
        winner=Winner(**st.model_dump(), pose=pose, joint_pose=jp, plates=[], world=0, samples_per_src=1000,
                      search_min_rss_dbm=min_rss_dbm, pose_arg=jp.cli_value()),
        gain_db=_gain(np.array([-np.inf]), np.array([-np.inf])),
        coverage_gain=CoverageGain(targets=0, share=0.0, gained_path=0), worlds=[], failures=[],
        counts=Counts(worlds=1, completed=1, pruned=0, failed=0), evaluations=1,
        pruning=Pruning(enabled=False, reduction_factor=None, grace_steps=None, rungs=[]), world_steps=1,
        peak_host_mb_per_world=None, search={}, resources={}, versions={})
