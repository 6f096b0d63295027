"""Mounting tolerance: the box of poses a plate may really end up in, and the truth over that box.

A plate is mounted to a few centimetres and about a degree. The box around a pose has five axes, the way
an installer measures: along the wall, off the wall (both horizontal), vertical [m] in the frame of the wall
the plate is mounted on (`optimizer.physics.wall`: found once per run per plate, whatever the plate's yaw);
yaw and pitch [deg] of the plate itself. The tolerance applies to every axis, searched or not (a plate at a
fixed height is still mounted to +-5 cm). `world_offsets` is the one place a wall-frame offset becomes a
move in the scene (the truth's box and both surrogates' corners).

`box_offsets` gives its corners (2^d, d = the axes with a non-zero tolerance) and seeded interior points;
`check` ray-traces the truth at every one of them: coverage is claimed only where it holds at all. A box
pose whose plate cuts through scene geometry fails the box untraced (the plate could not be mounted there).
"""

from __future__ import annotations

import itertools

import numpy as np

from optimizer import objectives
from optimizer.physics.metrics import has_path, rss_stats
from optimizer.physics.wall import find_frame, offset_axes
from optimizer.records import JointPose, PlatePose, PlateTolerance, ToleranceCheck, WallFrame
from optimizer.records.text import fmt_pct

OFFSET_AXES = ("along_m", "out_m", "up_m", "yaw_deg", "pitch_deg")
INTERIOR_POSES = 8  # seeded interior poses checked beside the corners
MARGIN_BISECTIONS = 5  # bisection steps of the tolerance margin (scale resolution 1/32)


def half_widths(tol) -> np.ndarray:
    """[5] the box's half-widths along OFFSET_AXES from a `reflector.tolerance`."""
    p = float(tol.position_m)
    return np.array([p, p, p, float(tol.yaw_deg), float(tol.pitch_deg)])


def box_offsets(half: np.ndarray, interior: int = INTERIOR_POSES, seed: int = 0) -> np.ndarray:
    """[2^d + interior, 5] offsets: every corner of the box (d axes with a non-zero half-width), then
    `interior` uniform interior points (seeded). An empty box gives no offsets."""
    half = np.asarray(half, float)
    axes = [k for k in range(5) if half[k] > 0]
    if not axes:
        return np.zeros((0, 5))
    corners = []
    for signs in itertools.product((-1.0, 1.0), repeat=len(axes)):
        off = np.zeros(5)
        off[axes] = np.asarray(signs) * half[axes]
        corners.append(off)
    rng = np.random.default_rng([seed, 97])
    inner = rng.uniform(-1.0, 1.0, (interior, 5)) * half
    return np.vstack([np.array(corners), inner]) if interior else np.array(corners)


def corner_offsets(half: np.ndarray) -> np.ndarray:
    """The corners only (what the surrogate's worst case uses)."""
    return box_offsets(half, interior=0)


def world_offsets(offsets, frame_yaw_deg: float) -> np.ndarray:
    """[K, 5] wall-frame offsets (along the wall, off the wall, vertical [m], yaw, pitch [deg]) as scene-frame
    moves (dx, dy, dz [m], yaw, pitch [deg]) for a wall frame of yaw `frame_yaw_deg` (`WallFrame.yaw_deg`)."""
    off = np.asarray(offsets, float).reshape(-1, 5)
    along, out = offset_axes(frame_yaw_deg)
    moved_xyz = off[:, :1] * along + off[:, 1:2] * out + off[:, 2:3] * np.array([0.0, 0.0, 1.0])
    return np.concatenate([moved_xyz, off[:, 3:]], axis=1)


def offset_pose(pose: PlatePose, off, frame_yaw_deg: float) -> PlatePose:
    """The pose moved by one wall-frame offset (along the wall, off the wall, vertical [m] in the frame of
    yaw `frame_yaw_deg`; yaw, pitch [deg] of the plate)."""
    d = world_offsets(off, frame_yaw_deg)[0]
    return PlatePose(pose.x + float(d[0]), pose.y + float(d[1]), pose.z + float(d[2]), pose.yaw_deg + float(d[3]),
                     pose.pitch_deg + float(d[4]))


