"""The wall a plate is mounted on: the frame of its mounting tolerance, and the figures to mount it by.

A bracket's errors are along the wall, off the wall and vertical, whatever the plate's yaw. So each plate's
tolerance box is taken in the frame of its wall (`WallFrame`), found once per run from the plate's mounting
box (`reflector.bounds`, `yaw_deg`) and the scene, never per pose (the box stays put while the plate turns):

1. `site`: a known wall (`Wall`, from the scene's `site.json`: `RadioScene.site_walls`): the one the plate
   names (`reflector.mounted_on_wall`, set by a mounting box given by wall), else the nearest one behind
   the box's centre within WALL_SEARCH_M (`find_frame(walls=...)`);
2. `mesh`: the nearest large vertical face of the scene mesh (`faces`, from `RadioScene.wall_faces`) within
   WALL_SEARCH_M of the box's centre whose plane the plate, at the middle of its yaw range, faces (within
   WALL_MAX_ANGLE_DEG; any face where the yaw range is 180 deg or wider); its object's coplanar faces give
   the wall's ends;
3. `bounds`: the mounting box's frame (`bounds.frame`) where it has one, else its long horizontal axis is
   along the wall;
4. `plate`: a box with no long horizontal axis: the plate's own frame at the middle of its yaw range.

Of the two yaws that describe one wall line, the frame takes the one nearer the middle of the plate's yaw
range, so a plate parallel to its wall has the same box, offsets and signs as the plate's own frame.

`mount_figures` turns a pose and its frame into `winner.mount` (`optimizer.records.Mount`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optimizer.constants import (MOUNT_ROUND_DEG, MOUNT_ROUND_LATLON_DIGITS, MOUNT_ROUND_M, WALL_COPLANAR_M, WALL_MAX_ANGLE_DEG, WALL_MIN_AREA_M2,
                                 WALL_SEARCH_M, WALL_VERTICAL_TOL_DEG)
from optimizer.physics.geometry import plate_frame
from optimizer.records import Mount, PlatePose, WallFrame


@dataclass(frozen=True)
class Wall:
    """A known wall in plan (a site's walls, `RadioScene.site_walls`): its id and its two ends [x, y] [m];
    optionally its heights [z0, z1] [m] and `outward_right`: its face is on the right of start -> end (as in
    site.json), so a plate behind it (inside the building) is not mounted on it."""

    id: str
    start: tuple[float, float]
    end: tuple[float, float]
    z_m: tuple[float, float] | None = None
    outward_right: bool = False


@dataclass
class Faces:
    """Scene triangles: vertices [F, 3, 3] [m] and the name of the object each belongs to [F]."""

    tri: np.ndarray
    names: list[str]


def angle_diff_deg(a: float, b: float) -> float:
    """a - b wrapped into [-180, 180) [deg]."""
    return (float(a) - float(b) + 180.0) % 360.0 - 180.0


def mid_yaw_deg(refl) -> float:
    """The middle of a reflector's yaw range [deg] (the plate's reference orientation)."""
    return 0.5 * (float(refl.yaw_deg.min) + float(refl.yaw_deg.max))


def _nearer(yaw_deg: float, ref_deg: float) -> float:
    """Of the two yaws of one wall line (yaw, yaw + 180), the one nearer `ref_deg`, in (-180, 180]."""
    a = yaw_deg if abs(angle_diff_deg(yaw_deg, ref_deg)) <= 90.0 else yaw_deg + 180.0
    a = (a + 180.0) % 360.0 - 180.0
    return 180.0 if a == -180.0 else a


def _yaw_of_normal(nx: float, ny: float) -> float:
    """The yaw of a plate whose normal is (nx, ny, 0) [deg] (normal = (-sin yaw, cos yaw))."""
    return math.degrees(math.atan2(-nx, ny))


def _centre(refl) -> np.ndarray:
    return 0.5 * (np.array(refl.bounds.min, float) + np.array(refl.bounds.max, float))


def find_frame(refl, walls: list[Wall] | None = None, faces: Faces | None = None) -> WallFrame:
    """The wall frame of one reflector (see the module): from `walls` where one is near, else from the scene
    `faces`, else from its mounting box."""
    name = refl.name or "plate-1"
    ref = mid_yaw_deg(refl)
    c = _centre(refl)
    for find in (_from_walls, _from_faces):
        got = find(c, refl, walls if find is _from_walls else faces)
        if got is not None:
            normal, point, ends, wall_id, source = got
            return WallFrame(plate=name, yaw_deg=_nearer(_yaw_of_normal(*normal), ref), source=source,
                             wall_id=wall_id, point=[float(v) for v in point], normal=[float(v) + 0.0 for v in normal],
                             ends_m=[float(v) for v in ends] if ends is not None else None)
    box_frame = getattr(refl.bounds, "frame", None)
    if box_frame is not None:  # a box in a wall's frame (optimizer.experiment.box): along that wall
        return WallFrame(plate=name, yaw_deg=_nearer(box_frame.along_deg, ref), source="bounds")
    ext = np.array(refl.bounds.max, float)[:2] - np.array(refl.bounds.min, float)[:2]
    if ext.max() <= 1e-9 or abs(ext[0] - ext[1]) <= 1e-9:
        return WallFrame(plate=name, yaw_deg=_nearer(ref, ref), source="plate")
    return WallFrame(plate=name, yaw_deg=_nearer(0.0 if ext[0] > ext[1] else 90.0, ref), source="bounds")


def _faces_plate(refl, normal) -> bool:
    """Whether the plate at the middle of its yaw range faces a wall of this horizontal normal (any wall
    where the yaw range is 180 deg or wider)."""
    if float(refl.yaw_deg.max) - float(refl.yaw_deg.min) >= 180.0:
        return True
    n = plate_frame(mid_yaw_deg(refl))[2]
    return abs(n[0] * normal[0] + n[1] * normal[1]) >= math.cos(math.radians(WALL_MAX_ANGLE_DEG))


def _towards(normal: np.ndarray, point: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The horizontal unit normal, turned to the side of `c`."""
    n = np.asarray(normal, float)[:2]
    n = n / np.linalg.norm(n)
    return n if float(np.dot(c[:2] - point[:2], n)) >= 0 else -n


