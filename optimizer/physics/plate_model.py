"""The plate's reflection model inside the truth (`solver.plate_model`, a registry: `PLATE_MODELS`).

Sionna's PathSolver reflects off a plate by geometric optics (GO): the power of an infinite mirror whenever
the specular point lies on the plate, none when it does not. A plate model turns Sionna's paths into the
received power per target and transmitter:

* `go`: Sionna's paths as they are.
* `po` (the default): physical optics (`optimizer.physics.po`).
  - Every specular interaction with a plate multiplies its path's power by |F|^2, F the PO factor of that
    plate for the path's virtual source and observer: the image source of the segments before the plate
    (the incoming direction, at the total unfolded length from the Tx to the plate hit) and the image
    receiver of those after it (the outgoing direction, at the total length to the Rx). Exact for
    specular and refracted segments (images); for a diffracted segment an approximation: its wave is
    taken as spherical from a point at the unfolded distance (the true diffracted wave is astigmatic).
  - Sionna's material reflection coefficient, polarisation and antenna patterns stay as they are (F is a
    scalar: it assumes the antennas' patterns and polarisation do not change across the plate as seen from
    the antennas, i.e. a plate small against the beam; a plate filling a sector antenna's beam edge is
    weighted by the gain toward its specular point alone).
  - Diffraction on a plate's own edges (only with `edge_diffraction: true`) is dropped: PO holds them.
  - The single-bounce plate paths GO drops but PO keeps (specular point just off the plate, or a path
    the ray sampling missed) are added: image-method geometry with the plate's infinite plane, both legs
    (Tx -> nearest plate point -> target) clear by ray tests, the metal's Fresnel coefficients and the
    antennas' patterns and polarisation toward the specular point (`po.mirror_gain` with the fields of
    `optimizer.physics.antenna`), times |F|^2; kept while |F|^2 is within
    `PO_OFF_PLATE_RANGE_DB` of |F_ref|^2, the same plate's factor with the geometry shifted so the
    specular point lies at its centre (the plate at its best for these legs). On the plate and off it
    the power follows the same |F|^2: no cliff at the edge.

Radio maps (Sionna's RadioMapSolver) show plate paths by GO whatever the model.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from optimizer.constants import PO_OFF_PLATE_RANGE_DB
from optimizer.physics import antenna, po
from optimizer.physics.geometry import position, wavelength_m
from optimizer.physics.reflectors import kinds
from optimizer.registry import PLATE_MODELS

_SPECULAR = 1  # sionna.rt.constants.InteractionType.SPECULAR
_DIFFRACTION = 8  # InteractionType.DIFFRACTION


class PlateModel:
    """Base class: `power(paths)` -> [num_rx, num_tx] sum of |a|^2 over a Paths object's paths."""

    name: ClassVar[str] = ""

    def __init__(self, radio_scene):
        self.rs = radio_scene

    @staticmethod
    def path_power(paths) -> np.ndarray:
        """[num_rx, num_tx, num_paths] |a|^2 as Sionna gives it, summed over a target's polarisation ports and
        averaged over a transmitter's (its power splits over them; one port each: |a|^2 itself)."""
        a_re, a_im = paths.a
        a2 = np.array(a_re, dtype=np.float64) ** 2 + np.array(a_im, dtype=np.float64) ** 2
        # [rx, rx_ant, tx, tx_ant, paths] -> [rx, tx, paths]
        return a2.sum(axis=1).mean(axis=2) if a2.ndim == 5 else a2.reshape(a2.shape[0], a2.shape[2], -1)

    def power(self, paths, only_diffracted: bool = False) -> np.ndarray:  # pragma: no cover - abstract
        """only_diffracted: the paths with at least one diffraction only (the second solve of a truth with
        diffraction, see `RadioScene.rss_dbm`): no single-bounce paths are added then."""
        raise NotImplementedError

    def path_powers(self, paths, only_diffracted: bool = False) -> np.ndarray:
        """[num_rx, num_tx, num_paths] each path's |a|^2 by this model (what `power` sums, the paths GO
        drops excepted: `off_plate_powers`)."""
        a2 = self.path_power(paths)
        if only_diffracted and a2.shape[-1]:
            a2 = np.where(self.diffracted(paths), a2, 0.0)
        return a2

    def off_plate_powers(self, paths) -> np.ndarray:
        """[num_rx, num_tx, num_plates] |a|^2 of the plate paths this model adds to Sionna's, per plate."""
        return np.zeros(self.path_power(paths).shape[:2] + (len(self.rs.plates),))

    def plate_ids(self) -> list[int]:
        """The scene object id of each plate, in plate order."""
        return [int(np.array(obj.object_id).reshape(-1)[0]) for obj in self.rs.plates]

    @staticmethod
    def diffracted(paths) -> np.ndarray:
        """[num_rx, num_tx, num_paths] whether a path has at least one diffraction."""
        kinds = np.array(paths.interactions, dtype=np.uint32)
        shape = PlateModel.path_power(paths).shape
        return np.any(kinds.reshape((-1,) + shape) & _DIFFRACTION, axis=0)


