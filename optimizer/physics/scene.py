"""Radio scenes: load (builtin, folder, archive, S3 bundle), mount the plates, ray-trace the truth.

`RadioScene` owns one private Sionna scene with transmitters, one receiver per target and the plates.
It is truth only: every number the product reports comes from `RadioScene.rss_dbm` (Sionna's PathSolver,
the plates' reflection by the experiment's plate model, `optimizer.physics.plate_model`).
Gradients come from elsewhere (`optimizer.search.modes`).

A plate that cuts through scene geometry (a wall, a building, the ground) could not be mounted there:
`RadioScene.scene_cuts` finds it with one Mitsuba ray launch against the scene without the plates, along
the `cut_segments` of every plate's reflector kind (`optimizer.physics.reflectors`; a flat plate: its 4
edges, its 2 diagonals, PLATE_CUT_LINES interior lines along each of its axes, and short segments across its
thickness (`reflector.thickness_m`) at its corners and centre). A surface met inside a segment is cut. Resolution: a surface that crosses the plate's outline
(every wall, slab or floor larger than the plate) or reaches a line of that grid is found, so what can be
missed is a cut that stays inside one cell of width/(PLATE_CUT_LINES + 1) x height/(PLATE_CUT_LINES + 1)
(for a 4 m x 2 m plate 1 m x 0.5 m), e.g. a thin pole through the middle of the plate; a plate parallel to
a surface is cut within half its thickness of it.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from optimizer.constants import (
    BUILTIN_SCENE_PREFIX,
    PLATE_MATERIAL_NAME,
    PLATE_OBJECT_NAME,
    PLATE_PARKING_Z_M,
    RAY_EPSILON_M,
    SCENE_FILE,
    SITE_FILE,
)
from optimizer.errors import SceneError
from optimizer.experiment import areas
from optimizer.physics import antenna, backend
from optimizer.physics.metrics import checked_rss, combine_dbm, noise_mw, worst_over_band
from optimizer.physics.plate_model import make_plate_model
from optimizer.physics.reflectors import kinds
from optimizer.records import JointPose, PlatePose

if TYPE_CHECKING:
    from optimizer.experiment import Experiment


def plate_object_name(index: int) -> str:
    """The scene object name of plate `index` (0-based)."""
    return PLATE_OBJECT_NAME if index == 0 else f"{PLATE_OBJECT_NAME}-{index + 1}"


def scene_source_path(scene: str, sha256: str | None = None) -> Path:
    """Resolve an experiment's `scene` to a local scene.xml path (or a builtin scene's path)."""
    import sionna.rt as rt

    if scene.startswith(BUILTIN_SCENE_PREFIX):
        name = scene[len(BUILTIN_SCENE_PREFIX):]
        path = getattr(rt.scene, name, None)
        if not isinstance(path, str):
            raise SceneError(f"scene: unknown builtin scene {name!r}; e.g. builtin:simple_street_canyon, "
                             "builtin:box, builtin:munich")
        return Path(path)
    from optimizer.store import assets

    folder = Path(scene)
    if scene.startswith("s3://") or scene.endswith((".zip", ".tar.gz", ".tgz")) or folder.is_dir() \
            or folder.name == SCENE_FILE:  # a scene.xml path is checked as its folder is
        folder = assets.resolve_scene(scene, sha256)
    xml = folder / SCENE_FILE if folder.is_dir() else folder
    if not xml.is_file():
        raise SceneError(f"scene: {scene}: no scene.xml found; give a folder holding scene.xml + meshes/")
    if xml.name != SCENE_FILE and (xml.parent / "meshes").is_dir():  # an XML under another name: at least
        from optimizer.store.bundle_files import bundle_files  # what the winner export copies is checked now

        bundle_files(xml.parent / "meshes", f"scene: {xml.parent / 'meshes'}")
    return xml


_PARKED = "parked"  # RadioScene._mounted: the plates are parked below the scene


class RadioScene:
    """One private scene: transmitters, a receiver per target, the plates, and the truth solver."""

    def __init__(self, exp: Experiment, device: str = "auto", threads: int | None = None, with_plate: bool = True,
                 scene_xml: Path | None = None):
        self.device = backend.init(device or exp.device, threads)
        import mitsuba as mi
        import sionna.rt as rt

        self.exp = exp
        self._mi, self._rt = mi, rt
        self.scene_xml = Path(scene_xml) if scene_xml is not None else scene_source_path(exp.scene,
                                                                                          exp.scene_sha256)
        try:
            self.scene = rt.load_scene(str(self.scene_xml), merge_shapes=False)
        except Exception as err:  # noqa: BLE001
            raise SceneError(f"scene: {exp.scene}: cannot be loaded by Sionna ({str(err).splitlines()[0]})") \
                from None
        sc = self.scene
        # a band (`frequency_hz` a list): the scene rests at its centre (radio maps, `serving_plates`, a single
        # `paths` solve); `rss_dbm` solves at every frequency (`at_frequency`)
        self.frequencies_hz = exp.frequencies_hz()
        self.frequency_hz = exp.centre_frequency_hz()
        sc.frequency = self.frequency_hz
        self.plates: list = []  # none yet: the area drop's ray test (`enclosing_objects`) runs on the scene alone
        self._occluder = None
        self.targets, self.targets_dropped = areas.outside_buildings(exp, self)  # targets.area: none in buildings
        # Antennas (optimizer.physics.antenna): Sionna holds one tx_array per scene, so transmitters of several
        # patterns are solved group by group (`_each_group`); the targets share one pattern.
        self.tx_specs = antenna.transmitter_specs(exp)
        self.rx_specs = antenna.target_specs(exp, self.targets)
        self.tx_groups = antenna.groups(self.tx_specs)
        sc.rx_array = antenna.planar_array(self.rx_specs[0])
        self.tx_power_dbm = np.array([t.power_dbm for t in exp.transmitters], float)
        self.tx_positions = np.array([t.position for t in exp.transmitters], float)
        self._tx_devices = [rt.Transmitter(t.name, position=mi.Point3f(*map(float, t.position)), power_dbm=t.power_dbm,
                                           orientation=mi.Point3f(*spec.orientation_rad))
                            for t, spec in zip(exp.transmitters, self.tx_specs)]
        self.active_tx: list[int] = []  # the transmitters in the Sionna scene now (one group)
        self._activate(0)
        for i, (p, spec) in enumerate(zip(self.targets, self.rx_specs)):
            sc.add(rt.Receiver(f"target-{i}", position=mi.Point3f(*map(float, p)),
                               orientation=mi.Point3f(*spec.orientation_rad)))
        self.noise_mw = noise_mw(exp.objective.bandwidth_hz, exp.objective.noise_figure_db)
        self.solver = rt.PathSolver(deterministic=exp.solver.deterministic)
        self.plates: list = []
        self.kinds = kinds(exp)  # each plate's reflector kind: its mesh, corners and scene-cut segments
        self.pose: JointPose | None = None
        self._mounted: JointPose | str | None = None  # what the plates' vertex buffers hold: a pose, PARKED, None
        self._occluder = None  # the scene without the plates, for the detached ray tests (built once)
        # a scene imported from a map (site.json beside scene.xml, `_read_site`): its known walls
        # (`optimizer.physics.wall.Wall`, before the mesh in `wall_frames`), its frame (`LocalFrame`: lat/lon)
        # and the yaw of a plate whose normal points to true north at its origin; None without a site.json
        self.site_walls = None
        self.site_frame = None
        self.site_north_yaw_deg = None
        self._read_site()
        self._wall_frames = None
        self.evaluations = 0
        if with_plate:
            self._add_plates()
        self.plate_model = make_plate_model(exp.solver.plate_model, self)

    # --- antenna groups ---------------------------------------------------------------------------------------
    def _activate(self, group: int):
        """Put transmitter group `group` (one pattern and polarisation) into the Sionna scene, the others out."""
        idx = self.tx_groups[group]
        if self.active_tx == idx:
            return
        self.scene.remove([self._tx_devices[i].name for i in self.active_tx])
        self.scene.tx_array = antenna.planar_array(self.tx_specs[idx[0]])
        for i in idx:
            self.scene.add(self._tx_devices[i])
        self.active_tx = list(idx)

    def _each_group(self):
        """Per transmitter group, with it active in the scene: its transmitter indices (one group: all)."""
        for g in range(len(self.tx_groups)):
            self._activate(g)
            yield self.active_tx

    # --- plates --------------------------------------------------------------------------------------------
    def _add_plates(self):
        rt = self._rt
        for k, (refl, kind) in enumerate(zip(self.exp.plates(), self.kinds)):  # in-memory meshes, no files
            mat = rt.ITURadioMaterial(f"{PLATE_MATERIAL_NAME}-{k}" if k else PLATE_MATERIAL_NAME, "metal",
                                      thickness=float(refl.thickness_m))
            self.plates.append(rt.SceneObject(mi_mesh=kind.mi_mesh(plate_object_name(k)), name=plate_object_name(k),
                                              radio_material=mat))
        self.scene.edit(add=self.plates)
        self._occluder = None
        self.park_plate()

    def set_pose(self, pose: JointPose | PlatePose):
        """Mount the plates at `pose`: their vertex buffers are written from the pose itself (absolute, so
        no drift accumulates over steps and no autodiff graph survives a gradient mode's solve)."""
        pose = JointPose.of(pose)
        if len(pose.plates) != len(self.plates):
            raise ValueError(f"a pose of {len(pose.plates)} plates for a scene with {len(self.plates)}")
        self.pose = pose
        if self._mounted == pose:  # already there: no vertex write, no rebuild of the acceleration structure
            return
        for k, (kind, p) in enumerate(zip(self.kinds, pose.plates)):
            self.write_plate_vertices(k, self._mi.Float(kind.corners(p).ravel().astype(np.float32)))
        self._mounted = pose

    def write_plate_vertices(self, index: int, flat_xyz):
        """Set plate `index`'s 4 vertices (a flat Dr.Jit Float of x, y, z in the PLY's corner order)."""
        params = self.scene.mi_scene_params
        params[self.plates[index].mi_mesh.id() + ".vertex_positions"] = flat_xyz
        params.update()
        self.scene.scene_geometry_updated()
        self._mounted = None  # written from outside a pose (or part of one): the next set_pose writes again

    def park_plate(self):
        """Move the plates far below the scene: the scene then behaves as without them."""
        self.pose = None
        if self._mounted == _PARKED:
            return
        for k, kind in enumerate(self.kinds[: len(self.plates)]):
            parked = PlatePose(0.0, 10.0 * k, float(PLATE_PARKING_Z_M), 0.0)
            self.write_plate_vertices(k, self._mi.Float(kind.corners(parked).ravel().astype(np.float32)))
        self._mounted = _PARKED

    def plate_vertices(self, index: int = 0) -> np.ndarray:
        params = self.scene.mi_scene_params
        return np.array(params[self.plates[index].mi_mesh.id() + ".vertex_positions"]).reshape(-1, 3)

    # --- truth -------------------------------------------------------------------------------------------------
    def paths(self, pose: JointPose | PlatePose | None = None, samples_per_src: int | None = None,
              max_depth: int | None = None, diffraction: bool | None = None):
        """Sionna paths with the plates at `pose` (None: without plates); `diffraction` overrides the
        solver setting for this solve."""
        if pose is None:
            self.park_plate()
        else:
            self.set_pose(pose)
        kw = self.exp.solver.path_solver_kwargs(samples_per_src, max_depth)
        if diffraction is not None:
            kw["diffraction"] = bool(diffraction)
        return self.solver(self.scene, **kw)

    def rss_dbm(self, pose: JointPose | PlatePose | None = None, samples_per_src: int | None = None,
                max_depth: int | None = None) -> np.ndarray:
        """Received power [dBm] per target (sum over all paths and transmitters) with the plates at `pose`
        (None: without plates), the plates' reflection by `solver.plate_model`. -inf where no path reaches a
        target.

        With diffraction on, the truth is two solves: the specular and refracted chains from a solve
        without diffraction, plus the paths with a diffraction from a solve with it. One solve with
        diffraction drops specular chains erratically (measured: a plate path 40 m from the plate came and
        went between 1e5, 2e5, 4e5 and 1e6 samples; without diffraction it is found at every count)."""
        return worst_over_band(self.band_rss_dbm(pose, samples_per_src, max_depth))

    def band_rss_dbm(self, pose: JointPose | PlatePose | None = None, samples_per_src: int | None = None,
                     max_depth: int | None = None) -> np.ndarray:
        """[num_frequencies, num_targets] `rss_dbm` at each frequency of `frequency_hz` (one row for a scalar):
        one truth evaluation, a PathSolver solve per frequency (`at_frequency`: Sionna's materials follow the
        scene's frequency; the plate model's PO factor follows the scene's wavelength). `rss_dbm` is each
        target's worst row."""
        self.evaluations += 1
        rows = []
        for f in self.frequencies_hz:
            with self.at_frequency(f):
                rows.append(self._to_dbm(self.power_per_tx(pose, samples_per_src, max_depth), pose))
        return np.stack(rows)

    @contextmanager
    def at_frequency(self, frequency_hz: float):
        """Within the block, the scene (materials, wavelength) and `frequency_hz` are at `frequency_hz`; back where
        they were (the band's centre, outside such blocks) after it. A frequency the scene is at already is not
        set again (one frequency: the scene is never touched)."""
        before = self.frequency_hz
        if frequency_hz == before:
            yield
            return
        self.scene.frequency = self.frequency_hz = float(frequency_hz)
        try:
            yield
        finally:
            self.scene.frequency = self.frequency_hz = before

    def power_per_tx(self, pose: JointPose | PlatePose | None = None, samples_per_src: int | None = None,
                     max_depth: int | None = None) -> np.ndarray:
        """[num_targets, num_tx] the path gain |a|^2 summed over paths (transmitter powers not included) of
        `rss_dbm`'s solves, each transmitter group with its own antenna array."""
        power = np.zeros((len(self.targets), len(self._tx_devices)))
        for idx in self._each_group():
            chains = self.paths(pose, samples_per_src, max_depth, diffraction=False)
            power[:, idx] = self.plate_model.power(chains)  # [rx, tx of the group]
            if self.exp.solver.diffraction:
                diffracted = self.paths(pose, samples_per_src, max_depth, diffraction=True)
                power[:, idx] += self.plate_model.power(diffracted, only_diffracted=True)
        return power

    def serving_plates(self, pose: JointPose | PlatePose, samples_per_src: int | None = None) -> list[str | None]:
        """Per target, the plate(s) on its strongest path at `pose` (the truth's paths and powers, as
        `rss_dbm` has them, transmitter powers included): the plate's name, several joined by '+' in bounce
        order, or None where the strongest path touches no plate."""
        names = [r.name for r in self.exp.plates()]
        ids = self.plate_model.plate_ids()
        num_r = len(self.targets)
        best = np.zeros(num_r)
        who: list[str | None] = [None] * num_r
        solves = [False] + ([True] if self.exp.solver.diffraction else [])
        for group, only_diffracted in [(g, d) for g in range(len(self.tx_groups)) for d in solves]:
            self._activate(group)
            w_tx = 10.0 ** (self.tx_power_dbm[self.active_tx] / 10.0)
            paths = self.paths(pose, samples_per_src, diffraction=only_diffracted)
            a2 = self.plate_model.path_powers(paths, only_diffracted) * w_tx[None, :, None]  # [R, T, P]
            if a2.shape[-1]:
                objects = np.array(paths.objects, dtype=np.uint32).reshape((-1,) + a2.shape)
                inter = np.array(paths.interactions, dtype=np.uint32).reshape((-1,) + a2.shape)
                flat = a2.reshape(num_r, -1)
                j = np.argmax(flat, axis=1)
                for r in np.flatnonzero(flat[np.arange(num_r), j] > best):
                    t, p = np.unravel_index(j[r], a2.shape[1:])
                    hit = [names[ids.index(int(o))] for o, i in zip(objects[:, r, t, p], inter[:, r, t, p])
                           if i != 0 and int(o) in ids]
                    best[r], who[r] = flat[r, j[r]], "+".join(hit) or None
            if not only_diffracted:
                off = self.plate_model.off_plate_powers(paths) * w_tx[None, :, None]  # [R, T, K]
                top = off.max(axis=1)
                for r in range(num_r):
                    k = int(np.argmax(top[r]))
                    if top[r, k] > best[r]:
                        best[r], who[r] = top[r, k], names[k]
        return who

    def rss_dbm_of(self, paths, plate_model=None, pose=None) -> np.ndarray:
        """Received power [dBm] per target of one Sionna solve `paths` traced at the current pose, by
        `plate_model` (default: the experiment's); one transmitter group only (the paths' own)."""
        if len(self.tx_groups) > 1:
            raise ValueError("rss_dbm_of: one Sionna solve holds one antenna group; use rss_dbm")
        return self._to_dbm((plate_model or self.plate_model).power(paths), pose)

    def _to_dbm(self, power, pose) -> np.ndarray:
        """Per target, the transmitters' path gains `power` [R, T] with their powers, combined by
        `objective.combine`: [dBm] (sum, best_server) or [dB] SINR (sinr)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            rss = combine_dbm(power * 10.0 ** (self.tx_power_dbm / 10.0), self.exp.combine(), self.noise_mw)
        return checked_rss(rss, f"truth {'without the plate' if pose is None else f'at {JointPose.of(pose)}'}")

    # --- ray tests (detached) ------------------------------------------------------------------------------
    def visible(self, origins: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """True where the segment origin->end hits no scene geometry, the plates ignored: one ray launch
        against the scene without them (`occluder`), whose acceleration structure is built once, so the
        plates need not be parked and restored (two rebuilds of the whole scene's) for each test."""
        return self.segments_clear(origins, ends, self.occluder())

    def occluder(self):
        """The Mitsuba scene of every shape but the plates (the same shape objects, no copy of the meshes),
        its acceleration structure built at the first call and kept: the plates never move in it."""
        if self._occluder is None:
            plate_ids = {p.mi_mesh.id() for p in self.plates}
            shapes = [s for s in self.scene.mi_scene.shapes() if s.id() not in plate_ids]
            self._occluder = self._mi.load_dict({"type": "scene", **{f"shape-{i}": s for i, s in enumerate(shapes)}})
        return self._occluder

    def segments_clear(self, origins: np.ndarray, ends: np.ndarray, mi_scene=None) -> np.ndarray:
        """True where the segment origin->end hits nothing in `mi_scene` (default: the scene as it stands,
        plates included, as mounted), RAY_EPSILON_M kept clear at both ends."""
        mi = self._mi
        o = np.atleast_2d(np.asarray(origins, float))
        e = np.atleast_2d(np.asarray(ends, float))
        o, e = np.broadcast_arrays(o, e)
        d = e - o
        dist = np.linalg.norm(d, axis=1)
        d = d / np.maximum(dist, 1e-12)[:, None]
        ray = mi.Ray3f(mi.Point3f(*[mi.Float(np.ascontiguousarray(o[:, k])) for k in range(3)]),
                       mi.Vector3f(*[mi.Float(np.ascontiguousarray(d[:, k])) for k in range(3)]))
        ray.maxt = mi.Float(np.maximum(dist - 2 * RAY_EPSILON_M, 0.0))
        ray.o = ray.o + ray.d * RAY_EPSILON_M
        hit = np.array((mi_scene if mi_scene is not None else self.scene.mi_scene).ray_test(ray), dtype=bool)
        return ~hit.reshape(-1)

    # --- the walls the plates are mounted on (`optimizer.physics.wall`) ------------------------------------
    def object_meshes(self):
        """(name, vertices [V, 3] [m], faces [F, 3]) of every scene object but the plates; an object whose mesh
        cannot be read is left out."""
        plates = {plate_object_name(k) for k in range(len(self.plates))}
        out = []
        for name, obj in self.scene.objects.items():
            if name in plates:
                continue
            try:
                m = obj.mi_mesh
                out.append((name, np.array(m.vertex_positions_buffer(), float).reshape(-1, 3),
                            np.array(m.faces_buffer(), np.int64).reshape(-1, 3)))
            except Exception:  # noqa: BLE001, S112 - an object we cannot read is simply left out
                continue
        return out

    def _read_site(self):
        """Fill `site_walls`, `site_frame` and `site_north_yaw_deg` from the scene's site.json, if it has one
        (the walls as `reflectopt scene walls` lists them)."""
        folder = self.scene_xml.parent
        if not (folder / SITE_FILE).is_file():
            return
        from optimizer.physics.wall import Wall
        from optimizer.sites.projection import LocalFrame
        from optimizer.sites.record import read_site, wall_of

        site = read_site(folder, f"scene: {self.exp.scene}")
        self.site_walls = [Wall(w.id, (w.x0, w.y0), (w.x1, w.y1), (w.z0, w.z1), outward_right=True)
                           for w in map(wall_of, site.get("walls") or [])]
        self.site_frame = LocalFrame.from_record(site["frame"])
        self.site_north_yaw_deg = self.site_frame.north_yaw_deg(0.0, 0.0)

    def wall_faces(self):
        """Every triangle of the scene but the plates, with its object's name (`wall.Faces`)."""
        from optimizer.physics.wall import Faces

        meshes = [(name, v[f]) for name, v, f in self.object_meshes() if len(f)]
        return Faces(np.concatenate([t for _, t in meshes]) if meshes else np.zeros((0, 3, 3)),
                     [name for name, t in meshes for _ in range(len(t))])

    def wall_frames(self):
        """Per plate, the wall frame of its mounting tolerance (`wall.find_frame`: `site_walls` where a site
        gives them, else the scene mesh, else the mounting box), found at the first call and kept."""
        from optimizer.physics.wall import find_frame

        if self._wall_frames is None:
            faces = self.wall_faces()
            self._wall_frames = [find_frame(r, self.site_walls, faces) for r in self.exp.plates()]
        return self._wall_frames

    def ground_below(self, point) -> float | None:
        """z [m] of the first scene surface straight below `point` (the plates ignored), or None."""
        mi = self._mi
        o = np.asarray(point, float)
        ray = mi.Ray3f(mi.Point3f(*[mi.Float([float(o[k])]) for k in range(3)]), mi.Vector3f(0.0, 0.0, -1.0))
        si = self.occluder().ray_intersect_preliminary(ray)
        if not bool(np.array(si.is_valid(), bool).reshape(-1)[0]):
            return None
        return float(o[2]) - float(np.array(si.t, float).reshape(-1)[0])

    # --- plates that cut the scene (detached ray tests) -----------------------------------------------------
    def plate_cuts(self, poses, plate_index) -> list[str | None]:
        """Per plate pose (`poses[i]` of plate `plate_index[i]`: its size and thickness), the name of the
        first scene object it cuts through, or None (resolution: see the module). One ray launch for every
        segment of every pose, against the scene without the plates (`occluder`)."""
        mi = self._mi
        import drjit as dr

        poses = list(poses)
        if not poses:
            return []
        segs = [self.kinds[k].cut_segments(p) for p, k in zip(poses, plate_index)]
        o = np.concatenate([a for a, _ in segs])
        d = np.concatenate([b for _, b in segs]) - o
        length = np.linalg.norm(d, axis=1)
        d = d / np.maximum(length, 1e-12)[:, None]
        ray = mi.Ray3f(mi.Point3f(*[mi.Float(np.ascontiguousarray(o[:, k])) for k in range(3)]),
                       mi.Vector3f(*[mi.Float(np.ascontiguousarray(d[:, k])) for k in range(3)]))
        ray.maxt = mi.Float(length)
        pi = self.occluder().ray_intersect_preliminary(ray)
        hit = np.array(pi.is_valid(), dtype=bool).reshape(-1)
        shape = np.array(dr.reinterpret_array(mi.UInt32, pi.shape), dtype=np.int64).reshape(-1)
        names = self._object_names()
        out, start = [], 0
        for a, _ in segs:
            mine = np.flatnonzero(hit[start:start + len(a)])
            out.append(names.get(int(shape[start + mine[0]]), "scene geometry") if mine.size else None)
            start += len(a)
        return out

    def scene_cuts(self, poses) -> list[tuple[int, str] | None]:
        """Per joint pose (or plate pose), (index of the first plate that cuts the scene, the object it cuts),
        or None where no plate does; every plate of every pose in one ray launch."""
        poses = [JointPose.of(p) for p in poses]
        flat = [(i, k, p) for i, pose in enumerate(poses) for k, p in enumerate(pose.plates)]
        cuts = self.plate_cuts([p for _, _, p in flat], [k for _, k, _ in flat])
        out: list[tuple[int, str] | None] = [None] * len(poses)
        for (i, k, _), name in zip(flat, cuts):
            if name is not None and out[i] is None:
                out[i] = (k, name)
        return out

    def cuts_scene(self, pose: JointPose | PlatePose) -> str | None:
        """The name of the first scene object a plate of `pose` cuts through, or None (see `scene_cuts`)."""
        cut = self.scene_cuts([pose])[0]
        return None if cut is None else cut[1]

    def geometry_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(min [3], max [3]) [m]: the bounding box of the scene's geometry, the plates left out."""
        bb = self.occluder().bbox()
        return np.array(bb.min, float).reshape(3), np.array(bb.max, float).reshape(3)

    def enclosing_objects(self, points) -> list[str | None]:
        """Per point, the scene object it lies inside, or None: the first surface met straight up and along
        +-x and +-y (one ray launch, the plates left out) belongs to one object in all five directions, as from
        inside a building, a wall or a slab. A room whose walls and ceiling are one object counts as inside it;
        a point below an open sky does not."""
        mi = self._mi
        import drjit as dr

        pts = np.atleast_2d(np.asarray(points, float))
        if pts.size == 0:
            return []
        dirs = np.array([[0, 0, 1], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], float)
        o = np.repeat(pts, len(dirs), axis=0)
        d = np.tile(dirs, (len(pts), 1))
        ray = mi.Ray3f(mi.Point3f(*[mi.Float(np.ascontiguousarray(o[:, k])) for k in range(3)]),
                       mi.Vector3f(*[mi.Float(np.ascontiguousarray(d[:, k])) for k in range(3)]))
        pi = self.occluder().ray_intersect_preliminary(ray)
        hit = np.array(pi.is_valid(), dtype=bool).reshape(len(pts), len(dirs))
        shape = np.array(dr.reinterpret_array(mi.UInt32, pi.shape), dtype=np.int64).reshape(len(pts), len(dirs))
        names = self._object_names()
        return [names.get(int(row[0]), "scene geometry") if ok.all() and (row == row[0]).all() else None
                for ok, row in zip(hit, shape)]

    def _object_names(self) -> dict[int, str]:
        """Sionna's object id (the Mitsuba shape pointer as an integer) -> the object's name, plates left out."""
        plates = {p.object_id for p in self.plates}
        return {int(o.object_id): name for name, o in self.scene.objects.items() if o.object_id not in plates}

    # --- export --------------------------------------------------------------------------------------------
    def export_with_plate(self, pose: JointPose | PlatePose, dest: Path) -> Path:
        """Write a Mitsuba/Sionna scene folder with the plates mounted at `pose` (loadable by load_scene)."""
        pose = JointPose.of(pose)
        dest = Path(dest)
        src_dir = self.scene_xml.parent
        dest.mkdir(parents=True, exist_ok=True)
        text = self.scene_xml.read_text()
        if (src_dir / "meshes").is_dir():  # files only: a link is refused, never followed or copied
            from optimizer.store.bundle_files import copy_bundle_files

            copy_bundle_files(src_dir / "meshes", dest / "meshes", f"scene: {src_dir}")
        if re.search(r"</scene>\s*$", text) is None:
            raise SceneError(f"scene: {self.scene_xml}: no closing </scene> tag; cannot export winner scene")
        added = ""
        for k, (refl, p) in enumerate(zip(self.exp.plates(), pose.plates)):
            name = plate_object_name(k)
            mat = f"{PLATE_MATERIAL_NAME}-{k}" if k else PLATE_MATERIAL_NAME
            self.kinds[k].write_mesh(dest / "meshes" / f"{name}.ply", p)
            added += (f"    <!-- reflectopt: plate {k + 1} at {p} -->\n"
                      f'    <bsdf type="itu-radio-material" id="{mat}">\n'
                      f'        <string name="type" value="metal"/>\n'
                      f'        <float name="thickness" value="{float(refl.thickness_m)}"/>\n    </bsdf>\n'
                      f'    <shape type="ply" id="mesh-{name}" name="mesh-{name}">\n'
                      f'        <string name="filename" value="meshes/{name}.ply"/>\n'
                      f'        <boolean name="face_normals" value="true"/>\n'
                      f'        <ref id="{mat}" name="bsdf"/>\n    </shape>\n')
        text = re.sub(r"</scene>\s*$", added + "</scene>\n", text)
        (dest / SCENE_FILE).write_text(text)
        return dest