def _from_walls(c, refl, walls):
    """The wall the plate names (`mounted_on_wall`), else the nearest one behind the box centre `c` (in front
    of its face, within WALL_SEARCH_M, counting the height outside its z range) that the plate faces."""
    if not walls:
        return None
    named = getattr(refl, "mounted_on_wall", None)
    if named is not None and any(w.id == named for w in walls):
        walls = [w for w in walls if w.id == named]
    best = None
    for w in walls:
        a, b = np.array(w.start, float), np.array(w.end, float)
        d = b - a
        length = float(np.linalg.norm(d))
        if length <= 0:
            continue
        t = float(np.clip(np.dot(c[:2] - a, d) / length ** 2, 0.0, 1.0))
        dist = float(np.linalg.norm(c[:2] - (a + t * d)))
        if w.z_m is not None:
            dist = math.hypot(dist, max(0.0, w.z_m[0] - c[2], c[2] - w.z_m[1]))
        normal = _towards(np.array([-d[1], d[0]]), a, c)
        if w.id != named and (dist > WALL_SEARCH_M or not _faces_plate(refl, normal)
                              or (w.outward_right and float(np.dot(normal, [d[1], -d[0]])) < 0)):
            continue  # the named wall is taken as it is
        if best is None or dist < best[0]:
            along = d / length
            if float(np.dot(along, [-normal[1], normal[0]])) < 0:  # ends measured along the frame's `along`
                along = -along
            ends = sorted([0.0, float(np.dot(b - a, along))])
            best = (dist, (normal, a, ends, w.id, "site"))
    return None if best is None else best[1]