def frames(rs, exp) -> list[WallFrame]:
    """Per plate, the wall frame of its tolerance box: `rs.wall_frames()` (the scene's walls, found once), or
    from the mounting boxes alone for a truth without scene geometry (a test double)."""
    found = getattr(rs, "wall_frames", None)
    return found() if found is not None else [find_frame(r) for r in exp.plates()]


def moved(pose: JointPose, plate: int, off, frame_yaw_deg: float) -> JointPose:
    """The joint pose with plate `plate` moved by one offset (`offset_pose`), the other plates nominal."""
    plates = list(pose.plates)
    plates[plate] = offset_pose(plates[plate], np.asarray(off, float), frame_yaw_deg)
    return JointPose(plates=plates)


def box_poses(pose: JointPose, offsets, frame_yaws) -> list[JointPose]:
    """Each plate's box in turn (the other plates nominal): the joint poses, plate by plate. `offsets`: one
    [M, 5] array for every plate, or a list of one array per plate (each plate's own tolerance);
    `frame_yaws`: per plate, its wall frame's yaw [deg]."""
    per_plate = offsets if isinstance(offsets, list) else [offsets] * len(pose.plates)
    return [moved(pose, k, off, frame_yaws[k]) for k in range(len(pose.plates)) for off in per_plate[k]]


def plate_offsets(exp, scale: float = 1.0, interior: int = INTERIOR_POSES, seed: int | None = None) -> list:
    """Per plate, its tolerance box's offsets (`box_offsets` of its own `tolerance`, scaled)."""
    seed = exp.search.seed if seed is None else seed
    return [box_offsets(half_widths(r.tolerance) * scale, interior, seed) for r in exp.plates()]


def box_cost(exp) -> int:
    """Truth evaluations of one whole tolerance box: every plate's corners and interior poses."""
    return int(sum(len(o) for o in plate_offsets(exp)))


def _scene_cuts(rs, poses) -> list:
    """`rs.scene_cuts(poses)` (one ray launch), or no cut for a truth without scene geometry (a test double)."""
    scene_cuts = getattr(rs, "scene_cuts", None)
    return scene_cuts(poses) if scene_cuts is not None and poses else [None] * len(poses)


