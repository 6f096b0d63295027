"""Radio scenes: load (builtin, folder, archive, S3 bundle), mount the plate, ray-trace the truth.

`RadioScene` owns one private Sionna scene with transmitters, one receiver per target and the plate.
Every number the product reports comes from `RadioScene.rss_dbm` (Sionna's PathSolver).
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np

from optimizer import backend
from optimizer.constants import PLATE_MATERIAL_NAME, PLATE_OBJECT_NAME, PLATE_PARKING_Z_M, RAY_EPSILON_M
from optimizer.errors import SceneError
from optimizer.geometry import Pose, plate_corners

BUILTIN_PREFIX = "builtin:"


def write_plate_ply(path: Path, size_m, corners: np.ndarray | None = None) -> Path:
    """A two-triangle rectangle: centred at the origin in the x-z plane (normal +y) or at `corners`."""
    if corners is None:
        hw, hh = 0.5 * size_m[0], 0.5 * size_m[1]
        corners = np.array([[-hw, 0, -hh], [hw, 0, -hh], [hw, 0, hh], [-hw, 0, hh]], float)
    lines = ["ply", "format ascii 1.0", "element vertex 4", "property float x", "property float y",
             "property float z", "element face 2", "property list uchar int vertex_indices", "end_header"]
    lines += [f"{x:.9g} {y:.9g} {z:.9g}" for x, y, z in corners]
    lines += ["3 0 1 2", "3 0 2 3"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def scene_source_path(scene: str, sha256: str | None = None) -> Path | str:
    """Resolve an experiment's `scene` to a local scene.xml path (or a builtin scene's path)."""
    import sionna.rt as rt

    if scene.startswith(BUILTIN_PREFIX):
        name = scene[len(BUILTIN_PREFIX):]
        path = getattr(rt.scene, name, None)
        if not isinstance(path, str):
            raise SceneError(f"scene: unknown builtin scene {name!r}; e.g. builtin:simple_street_canyon, "
                             "builtin:box, builtin:munich")
        return Path(path)
    from optimizer import assets

    folder = Path(scene)
    if scene.startswith("s3://") or scene.endswith((".zip", ".tar.gz", ".tgz")) or folder.is_dir():
        folder = assets.resolve_scene(scene, sha256)
    xml = folder / "scene.xml" if folder.is_dir() else folder
    if not xml.is_file():
        raise SceneError(f"scene: {scene}: no scene.xml found; give a folder holding scene.xml + meshes/")
    return xml


class RadioScene:
    """One private scene: transmitters, a receiver per target, the plate, and the truth solver."""

    def __init__(self, exp, device: str = "auto", threads: int | None = None, with_plate: bool = True,
                 scene_xml: Path | None = None):
        backend.init(device or exp.device, threads)
        import mitsuba as mi
        import sionna.rt as rt

        self.exp = exp
        self._mi, self._rt = mi, rt
        self.scene_xml = Path(scene_xml) if scene_xml is not None else Path(scene_source_path(exp.scene,
                                                                                              exp.scene_sha256))
        try:
            self.scene = rt.load_scene(str(self.scene_xml), merge_shapes=False)
        except Exception as err:  # noqa: BLE001
            raise SceneError(f"scene: {exp.scene}: cannot be loaded by Sionna ({str(err).splitlines()[0]})") \
                from None
        sc = self.scene
        sc.frequency = float(exp.frequency_hz)
        sc.tx_array = rt.PlanarArray(num_rows=1, num_cols=1, pattern="iso", polarization="V")
        sc.rx_array = rt.PlanarArray(num_rows=1, num_cols=1, pattern="iso", polarization="V")
        self.tx_power_dbm = np.array([t.power_dbm for t in exp.transmitters], float)
        for t in exp.transmitters:
            sc.add(rt.Transmitter(t.name, position=mi.Point3f(*map(float, t.position)), power_dbm=t.power_dbm))
        self.targets = np.array(exp.target_points(), float)
        for i, p in enumerate(self.targets):
            sc.add(rt.Receiver(f"target-{i}", position=mi.Point3f(*map(float, p))))
        self.solver = rt.PathSolver()
        self.plate = None
        self.pose: Pose | None = None
        self.evaluations = 0
        if with_plate:
            self._add_plate()

    # --- plate ---------------------------------------------------------------------------------------
    def _add_plate(self):
        import tempfile

        rt = self._rt
        size = self.exp.reflector.size_m
        tmp = Path(tempfile.mkdtemp(prefix="reflectopt-plate-"))
        ply = write_plate_ply(tmp / "plate.ply", size)
        mat = rt.ITURadioMaterial(PLATE_MATERIAL_NAME, "metal", thickness=float(self.exp.reflector.thickness_m))
        self.plate = rt.SceneObject(fname=str(ply), name=PLATE_OBJECT_NAME, radio_material=mat)
        self.scene.edit(add=[self.plate])
        shutil.rmtree(tmp, ignore_errors=True)
        self.park_plate()

    def set_pose(self, pose: Pose):
        mi = self._mi
        self.pose = pose
        self.plate.position = mi.Point3f(float(pose.x), float(pose.y), float(pose.z))
        # Sionna's orientation is (rotation about z, about y, about x) [rad]; our pitch tilts the normal
        # up about the plate's width axis (x before the yaw), i.e. Sionna's third angle.
        self.plate.orientation = mi.Point3f(math.radians(pose.yaw_deg), 0.0, math.radians(pose.pitch_deg))

    def park_plate(self):
        """Move the plate far below the scene: the scene then behaves as without it."""
        if self.plate is not None:
            self.set_pose(Pose(0.0, 0.0, PLATE_PARKING_Z_M, 0.0))
            self.pose = None

    def plate_vertices(self) -> np.ndarray:
        params = self.scene.mi_scene_params
        key = [k for k in params.keys() if PLATE_OBJECT_NAME in k and k.endswith("vertex_positions")][0]
        return np.array(params[key]).reshape(-1, 3)

    # --- truth ---------------------------------------------------------------------------------------
    def rss_dbm(self, pose: Pose | None = None, samples_per_src: int | None = None) -> np.ndarray:
        """Received power [dBm] per target (sum over all paths and transmitters) with the plate at `pose`
        (None: without the plate). -inf where no path reaches a target."""
        if pose is None:
            self.park_plate()
        else:
            self.set_pose(pose)
        s = self.exp.solver
        paths = self.solver(self.scene, max_depth=s.max_depth, samples_per_src=int(samples_per_src or
                                                                                    s.samples_per_src),
                            max_num_paths_per_src=int(samples_per_src or s.samples_per_src),
                            refraction=s.refraction, diffraction=s.diffraction, seed=s.seed)
        a_re, a_im = paths.a
        a2 = np.array(a_re, dtype=np.float64) ** 2 + np.array(a_im, dtype=np.float64) ** 2
        # [rx, rx_ant, tx, tx_ant, paths] -> [rx, tx]
        a2 = a2.reshape(a2.shape[0], a2.shape[1], a2.shape[2], -1).sum(axis=(1, 3))
        power_mw = a2 @ (10.0 ** (self.tx_power_dbm / 10.0))
        self.evaluations += 1
        with np.errstate(divide="ignore"):
            return 10.0 * np.log10(power_mw)

    def rss_dbm_with_grad(self, pose: Pose, focus, temperature_db: float):
        """Sionna's own autodiff (gradient mode `sionna`): RSS per target [dBm] and the gradient of the
        soft-min over the focus targets w.r.t. (x, y, z, yaw_deg, pitch_deg). Sees only path-length changes
        of existing paths (measured), so it is often exactly zero; errors give a zero gradient."""
        import drjit as dr

        mi = self._mi
        s = self.exp.solver
        params = [dr.opaque(mi.Float, float(v)) for v in pose.as_array()]
        for p in params:
            dr.enable_grad(p)
        grad = np.zeros(5)
        rss = None
        try:
            self.plate.position = mi.Point3f(params[0], params[1], params[2])
            self.plate.orientation = mi.Point3f(params[3] * (math.pi / 180.0), 0.0, params[4] * (math.pi / 180.0))
            self.solver.loop_mode = "evaluated"
            paths = self.solver(self.scene, max_depth=s.max_depth, samples_per_src=int(s.samples_per_src),
                                max_num_paths_per_src=int(s.samples_per_src), refraction=s.refraction,
                                diffraction=False, seed=s.seed)
            a_re, a_im = paths.a
            shape = tuple(a_re.shape)
            n_rx, n_tx, n_paths = shape[0], shape[2], int(np.prod(shape[4:])) if len(shape) > 4 else 1
            if n_paths > 0:
                a2 = dr.square(a_re.array) + dr.square(a_im.array)
                # Tx power per entry of the flattened [rx, rx_ant, tx, tx_ant, path] array [mW]
                w = np.tile(np.repeat(10.0 ** (self.tx_power_dbm / 10.0), shape[3] * n_paths),
                            n_rx * shape[1]).astype(np.float32)
                per_rx = dr.block_sum(a2 * mi.Float(w), shape[1] * n_tx * shape[3] * n_paths)
                db = dr.maximum(10.0 * dr.log(per_rx + 1e-30) / math.log(10.0), -200.0)
                rss = np.array(dr.detach(db), dtype=float)
                mask = np.asarray(focus, bool) if focus is not None else np.ones(rss.size, bool)
                pmin = dr.opaque(mi.Float, float(rss[mask].min()))
                e = dr.exp(-(db - pmin) / float(temperature_db)) * mi.Float(mask.astype(np.float32))
                obj = pmin - float(temperature_db) * dr.log(dr.sum(e) / float(mask.sum()))
                dr.backward(obj, flags=dr.ADFlag.Default | dr.ADFlag.AllowNoGrad)
                grad = np.nan_to_num(np.array([float(np.array(dr.grad(p)).reshape(-1)[0]) for p in params]))
        except Exception:  # noqa: BLE001 - Sionna's AD is a comparison mode: fall back to zero gradient
            grad = np.zeros(5)
        finally:
            self.solver.loop_mode = "symbolic"
            self.set_pose(pose)  # detached vertex buffer again
        if rss is None:
            rss = self.rss_dbm(pose)
        else:
            self.evaluations += 1
        return rss, grad

    # --- ray tests (detached) --------------------------------------------------------------------------
    def visible(self, origins: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """True where the segment origin->end hits no scene geometry (the plate is ignored: it is parked
        first and restored after)."""
        mi = self._mi
        pose = self.pose
        self.park_plate()
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
        hit = np.array(self.scene.mi_scene.ray_test(ray), dtype=bool)
        if pose is not None:
            self.set_pose(pose)
        return ~hit.reshape(-1)

    # --- export --------------------------------------------------------------------------------------
    def export_with_plate(self, pose: Pose, dest: Path) -> Path:
        """Write a Mitsuba/Sionna scene folder with the plate mounted at `pose` (loadable by load_scene)."""
        dest = Path(dest)
        src_dir = self.scene_xml.parent
        dest.mkdir(parents=True, exist_ok=True)
        text = self.scene_xml.read_text()
        for sub in ("meshes",):
            if (src_dir / sub).is_dir():
                shutil.copytree(src_dir / sub, dest / sub, dirs_exist_ok=True)
        write_plate_ply(dest / "meshes" / f"{PLATE_OBJECT_NAME}.ply", None,
                        corners=plate_corners(pose, self.exp.reflector.size_m))
        thickness = float(self.exp.reflector.thickness_m)
        bsdf = (f'    <bsdf type="itu-radio-material" id="{PLATE_MATERIAL_NAME}">\n'
                f'        <string name="type" value="metal"/>\n'
                f'        <float name="thickness" value="{thickness}"/>\n    </bsdf>\n')
        shape = (f'    <shape type="ply" id="mesh-{PLATE_OBJECT_NAME}" name="mesh-{PLATE_OBJECT_NAME}">\n'
                 f'        <string name="filename" value="meshes/{PLATE_OBJECT_NAME}.ply"/>\n'
                 f'        <boolean name="face_normals" value="true"/>\n'
                 f'        <ref id="{PLATE_MATERIAL_NAME}" name="bsdf"/>\n    </shape>\n')
        comment = f"    <!-- reflectopt: plate at {pose} -->\n"
        if re.search(r"</scene>\s*$", text) is None:
            raise SceneError(f"scene: {self.scene_xml}: no closing </scene> tag; cannot export winner scene")
        text = re.sub(r"</scene>\s*$", comment + bsdf + shape + "</scene>\n", text)
        (dest / "scene.xml").write_text(text)
        return dest