def register_plate_model(cls: type[PlateModel]) -> type[PlateModel]:
    """Class decorator: make `cls` a value of `solver.plate_model` under `cls.name`."""
    if not cls.name:
        raise ValueError(f"{cls.__name__}: a plate model needs a `name`")
    return PLATE_MODELS.register(cls.name, cls)


def make_plate_model(name: str, radio_scene) -> PlateModel:
    return PLATE_MODELS.get(name)(radio_scene)


@register_plate_model
class PoPlateModel(PlateModel):
    name = "po"

    def __init__(self, radio_scene):
        super().__init__(radio_scene)
        rs = radio_scene
        self.kinds = kinds(rs.exp)  # each plate's frame, specular points and PO factor
        self.ids = self.plate_ids()

    @property
    def frequency_hz(self) -> float:
        """The scene's frequency now (a band: the one being solved, `RadioScene.at_frequency`)."""
        return float(self.rs.frequency_hz)

    @property
    def wavelength(self) -> float:
        return wavelength_m(self.frequency_hz)

    @property
    def materials(self) -> list[tuple[float, float]]:
        """Per plate (relative permittivity, conductivity [S/m]) of its material at the scene's frequency now."""
        out = []
        for obj in self.rs.plates:
            mat = obj.radio_material
            out.append((float(np.array(mat.relative_permittivity).reshape(-1)[0]),
                        float(np.array(mat.conductivity).reshape(-1)[0])))
        return out

    @property
    def tx(self) -> np.ndarray:
        """[T, 3] the positions of the transmitters in the scene now (the active antenna group)."""
        return self.rs.tx_positions[self.rs.active_tx]

    def frames(self):
        """Per plate (centre, u, v, n) at the scene's current pose."""
        out = []
        for kind, p in zip(self.kinds, self.rs.pose.plates):
            out.append((position(p), *kind.frame(p)))
        return out

    def power(self, paths, only_diffracted: bool = False) -> np.ndarray:
        a2 = self.path_power(paths)
        if only_diffracted and a2.shape[-1]:
            a2 = np.where(self.diffracted(paths), a2, 0.0)
        if self.rs.pose is None:  # plates parked: nothing to model
            return a2.sum(-1)
        if a2.shape[-1]:
            a2 = a2 * self.path_factors(paths)
        return a2.sum(-1) if only_diffracted else a2.sum(-1) + self.off_plate_power(paths)

    def path_powers(self, paths, only_diffracted: bool = False) -> np.ndarray:
        a2 = super().path_powers(paths, only_diffracted)
        if self.rs.pose is not None and a2.shape[-1]:
            a2 = a2 * self.path_factors(paths)
        return a2

    def off_plate_powers(self, paths) -> np.ndarray:
        return self.off_plate_power(paths, per_plate=True)

    # --- paths Sionna found -----------------------------------------------------------------------------------
    def _arrays(self, paths):
        """objects, interactions [D, R, T, P], vertices [D, R, T, P, 3], valid [R, T, P] as numpy."""
        shape = self.path_power(paths).shape
        objects = np.array(paths.objects, dtype=np.uint32).reshape((-1,) + shape)
        inter = np.array(paths.interactions, dtype=np.uint32).reshape((-1,) + shape)
        verts = np.array(paths.vertices, dtype=np.float64).reshape((-1,) + shape + (3,))
        valid = np.array(paths.valid, dtype=bool).reshape(shape)
        return objects, inter, verts, valid

    def path_factors(self, paths) -> np.ndarray:
        """[R, T, P] the power factor of every path: the product of |F|^2 over its specular interactions
        with a plate (1 for a path that does not touch a plate, 0 for diffraction on a plate's edge)."""
        objects, inter, verts, valid = self._arrays(paths)
        factors = np.ones(valid.shape)
        plate_hit = np.isin(objects, self.ids) & valid[None]
        factors[(plate_hit & (inter == _DIFFRACTION)).any(axis=0)] = 0.0
        d_idx, r_idx, t_idx, p_idx = np.nonzero(plate_hit & (inter == _SPECULAR))
        if d_idx.size == 0:
            return factors
        rx = self.rs.targets
        # chain: Tx, the path's vertices (unused depths -> the Rx), Rx
        used = inter[:, r_idx, t_idx, p_idx].T != 0  # [M, D]
        v = np.transpose(verts[:, r_idx, t_idx, p_idx], (1, 0, 2))  # [M, D, 3]
        v = np.where(used[..., None], v, rx[r_idx][:, None, :])
        chain = np.concatenate([self.tx[t_idx][:, None, :], v, rx[r_idx][:, None, :]], axis=1)
        source, observer = virtual_ends(chain, d_idx)
        f2 = np.ones(d_idx.size)
        obj = objects[d_idx, r_idx, t_idx, p_idx]
        for k, pid in enumerate(self.ids):
            sel = obj == pid
            if sel.any():
                f2[sel] = np.abs(self.kinds[k].po_factor(source[sel], observer[sel], self.rs.pose.plates[k],
                                                         self.wavelength)) ** 2
        np.multiply.at(factors, (r_idx, t_idx, p_idx), f2)
        return factors

    # --- paths GO drops ---------------------------------------------------------------------------------------
    def single_bounce_found(self, paths) -> np.ndarray:
        """[R, T, K] whether Sionna found the single specular bounce off plate k."""
        shape = self.path_power(paths).shape
        if shape[-1] == 0:
            return np.zeros(shape[:2] + (len(self.ids),), bool)
        objects, inter, _, valid = self._arrays(paths)
        single = valid & (inter[0] == _SPECULAR) & ((inter[1:] == 0).all(axis=0) if inter.shape[0] > 1 else True)
        return np.stack([single & (objects[0] == pid) for pid in self.ids], axis=-1).any(axis=2)

    def off_plate_power(self, paths, per_plate: bool = False) -> np.ndarray:
        """[R, T] |a|^2 of the single-bounce plate paths Sionna did not find, by PO (see the module);
        `per_plate`: [R, T, K] per plate."""
        rs = self.rs
        rx = rs.targets
        num_r, num_t = rx.shape[0], self.tx.shape[0]
        out = np.zeros((num_r, num_t, len(self.ids)))
        found = self.single_bounce_found(paths)
        cands = []  # (k, t, receiver indices, specular points on the plane, nearest plate points, F^2, L)
        frames = self.frames()
        for k, pose in enumerate(rs.pose.plates):
            c = frames[k][0]
            kind = self.kinds[k]
            for t in range(num_t):
                sp = kind.specular(pose, self.tx[t], rx)
                ok = (sp.side_tx * sp.side_rx > 0) & ~found[:, t, k]
                idx = np.flatnonzero(ok)
                if idx.size == 0:
                    continue
                point = sp.point()[idx]
                src = np.broadcast_to(self.tx[t], (idx.size, 3))
                shift = c - point  # the same legs with the specular point at the plate's centre: the reference
                f2, f2_ref = np.abs(kind.po_factor(np.concatenate([src, src + shift]),
                                                   np.concatenate([rx[idx], rx[idx] + shift]), pose,
                                                   self.wavelength)).reshape(2, -1) ** 2
                keep = f2 >= f2_ref * 10.0 ** (-PO_OFF_PLATE_RANGE_DB / 10.0)
                if keep.any():
                    cands.append((k, t, idx[keep], point[keep], sp.point(kind.size)[idx[keep]], f2[keep],
                                  sp.length_m[idx[keep]]))
        if not cands:
            return out if per_plate else out.sum(-1)
        near = np.concatenate([cd[4] for cd in cands])
        tx_of = np.concatenate([np.broadcast_to(self.tx[cd[1]], (cd[2].size, 3)) for cd in cands])
        rx_of = np.concatenate([rx[cd[2]] for cd in cands])
        clear = rs.segments_clear(np.concatenate([tx_of, near]), np.concatenate([near, rx_of]))
        clear = clear[: near.shape[0]] & clear[near.shape[0]:]
        start = 0
        for k, t, idx, point, _, f2, length in cands:
            m = clear[start:start + idx.size]
            start += idx.size
            if not m.any():
                continue
            eps_r, sigma = self.materials[k]
            tx_spec = rs.tx_specs[rs.active_tx[t]]
            fields = {}
            if not (tx_spec.is_default and all(rs.rx_specs[i].is_default for i in idx[m])):
                fields = {"tx_field": antenna.field_np(tx_spec, point[m] - self.tx[t]),
                          "rx_field": antenna.fields_np([rs.rx_specs[i] for i in idx[m]], point[m] - rx[idx[m]])}
            gain = po.mirror_gain(self.tx[t], rx[idx[m]], point[m], frames[k][3], eps_r, sigma, self.frequency_hz,
                                  **fields)
            fspl = (self.wavelength / (4.0 * np.pi * length[m])) ** 2
            np.add.at(out, (idx[m], t, k), gain * fspl * f2[m])
        return out if per_plate else out.sum(-1)


@register_plate_model
class GoPlateModel(PlateModel):
    name = "go"

    def power(self, paths, only_diffracted: bool = False) -> np.ndarray:
        a2 = self.path_power(paths)
        if only_diffracted and a2.shape[-1]:
            a2 = np.where(self.diffracted(paths), a2, 0.0)
        return a2.sum(-1)


def virtual_ends(chain: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The virtual source and observer [M, 3] of the interaction at `depth` [M] of paths given as point
    chains [M, D + 2, 3] (Tx, vertices, Rx; unused vertices repeat the Rx): the source lies back along the
    incoming segment at the unfolded length from the Tx to the hit, the observer along the outgoing segment
    at the unfolded length from the hit to the Rx."""
    rows = np.arange(chain.shape[0])
    seg = np.linalg.norm(np.diff(chain, axis=1), axis=-1)  # [M, D + 1]
    cum = np.cumsum(seg, axis=1)
    before = cum[rows, depth]
    after = cum[:, -1] - before
    hit, prev, nxt = chain[rows, depth + 1], chain[rows, depth], chain[rows, depth + 2]

    def unit(d):
        return d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)

    return hit - unit(hit - prev) * before[:, None], hit + unit(nxt - hit) * after[:, None]