def check(rs, pose: JointPose, exp, *, scale: float = 1.0, samples_per_src: int | None = None,
          nominal_rss=None, interior: int = INTERIOR_POSES, seed: int | None = None,
          fail_fast: bool = False, stop_at_score: float | None = None,
          order=None) -> tuple[ToleranceCheck, dict]:
    """Truth at every pose of the tolerance box (scaled by `scale`) around `pose`.

    A pose of the box whose plate cuts through scene geometry (`rs.scene_cuts`, one ray launch for the
    whole box) is never ray-traced: the plate could not be mounted there, so the box fails (`cut_by` names
    what it cuts; `failing_offsets` lists such offsets first).
    fail_fast: stop at the first pose that loses coverage (the check then says `holds: false` and its worst
    case is over the poses checked so far; `complete` says which); a box with a cut then traces nothing.
    stop_at_score: stop likewise at the first pose (the nominal one included) whose `score` is not above it:
    the box's worst case is then known to be no better (the worst-case polish's refutation).
    Returns the check and the raw figures: {"offsets" [M, 5], "rss" [M, N] dBm (-inf: no path), "covered" [M]
    bool (the M poses traced), "plates" [M] (the plate each offset moves), "nominal" [N], "cut_offsets" [C, 5],
    "evaluations"}.
    `nominal_rss`: the truth at the pose itself if known (saves one evaluation).
    `order`: the box poses' indices in the order to trace them (e.g. worst first by a model; default: the
    box's own order); "offsets", "rss" and "plates" come back in the order traced."""
    tol = exp.plates()[0].tolerance
    thr = exp.objective.coverage_threshold_dbm
    objective = objectives.of(exp, rs)
    names = [r.name for r in exp.plates()]
    per_plate = plate_offsets(exp, scale, interior, seed)
    yaws = [f.yaw_deg for f in frames(rs, exp)]
    poses = box_poses(pose, per_plate, yaws)
    all_offsets = np.vstack(per_plate).reshape(-1, 5)  # aligned with `poses`
    owner = np.concatenate([np.full(len(o), k) for k, o in enumerate(per_plate)]).astype(int)
    cuts = _scene_cuts(rs, poses)
    cut = np.array([c is not None for c in cuts], bool)
    nominal = np.asarray(nominal_rss, float) if nominal_rss is not None else \
        rs.rss_dbm(pose, samples_per_src=samples_per_src)
    rows, traced = [], []
    early = fail_fast or stop_at_score is not None

    def stops(r) -> bool:
        return ((fail_fast and not objective.holds(r))
                or (stop_at_score is not None and objective.score_rss(r) <= stop_at_score))

    nominal_stops = stop_at_score is not None and objective.score_rss(nominal) <= stop_at_score
    for i in [] if nominal_stops else (range(len(poses)) if order is None else order):
        p = poses[i]
        if cut[i] or (early and cut.any()):
            continue  # never traced: a cut fails the box (fail-fast: at once)
        rows.append(rs.rss_dbm(p, samples_per_src=samples_per_src))
        traced.append(i)
        if stops(rows[-1]):
            break
    traced = np.array(traced, int)
    offsets = all_offsets[traced] if len(traced) else np.zeros((0, 5))
    rss = np.array(rows).reshape(len(rows), -1) if rows else np.zeros((0, len(nominal)))
    all_rss = np.vstack([nominal[None, :], rss])
    covered = objective.holds_each(all_rss)
    worst_per_target = all_rss.min(axis=0)
    per_pose = [objective.stats(r) for r in all_rss]
    worst_i = int(np.argmin([objective.score(s) for s in per_pose]))
    examined = len(traced) + int(cut.sum())  # poses whose outcome is known (traced, or cut)
    first_cut = int(np.flatnonzero(cut)[0]) if cut.any() else None
    plates = []
    for k, r in enumerate(exp.plates()):
        mine = np.flatnonzero(owner[traced] == k) if len(traced) else np.zeros(0, int)
        cut_k = np.flatnonzero(cut & (owner == k))
        sub = np.vstack([nominal[None, :], rss[mine]])
        plates.append(PlateTolerance(
            name=r.name, position_m=float(r.tolerance.position_m) * scale, yaw_deg=float(r.tolerance.yaw_deg) * scale,
            pitch_deg=float(r.tolerance.pitch_deg) * scale, poses_checked=int(mine.size),
            complete=int(mine.size) + int(cut_k.size) == int(np.sum(owner == k)),
            holds=bool(covered[1:][mine].all()) and not cut_k.size,
            worst_min_rss_dbm=rss_stats(objective.wanted(sub.min(axis=0)), thr).min_rss_dbm,
            worst_coverage=float(min([per_pose[0].coverage] + [per_pose[1 + i].coverage for i in mine])),
            cut_by=cuts[cut_k[0]][1] if cut_k.size else None))
    nom, worst = per_pose[0], objective.stats(worst_per_target)
    result = ToleranceCheck(
        position_m=float(tol.position_m) * scale, yaw_deg=float(tol.yaw_deg) * scale,
        pitch_deg=float(tol.pitch_deg) * scale, poses_checked=len(rows) + 1,
        complete=examined == len(poses),
        nominal=nom, worst=worst, nominal_min_rss_dbm=nom.min_rss_dbm, worst_min_rss_dbm=worst.min_rss_dbm,
        worst_coverage=float(min(s.coverage for s in per_pose)), holds=bool(covered.all()) and not cut.any(),
        worst_offset=(np.zeros(5) if worst_i == 0 else offsets[worst_i - 1]).tolist(),
        samples_per_src=int(samples_per_src or exp.solver.samples_per_src), pose=pose,
        target_worst_dbm=[float(v) if has_path(v) else None for v in worst_per_target],
        failing_offsets=all_offsets[cut].tolist() + _worst_first(offsets, rss, covered[1:], objective), plates=plates,
        cut_by=None if first_cut is None else
        f"plate {names[cuts[first_cut][0]]!r} cuts {cuts[first_cut][1]!r}",
        cut_offset=None if first_cut is None else all_offsets[first_cut].tolist())
    return result, {"offsets": offsets, "plates": owner[traced] if len(traced) else np.zeros(0, int),
                    "rss": rss, "covered": covered[1:], "nominal": nominal,
                    "cut_offsets": all_offsets[cut], "evaluations": len(rows) + (0 if nominal_rss is not None else 1)}