def _point_triangle_dist(c: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """[F] distance [m] from the point c to each triangle tri [F, 3, 3]."""
    a, b, d = tri[:, 0], tri[:, 1], tri[:, 2]
    n = np.cross(b - a, d - a)
    n = n / np.maximum(np.linalg.norm(n, axis=1), 1e-12)[:, None]
    h = np.einsum("fk,fk->f", c - a, n)
    p = c - h[:, None] * n
    inside = np.ones(len(tri), bool)
    for u, v in ((a, b), (b, d), (d, a)):
        inside &= np.einsum("fk,fk->f", np.cross(v - u, p - u), n) >= -1e-9
    edge = np.full(len(tri), np.inf)
    for u, v in ((a, b), (b, d), (d, a)):
        e = v - u
        t = np.clip(np.einsum("fk,fk->f", c - u, e) / np.maximum(np.einsum("fk,fk->f", e, e), 1e-12), 0.0, 1.0)
        edge = np.minimum(edge, np.linalg.norm(c - (u + t[:, None] * e), axis=1))
    return np.where(inside, np.abs(h), edge)


def _from_faces(c, refl, faces: Faces | None):
    if faces is None or not len(faces.tri):
        return None
    tri = np.asarray(faces.tri, float)
    cr = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norm = np.linalg.norm(cr, axis=1)
    area = 0.5 * norm
    unit = cr / np.maximum(norm, 1e-12)[:, None]
    vertical = np.abs(unit[:, 2]) <= math.sin(math.radians(WALL_VERTICAL_TOL_DEG))
    ok = vertical & (area >= WALL_MIN_AREA_M2)
    ok &= np.array([_faces_plate(refl, u[:2] / max(np.linalg.norm(u[:2]), 1e-12)) for u in unit], bool)
    if not ok.any():
        return None
    dist = np.where(ok, _point_triangle_dist(c, tri), np.inf)
    i = int(np.argmin(dist))
    if dist[i] > WALL_SEARCH_M:
        return None
    point = tri[i, 0]
    normal = _towards(unit[i], point, c)
    along = np.array([-normal[1], normal[0]])  # the frame's `along` of the yaw whose normal is `normal`
    # the wall: this object's faces in the same plane (within WALL_COPLANAR_M and 1 degree)
    same = np.array([n == faces.names[i] for n in faces.names], bool) & vertical
    same &= np.abs(unit[:, :2] @ normal) >= math.cos(math.radians(1.0))
    same &= np.abs((tri[:, 0, :2] - point[:2]) @ normal) <= WALL_COPLANAR_M
    s = (tri[same][:, :, :2].reshape(-1, 2) - point[:2]) @ along
    return normal, point[:2], [float(s.min()), float(s.max())], faces.names[i], "mesh"


def frame_label(frame: WallFrame) -> str:
    """How the report and the CLI name a frame, e.g. "wall 'building_5' (scene mesh), yaw 90°"."""
    what = {"site": f"site.json wall {frame.wall_id!r}", "mesh": f"wall {frame.wall_id!r} (scene mesh)",
            "bounds": "the mounting box's long horizontal axis (no wall found)",
            "plate": "the plate at the middle of its yaw range (no wall found, no long axis)"}[frame.source]
    return f"{what}, yaw {frame.yaw_deg:.1f}°"


def offset_axes(frame_yaw_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """(along, out) [3] unit vectors of a wall frame of this yaw (horizontal): a plate's width axis and normal
    at this yaw."""
    u, _, n = plate_frame(frame_yaw_deg)
    return u, n


def _round(v: float | None, step: float) -> float | None:
    return None if v is None else round(round(float(v) / step) * step, 6)


def angle_to_wall_deg(yaw_deg: float, frame: WallFrame) -> float:
    """The angle between a plate of this yaw and its wall in plan, in [0, 90] [deg] (plates are two-sided)."""
    d = abs(angle_diff_deg(yaw_deg, frame.yaw_deg))
    return min(d, 180.0 - d)


def mount_figures(pose: PlatePose, frame: WallFrame, refl, ground_z: float | None = None,
                  north_yaw_deg: float | None = None, lat_lon_deg: tuple[float, float] | None = None) -> Mount:
    """`winner.mount` of one plate: where on its wall and how it is turned (see `Mount`), rounded to
    MOUNT_ROUND_M / MOUNT_ROUND_DEG. `ground_z`: the first surface below the plate centre [m] (None: z = 0);
    `north_yaw_deg`: for a geo-referenced site, the yaw of a plate whose normal points north [deg] (None:
    no bearing); `lat_lon_deg`: the plate centre's latitude and longitude there (rounded to
    MOUNT_ROUND_LATLON_DIGITS decimals)."""
    c = np.array(pose.position, float)
    along_m = from_end = standoff = None
    if frame.point is not None and frame.normal is not None:
        p, n = np.array(frame.point, float), np.array(frame.normal, float)
        standoff = abs(float(np.dot(c[:2] - p, n)))
        if frame.ends_m is not None:
            along = np.array([-n[1], n[0]])
            s = float(np.dot(c[:2] - p, along))
            lo, hi = frame.ends_m
            end = lo if s - lo <= hi - s else hi
            along_m, from_end = abs(s - end), (p + end * along).tolist()
    bearing = None
    if north_yaw_deg is not None:
        # the plate's normal on the side away from the wall (its own +n where no wall is known)
        n_yaw = pose.yaw_deg
        if frame.normal is not None:
            n_h = plate_frame(pose.yaw_deg)[2]  # the plate's horizontal normal
            if n_h[0] * frame.normal[0] + n_h[1] * frame.normal[1] < 0:
                n_yaw += 180.0
        bearing = (-(n_yaw - north_yaw_deg)) % 360.0  # compass bearings turn clockwise
    tol = refl.tolerance
    return Mount(
        plate=frame.plate, frame=frame, wall_id=frame.wall_id, along_m=_round(along_m, MOUNT_ROUND_M),
        from_end=None if from_end is None else [_round(v, MOUNT_ROUND_M) for v in from_end],
        height_m=_round(c[2] - (ground_z if ground_z is not None else 0.0), MOUNT_ROUND_M),
        ground="mesh" if ground_z is not None else "z=0", standoff_m=_round(standoff, MOUNT_ROUND_M),
        angle_to_wall_deg=_round(angle_to_wall_deg(pose.yaw_deg, frame), MOUNT_ROUND_DEG),
        bearing_deg=_round(bearing, MOUNT_ROUND_DEG) % 360.0 if bearing is not None else None,
        pitch_deg=_round(pose.pitch_deg, MOUNT_ROUND_DEG), yaw_deg=_round(pose.yaw_deg, MOUNT_ROUND_DEG),
        lat_deg=None if lat_lon_deg is None else round(float(lat_lon_deg[0]), MOUNT_ROUND_LATLON_DIGITS),
        lon_deg=None if lat_lon_deg is None else round(float(lat_lon_deg[1]), MOUNT_ROUND_LATLON_DIGITS),
        size_m=[float(v) for v in refl.size_m], material=str(refl.material),
        tolerance={"position_m": float(tol.position_m), "yaw_deg": float(tol.yaw_deg),
                   "pitch_deg": float(tol.pitch_deg)},
        rounding={"m": MOUNT_ROUND_M, "deg": MOUNT_ROUND_DEG})