def _worst_first(offsets, rss, covered, objective) -> list[list[float]]:
    bad = np.flatnonzero(~covered)
    order = sorted(bad, key=lambda i: objective.score_rss(rss[i]))
    return [offsets[i].tolist() for i in order]


def nominal_meets(rs, exp, chk: ToleranceCheck, objective=None) -> bool:
    """Whether the checked pose itself meets the objective's requirement (else no box of it can hold, and
    neither a smaller tolerance nor a larger plate at it would help)."""
    return (objective or objectives.of(exp, rs)).met(chk.nominal)


def margin(rs, exp, chk: ToleranceCheck, *, samples_per_src: int | None = None) -> tuple[float, int]:
    """The largest scale s in [0, 1] of the requested box over which coverage still holds, by bisection on
    truth: bisect on the probe set (first the worst offset at s = 1), then confirm at the found scale on the
    offsets that failed at s = 1 and on the whole box; an offset that fails there joins the probe set and
    the bracket shrinks. Returns (scale, truth evaluations spent)."""
    objective = objectives.of(exp, rs)
    if chk.holds:
        return 1.0, 0
    if not nominal_meets(rs, exp, chk, objective):
        return 0.0, 0  # the pose itself does not meet the objective's requirement: no box does
    pose = chk.pose
    spent = 0
    yaws = [f.yaw_deg for f in frames(rs, exp)]

    def first_failure(offsets, s):
        """Index of the first offset (scaled by s) that loses coverage, or None."""
        nonlocal spent
        scaled = [o * s for o in offsets] if isinstance(offsets, list) else offsets * s
        flat = np.vstack(offsets) if isinstance(offsets, list) else np.vstack([offsets] * len(pose.plates))
        poses = box_poses(pose, scaled, yaws)
        cuts = _scene_cuts(rs, poses)
        for i, p in enumerate(poses):
            if cuts[i] is not None:
                return flat[i]  # the plate cuts the scene there: a failure, not traced
            spent += 1
            r = rs.rss_dbm(p, samples_per_src=samples_per_src)
            if not objective.holds(r):
                return flat[i]
        return None

    failing = np.array(chk.failing_offsets, float).reshape(-1, 5)
    probe = failing[:1]
    full = plate_offsets(exp)
    lo, hi = 0.0, 1.0
    for _ in range(4):
        for _ in range(MARGIN_BISECTIONS):
            mid = 0.5 * (lo + hi)
            if first_failure(probe, mid) is None:  # a failing offset is tried on every plate
                lo = mid
            else:
                hi = mid
        if lo == 0.0:
            break
        bad = None
        for offsets in (failing, full):
            bad = first_failure(offsets, lo)
            if bad is not None:
                break
        if bad is None:
            break
        probe = np.vstack([probe, bad[None, :]])
        hi, lo = lo, 0.0
    return lo, spent


def suggestions(rs, exp, check: ToleranceCheck, scale: float) -> list[str]:
    """What would make coverage hold: a tighter mounting tolerance, or a larger plate (estimated by the
    image method: the plate that keeps the specular point of every target that lost coverage on it).
    `targets`: the scene's targets [N, 3] (`RadioScene.targets`; default: the experiment's, no area drops)."""
    if check.holds:
        return []
    if check.cut_by is None and not nominal_meets(rs, exp, check):
        # not the tolerance: the pose itself does not meet the requirement (no smaller box, no larger plate at it)
        return [f"the pose itself does not meet the objective ({fmt_pct(check.nominal.coverage)} of the targets "
                "covered there): no mounting tolerance or plate size at this pose would make it hold"]
    tol = exp.plates()[0].tolerance
    out = []
    if check.cut_by is not None:
        off = ", ".join(f"{v:+g}" for v in (check.cut_offset or []))
        out.append(f"{check.cut_by} at the box offset ({off}) (along, off the wall, up [m], yaw, pitch [deg]): "
                   "the plate could not be mounted there; move the pose away from it")
    if scale > 0:
        out.append(f"coverage holds for a mounting tolerance of ±{100 * tol.position_m * scale:.1f} cm / "
                   f"±{tol.yaw_deg * scale:.2f}° ({scale:.0%} of the requested ±{100 * tol.position_m:.1f} cm / "
                   f"±{tol.yaw_deg:g}°)")
    thr = exp.objective.coverage_threshold_dbm
    n = getattr(rs, "n_targets", None)  # the targets (objective.protect's points follow them)
    worst = (check.target_worst_dbm or [])[:n]
    lost = np.array([v is None or v < thr for v in worst], bool) if worst else None
    size = (larger_plate(exp, check.pose, lost, frames(rs, exp)[0].yaw_deg, rs.targets[:n])
            if len(exp.plates()) == 1
            else None)  # which plate: unknown
    if size is not None:
        w, h = exp.plates()[0].size_m
        out.append(f"{'or ' if out else ''}a plate of about {size[0]:.2f} m × {size[1]:.2f} m (now {w:g} m × "
                   f"{h:g} m) at this pose keeps those targets' specular points on it over the whole box "
                   "(image-method estimate)")
    return out


def larger_plate(exp, pose: JointPose | None, targets_mask=None,
                 frame_yaw_deg: float = 0.0, targets=None) -> tuple[float, float] | None:
    """Width and height [m] that would keep the specular point of every (Tx, target) in `targets_mask` on
    the first plate at every corner of the tolerance box (wall frame of yaw `frame_yaw_deg`; geometric optics;
    None if it needs no change)."""
    from optimizer.physics.reflectors import kind_of

    if pose is None:
        return None
    plate = pose.first
    kind = kind_of(exp.plates()[0])  # its specular points
    size = kind.size
    need_a, need_b = 0.5 * size[0], 0.5 * size[1]
    targets = np.array(exp.target_points() if targets is None else targets, float).reshape(-1, 3)
    if targets_mask is not None and np.any(targets_mask):
        targets = targets[np.asarray(targets_mask, bool)]
    for off in corner_offsets(half_widths(exp.plates()[0].tolerance)):
        p = offset_pose(plate, off, frame_yaw_deg)
        for t in exp.transmitters:
            sp = kind.specular(p, t.position, targets)
            ok = sp.side_tx * sp.side_rx > 0
            if ok.any():
                need_a = max(need_a, float(np.abs(sp.a[ok]).max()))
                need_b = max(need_b, float(np.abs(sp.b[ok]).max()))
    if need_a <= 0.5 * size[0] and need_b <= 0.5 * size[1]:
        return None
    return (2 * need_a + 0.05, 2 * need_b + 0.05)


def along_yaw_grid(rs, exp, pose: JointPose, steps, samples_per_src: int | None = None) -> dict:
    """Truth over offsets of the first plate along the wall (x) and in yaw (y), in units of the tolerance
    (`steps`, e.g. -2..2; the other axes nominal): {"along_m" [A], "yaw_deg" [Y], "min_rss_dbm" [Y, A]
    (-inf: a target without a path), "covered" [Y, A]}."""
    tol = exp.plates()[0].tolerance
    objective = objectives.of(exp, rs)
    along = np.array([s * max(tol.position_m, 0.01) for s in steps])
    yaw = np.array([s * max(tol.yaw_deg, 0.1) for s in steps])
    frame_yaw = frames(rs, exp)[0].yaw_deg
    mins = np.full((len(yaw), len(along)), -np.inf)
    cov = np.zeros((len(yaw), len(along)), bool)
    for i, dy in enumerate(yaw):
        for j, da in enumerate(along):
            off = np.array([da, 0.0, 0.0, dy, 0.0])
            p = JointPose(plates=[offset_pose(pose.first, off, frame_yaw), *pose.plates[1:]])
            r = rs.rss_dbm(p, samples_per_src=samples_per_src)
            mins[i, j] = float(np.min(objective.wanted(r)))
            cov[i, j] = objective.holds(r)
    return {"along_m": along, "yaw_deg": yaw, "min_rss_dbm": mins, "covered": cov}
