"""The experiment model (pydantic v2): what a user asks for, validated. Loading lives in `loading`; the shared
field types in `fields`, transmitters and antennas in `devices`, targets in `targets`."""

from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_serializer, model_validator

from optimizer.constants import (BANDWIDTH_HZ_LIMIT, ENV_CPU_PER_WORLD, ENV_GPU_PER_WORLD,
                                 NO_PATH_FLOOR_DBM, NOISE_FIGURE_DB_DEFAULT, PLATE_MODEL_DEFAULT, TX_POWER_DBM_RANGE)
from optimizer.errors import ConfigError
from optimizer.experiment.box import Box3
from optimizer.experiment.devices import Transmitter
from optimizer.experiment.fields import (NAME_RE, Metres, Seed, _no_control_chars, _Strict,
                                        check_frequency_hz)
from optimizer.experiment.mounting import AngleRange, Tolerance
from optimizer.experiment.protect import Protect
from optimizer.experiment.targets import Targets
from optimizer.registry import GRADIENT_MODES, OBJECTIVES, PLATE_MODELS, REFLECTOR_KINDS

MAX_PLATE_SIDE_M = 100.0  # [m]
MAX_PLATES = 8  # plates per experiment
MAX_CATALOGUE_SIZES = 8  # entries of one plate's sizes_m
MAX_SIZE_OPTIONS = 32  # size combinations of all plates' catalogues together


class Reflector(_Strict):
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,40}$",
                             description="the plate's name (default plate-1, plate-2, ... in list order)")
    kind: str = Field(default="flat_plate", description="what the reflector is (optimizer.registry.REFLECTOR_KINDS): "
                                                        "flat_plate, a flat metal rectangle of `size_m`")
    size_m: list[float] | None = Field(default=None, description="width, height of the flat plate [m] (with "
                                                                 "`sizes_m`: set to the catalogue's smallest)")
    sizes_m: list[list[float]] | None = Field(
        default=None, description="a catalogue of sizes [[width, height], ...] [m] instead of `size_m`: the run "
                                  "picks the smallest that covers every target over the tolerance "
                                  "(optimizer.experiment.catalogue)")
    material: Literal["metal"] = Field(default="metal", description="the plate's radio material")
    thickness_m: float = Field(default=0.01, gt=0, le=1, description="[m] the plate's thickness")
    bounds: Box3 = Field(description="where the plate centre may go: {min, max} [m], or by wall on a site")
    mounted_on_wall: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="the site.json wall (`reflectopt scene walls`) the mounting box is on: set by a box given by "
                    "wall (bounds: {wall, along_m, height_m, standoff_m}), or given beside a {min, max} box; the "
                    "tolerance box and winner.mount take that wall's frame (optimizer.physics.wall)")
    yaw_deg: AngleRange = Field(default=AngleRange(min=-180, max=180),
                                description="[deg] the range of the plate normal's azimuth, counter-clockwise from +x")
    pitch_deg: AngleRange | None = Field(default=None, description="[deg] the range of the plate's tilt (none: upright)")
    tolerance: Tolerance = Field(default_factory=Tolerance, description="mounting tolerance; the answer must "
                                                                        "hold over it")

    @field_validator("kind")
    @classmethod
    def _registered_kind(cls, v: str):
        return REFLECTOR_KINDS.validate(v)

    @field_validator("size_m", mode="before")
    @classmethod
    def _positive(cls, v):
        return None if v is None else _plate_size(v, f"[width, height] in metres, each above 0 and up to "
                                                     f"{MAX_PLATE_SIDE_M:g}, e.g. [2.0, 2.0]")

    @field_validator("sizes_m", mode="before")
    @classmethod
    def _catalogue(cls, v):
        if v is None:
            return None
        if not isinstance(v, (list, tuple)) or not v:
            raise ValueError(f"{v!r} is not a list of sizes; give e.g. [[0.5, 0.5], [1, 1], [2, 2]] (metres)")
        if len(v) > MAX_CATALOGUE_SIZES:
            raise ValueError(f"{len(v)} sizes (limit {MAX_CATALOGUE_SIZES}); keep the catalogue's likely sizes")
        out = []
        for i, entry in enumerate(v):
            size = _plate_size(entry, f"entry {i} ({entry!r}) is not a positive pair [width, height] in metres "
                                      f"(each up to {MAX_PLATE_SIDE_M:g}); give e.g. [[0.5, 0.5], [1, 1], [2, 2]]",
                               whole=True)
            if size not in out:  # a size given twice is tried once
                out.append(size)
        return sorted(out, key=lambda s: (s[0] * s[1], s))  # smallest area first

    @model_validator(mode="after")
    def _one_size(self):
        if self.size_m is not None and self.sizes_m is not None:
            raise ValueError("size_m: given together with sizes_m; keep one (size_m: one size, sizes_m: a "
                             "catalogue to choose from)")
        if self.size_m is None and self.sizes_m is None:
            raise ValueError("size_m: required key is missing (or give sizes_m: a catalogue of sizes)")
        if self.sizes_m is not None:  # derived while it is built (frozen from then on)
            object.__setattr__(self, "size_m", list(self.sizes_m[0]))
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        # With a catalogue, `size_m` is derived (its smallest entry): written out, it would read back as
        # "given together with sizes_m".
        data = handler(self)
        if self.sizes_m is not None and isinstance(data, dict):
            data.pop("size_m", None)
        return data


def _plate_size(v, what: str, whole: bool = False) -> list[float]:
    """[width, height] [m] from a pair of positive finite numbers; ValueError(`what`) otherwise (`whole`: the
    message is all of it, else "must be " + what)."""
    msg = what if whole else f"must be {what}"
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise ValueError(msg)
    try:
        out = [float(x) for x in v]
    except (TypeError, ValueError):
        raise ValueError(msg) from None
    if isinstance(v[0], bool) or isinstance(v[1], bool) or not all(math.isfinite(x) and 0 < x <= MAX_PLATE_SIDE_M
                                                                   for x in out):
        raise ValueError(msg)
    return out


class Objective(_Strict):
    """What a pose is worth (`kind`, optimizer.objectives). The threshold and the temperature serve every kind:
    the threshold decides coverage (and whether a pose holds), the temperature smooths the model."""

    kind: str = Field(default="min", description="min (the worst target), percentile (with p) or coverage (with "
                                                 "required); optimizer.registry.OBJECTIVES")
    p: float | None = Field(default=None, ge=0, le=100, description="percentile: which one [%] (default 5)")
    required: float | None = Field(default=None, ge=0, le=1,
                                   description="coverage: the share of targets a pose must cover to hold "
                                               "(default 1)")
    softmin_temperature_db: float = Field(default=1.0, gt=0, le=50,
                                          description="the model's smoothing [dB]: soft-min temperature, soft "
                                                      "quantile and sigmoid width")
    coverage_threshold_dbm: float = Field(default=-90.0, gt=NO_PATH_FLOOR_DBM, le=TX_POWER_DBM_RANGE[1],
                                          description="[dBm] a target at or above it is covered (dB SINR with sinr)")
    focus_margin_db: float = Field(default=10.0, ge=0, le=200,
                                   description="[dB] targets this far above the threshold without a plate are left "
                                               "out of the model's soft-min (they count in every reported figure)")
    combine: Literal["sum", "best_server", "sinr"] | None = Field(
        default=None, description="how transmitters combine at a target: sum (the default for one "
                                  "transmitter), best_server (the strongest), sinr (the strongest over the "
                                  "others plus kTB*NF; threshold and figures in dB SINR)")
    noise_figure_db: float = Field(default=NOISE_FIGURE_DB_DEFAULT, ge=0, le=50, description="[dB] (sinr)")
    bandwidth_hz: float | None = Field(default=None, gt=0, le=BANDWIDTH_HZ_LIMIT, description="[Hz] (sinr)")
    protect: Protect | None = Field(default=None, description="a constraint: protected points / areas the plate "
                                    "must not take coverage from (max_loss_db, max_area_m2); a pose that breaks "
                                    "it does not hold")

    @model_validator(mode="after")
    def _sinr(self):
        if self.combine == "sinr" and self.bandwidth_hz is None:
            raise ValueError("bandwidth_hz: required with combine: sinr (the noise kTB*NF); give e.g. 20e6")
        return self

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str):
        return OBJECTIVES.validate(v)

    @model_validator(mode="after")
    def _params(self):
        for key, kind in (("p", "percentile"), ("required", "coverage")):
            if getattr(self, key) is not None and self.kind != kind:
                raise ValueError(f"{key} belongs to kind: {kind} (kind is {self.kind}); remove {key} or set "
                                 f"kind: {kind}")
        return self


class Solver(_Strict):
    """The truth: Sionna RT's PathSolver. Defaults an RF engineer can trust: specular reflection,
    refraction as the scene's materials define it, and diffraction on the scene's wedges (building and
    wall edges). The plate's own free edges are not diffracted here (`edge_diffraction: false`): the
    plate's finite size belongs to its reflection model (`plate_model`), not to a second edge term."""

    plate_model: str = Field(default=PLATE_MODEL_DEFAULT,
                             description="the plate's reflection: po (physical optics: aperture loss, smooth "
                                         "edges) or go (Sionna's infinite mirror on the plate); "
                                         "optimizer.registry.PLATE_MODELS")

    max_depth: int = Field(default=3, ge=1, le=10, description="interactions per path")
    samples_per_src: int = Field(default=1_000_000, ge=1000, le=100_000_000, description="rays per transmitter")
    max_num_paths_per_src: int | None = Field(default=None, ge=1000, le=100_000_000,
                                              description="default: samples_per_src")
    los: bool = Field(default=True, description="trace the line-of-sight path")
    specular_reflection: bool = Field(default=True, description="trace specular reflections")
    diffuse_reflection: bool = Field(default=False, description="trace diffuse reflections (scattering)")
    refraction: bool = Field(default=True, description="trace refraction through surfaces")
    diffraction: bool = Field(default=True, description="diffraction on the scene's wedges")
    edge_diffraction: bool = Field(default=False, description="diffraction on free-floating edges (the plate's)")
    diffraction_lit_region: bool = Field(default=True, description="edge diffraction also into the lit region")
    deterministic: bool = Field(default=True, description="Sionna's deterministic candidate generator: the "
                                                          "same pose gives the same truth (no measured cost)")
    # Sample count of the final re-evaluation of the winner (default: 4x samples_per_src, capped)
    final_samples_per_src: int | None = Field(default=None, ge=1000, le=100_000_000,
                                              description="rays per source for the winner's final truth "
                                                          "(default: 4 x samples_per_src)")
    seed: Seed = Field(default=42, description="the ray tracer's random seed")

    @field_validator("plate_model")
    @classmethod
    def _plate_model(cls, v: str):
        return PLATE_MODELS.validate(v)

    def path_solver_kwargs(self, samples_per_src: int | None = None, max_depth: int | None = None) -> dict:
        """The keyword arguments of `sionna.rt.PathSolver.__call__` for the truth."""
        n = int(samples_per_src or self.samples_per_src)
        return {"max_depth": int(max_depth or self.max_depth), "samples_per_src": n,
                "max_num_paths_per_src": int(self.max_num_paths_per_src or n), "los": self.los,
                "specular_reflection": self.specular_reflection, "diffuse_reflection": self.diffuse_reflection,
                "refraction": self.refraction, "diffraction": self.diffraction,
                "edge_diffraction": self.edge_diffraction, "diffraction_lit_region": self.diffraction_lit_region,
                "seed": int(self.seed)}

    def radio_map_kwargs(self) -> dict:
        """The same mechanisms for `sionna.rt.RadioMapSolver.__call__` (it has no path cap)."""
        kw = self.path_solver_kwargs()
        return {k: v for k, v in kw.items() if k not in ("samples_per_src", "max_num_paths_per_src")}

    def effective(self) -> dict:
        """Every setting the truth runs with (recorded in summary.json)."""
        return {"solver": "sionna.rt.PathSolver", "plate_model": self.plate_model, "deterministic": self.deterministic,
                **self.path_solver_kwargs(),
                "final_samples_per_src": self.final_samples_per_src or min(4 * self.samples_per_src, 100_000_000)}


class Prune(_Strict):
    reduction_factor: int = Field(default=2, ge=2, le=16, description="keep 1 in this many worlds at each rung")
    grace_steps: int = Field(default=5, ge=1, le=100_000, description="first rung, in truth steps")


class Search(_Strict):
    worlds: int = Field(default=8, ge=1, le=10_000, description="parallel searches, each a Tune trial with its own scene")
    steps: int = Field(default=40, ge=1, le=100_000, description="truth-checked steps per world")
    seed: Seed = Field(default=0, description="the search's random seed (starts, exploration)")
    gradient: str = Field(default="surrogate", description="a registered gradient mode "
                                                          "(optimizer.registry.GRADIENT_MODES)")
    starts: Literal["informed", "uniform", "mixed"] = Field(default="mixed", description="how worlds start: toward the specular geometry, uniform in the box, or half each")
    initial_poses: list[Annotated[list[Metres], Field(min_length=4, max_length=5 * MAX_PLATES)]] = Field(
        default=[], max_length=10_000, description="[x, y, z, yaw_deg(, pitch_deg)] per plate, plates one after another")
    inner_steps: int = Field(default=4, ge=1, le=1000, description="surrogate updates per truth check")
    surrogate_level: Literal["edges", "po"] = Field(
        default="edges", description="the surrogate's plate-path level: log-sigmoid edges on the image method "
                                     "(default), or the truth's PO factor with the edges' pull beyond 1.5 "
                                     "Fresnel radii (benchmarks/plate_physics.py compares them)")
    learning_rate: float = Field(default=0.05, gt=0, le=1, description="Adam step on the box-normalised pose")
    prune: Prune | Literal["off"] = Field(default=Prune(), description="successive halving of weak worlds, or off")
    max_failures: int = Field(default=2, ge=0, le=100, description="restarts of a crashed world")
    checkpoint_every: int = Field(default=5, ge=1, le=1000, description="steps between world checkpoints")
    concurrency: int | None = Field(default=None, ge=1, le=10_000, description="worlds at once (default: what fits)")
    reuse: Literal["exploit", "explore", "mixed", "off"] = Field(
        default="mixed", description="what a pruned or merged world's freed budget starts: a world near the best "
                                     "poses so far (exploit), one where no world has been (explore), both in "
                                     "turn (mixed), or nothing (off)")
    residual_correction: bool = Field(default=True, description="shift each target's surrogate power by what the "
                                                                "last truth said (truth minus model, clipped)")
    trust_region: bool = Field(default=True, description="shrink the step when the truth disagrees with the gain "
                                                         "the model predicted, grow it back when they agree")
    polish_share: float = Field(default=0.15, ge=0, le=0.5, description="share of a world's steps spent at its "
                                                                        "end on a truth-only pattern search around "
                                                                        "its best pose (tolerance-scaled)")
    robust_polish_boxes: float = Field(
        default=3.0, ge=0, le=20, description="truth evaluations a world spends after its tolerance check on a "
                                              "pattern search of its worst case over the box, in boxes (one box: "
                                              "2^d + 8 poses per plate; 0: off)")
    robust_phase: Literal["halving", "every_world"] = Field(
        default="halving", description="where the tolerance check and the worst-case polish run: after the "
                                       "search, on the completed worlds' candidates best nominal first, "
                                       "stopping each as soon as it cannot beat the best confirmed worst case "
                                       "(halving), or at the end of every completed world (every_world)")
    merge: bool = Field(default=True, description="stop the worse of two worlds whose poses come within the "
                                                  "mounting tolerance of each other (its slot is reused)")

    @field_validator("prune", mode="before")
    @classmethod
    def _prune_off(cls, v):
        # YAML 1.1 reads a bare `off` (as the README writes it) as false: off, false and "off" all mean off
        if v is False or (isinstance(v, str) and v.strip().lower() in ("off", "false")):
            return "off"
        if isinstance(v, (dict, Prune)):
            return v
        raise ValueError(f"{v!r} is not allowed; write `prune: off`, or a block such as "
                         "{reduction_factor: 2, grace_steps: 5}")

    @field_validator("gradient")
    @classmethod
    def _registered(cls, v: str):
        return GRADIENT_MODES.validate(v)


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"environment: {name}={raw!r} is not a number; unset it or give e.g. 0.25") from None


class Resources(_Strict):
    gpu_per_world: float = Field(default_factory=lambda: _env_float(ENV_GPU_PER_WORLD, 0.0), ge=0, le=8,
                                 description="GPU share of each world (Ray; e.g. 0.1 for 10 worlds per GPU)")
    cpu_per_world: float = Field(default_factory=lambda: _env_float(ENV_CPU_PER_WORLD, 1.0), gt=0, le=256,
                                 description="CPU cores of each world (Ray; Dr.Jit threads)")


def _pose_outside(exp: Experiment, i: int, pose: list[float]) -> str | None:
    """The first coordinate of `search.initial_poses[i]` outside its plate's bounds (x, y, z) or angle range
    (yaw, unless the range wraps; pitch) by more than the plate's mounting tolerance on that axis, as one line;
    None if there is none (a coordinate within the tolerance outside is moved onto the bound, as a mounting
    error that small would be)."""
    plates = exp.plates()
    offset = 0
    for k, r in enumerate(plates):
        key = "reflector" if exp.reflectors is None else f"reflectors[{k}]"
        tol = r.tolerance
        yaw_span = r.yaw_deg.max - r.yaw_deg.min
        wraps = yaw_span >= 360 - 1e-9 or (yaw_span >= 180 - 1e-9 and r.pitch_deg is None)  # as PoseSpace
        lo3, hi3 = r.bounds.box_range()  # a box in a wall's frame: along, off, z
        axes = [(name, lo3[j], hi3[j], tol.position_m, "m", f"{key}.bounds")
                for j, name in enumerate(r.bounds.axis_names)]
        axes.append(("yaw_deg", r.yaw_deg.min, r.yaw_deg.max, None if wraps else tol.yaw_deg, "deg", f"{key}.yaw_deg"))
        if r.pitch_deg is not None:
            axes.append(("pitch_deg", r.pitch_deg.min, r.pitch_deg.max, tol.pitch_deg, "deg", f"{key}.pitch_deg"))
        values = [float(v) for v in pose[offset:offset + len(axes)]]
        if len(values) >= 3:
            values[:3] = r.bounds.to_box(values[:3])
        for j, (axis, lo, hi, slack, unit, bound_key) in enumerate(axes):
            if slack is None or j >= len(values):
                continue
            v = values[j]
            off = max(lo - v, v - hi, 0.0)
            if off > slack + 1e-9 * max(1.0, abs(v)):
                where = (f"search.initial_poses[{i}].{axis}: {v:g}" if len(plates) == 1 else
                         f"search.initial_poses[{i}][{offset + j}]: plate {r.name!r} {axis} {v:g}")
                return (f"{where} is {off:.4g} {unit} outside {bound_key} ({axis} from {lo:g} to {hi:g} {unit}), "
                        f"more than the mounting tolerance ({slack:g} {unit}); give a start inside them, "
                        "or widen them")
        offset += len(axes)
    return None


class Experiment(_Strict):
    name: str = Field(pattern=NAME_RE, max_length=40, description="a DNS label (lower-case letters, digits, '-'): "
                      "results go to <output>/<name>/<run-id>/, and the RayJob is named after it")
    scene: str = Field(description="builtin:NAME (a Sionna scene), a folder with scene.xml and meshes/, a .zip or "
                       ".tar.gz of one, or an s3:// bundle; a relative path is relative to the experiment file")
    scene_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$",
                                     description="the scene bundle's content hash (`reflectopt scene hash`): "
                                                 "a scene that does not match is refused")
    frequency_hz: float | list[float] = Field(description="[Hz] the carrier frequency, or a band: a list of up to "
                                              "16 (each a truth solve; the objective is the worst over them)")
    transmitters: list[Transmitter] = Field(min_length=1, description="the access points: name, position [m] (or "
                                            "{lat, lon, height_m} on a site), power_dbm, antenna")
    reflector: Reflector | None = Field(default=None, description="one plate (shorthand of a one-entry "
                                                                  "`reflectors` list)")
    reflectors: list[Reflector] | None = Field(default=None, max_length=MAX_PLATES,
                                               description="several plates, placed jointly")
    targets: Targets = Field(description="where the signal is wanted: points, a region grid and/or polygon areas; "
                             "optional weights (targets.weights per point, an area's weight)")
    objective: Objective = Field(default=Objective(), description="what a pose is worth: the kind (min, "
                                 "percentile, coverage), the coverage threshold, how transmitters combine, and "
                                 "protect (points / areas the plate must not take coverage from)")
    solver: Solver = Field(default=Solver(), description="the ray tracer's settings (depth, samples, diffraction, "
                           "the plate's physics)")
    search: Search = Field(default=Search(), description="the worlds, their steps, pruning, reuse, starts and the "
                           "robust phase")
    resources: Resources = Field(default_factory=Resources, description="CPU and GPU share of each world (Ray)")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="where Dr.Jit runs: auto takes the "
                                                   "GPU where one is visible")
    output: str = Field(default="results/", description="a folder or s3://bucket/prefix for the results")

    @field_validator("frequency_hz", mode="before")
    @classmethod
    def _frequency_hz(cls, v):
        return check_frequency_hz(v)

    @field_validator("scene")
    @classmethod
    def _scene(cls, v: str):
        what = "builtin:NAME, a folder with scene.xml, or s3://bucket/key"
        if not v.strip():
            raise ValueError(f"empty; give {what}")
        return _no_control_chars(v, what)

    @field_validator("output")
    @classmethod
    def _output(cls, v: str):
        what = "a folder (e.g. results/) or s3://bucket/prefix"
        if not v.strip():
            raise ValueError(f"empty; give {what}")
        return _no_control_chars(v, what)

    @model_validator(mode="after")
    def _plates(self):
        if self.reflector is not None and self.reflectors is not None:
            raise ValueError("reflectors: given together with reflector; keep one (reflector: one plate, "
                             "reflectors: a list of plates)")
        if self.reflector is None and self.reflectors is None:
            raise ValueError("reflector: required key is missing (or give reflectors: a list of plates)")
        if self.reflectors is not None and not self.reflectors:
            raise ValueError("reflectors: the list is empty; give at least one plate, or use reflector:")
        plates = [r if r.name is not None else r.model_copy(update={"name": f"plate-{k + 1}"})
                  for k, r in enumerate(self.plates())]  # a new plate where one is named (frozen)
        object.__setattr__(self, *(("reflectors", plates) if self.reflectors is not None else ("reflector", plates[0])))
        names = [r.name for r in plates]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"reflectors: plate name {dup[0]!r} is given twice; give every plate its own name")
        if len(plates) > 1 and self.search.gradient == "sionna":
            raise ValueError("search.gradient: sionna moves one plate only; with reflectors use surrogate, spsa or "
                             "random")
        n_options = 1
        for r in plates:
            n_options *= len(r.sizes_m) if r.sizes_m is not None else 1
        if n_options > MAX_SIZE_OPTIONS:
            raise ValueError(f"reflectors: the plates' sizes_m give {n_options} size combinations (limit "
                             f"{MAX_SIZE_OPTIONS}); shorten the catalogues")
        from optimizer.physics.overlap import forced_overlap

        for i in range(len(plates)):
            for j in range(i + 1, len(plates)):
                if forced_overlap(plates[i], plates[j]):
                    raise ValueError(f"reflectors: the bounds of {names[i]!r} and {names[j]!r} force the plates to "
                                     "overlap (every pose sampled in them does); move or widen the bounds apart")
        return self

    @model_validator(mode="after")
    def _poses(self):
        dim = sum(4 + (r.pitch_deg is not None) for r in self.plates())
        for i, p in enumerate(self.search.initial_poses):
            if len(self.plates()) > 1:
                if len(p) != dim:
                    raise ValueError(f"search.initial_poses[{i}]: {len(p)} numbers; with several plates give "
                                     f"{dim}: x, y, z, yaw_deg (and pitch_deg where searched) per plate in order")
            elif len(p) == 5 and self.plates()[0].pitch_deg is None:
                raise ValueError(f"search.initial_poses[{i}] has a pitch but reflector.pitch_deg is not set")
            problem = _pose_outside(self, i, p)
            if problem:
                raise ValueError(problem)
        names = [t.name for t in self.transmitters]
        if len(set(names)) != len(names):
            raise ValueError("transmitters: names must be unique")
        if len(names) > 1 and self.objective.combine is None:
            raise ValueError(f"objective.combine: required with {len(names)} transmitters; choose sum (powers "
                             "add up), best_server (each target's strongest) or sinr (strongest over the others "
                             "plus noise)")
        if self.search.gradient == "sionna" and self.combine() != "sum":
            raise ValueError(f"search.gradient: sionna differentiates the transmitters' power sum only, not "
                             f"objective.combine: {self.combine()}; use search.gradient: surrogate (or combine: sum)")
        return self

    def combine(self) -> str:
        """How transmitters combine at a target (`objective.combine`, default sum)."""
        return self.objective.combine or "sum"

    # --- derived ---------------------------------------------------------------------------------
    def frequencies_hz(self) -> list[float]:
        """Every frequency of the truth [Hz], in the order given (one for a scalar `frequency_hz`)."""
        f = self.frequency_hz
        return [float(x) for x in f] if isinstance(f, list) else [float(f)]

    def centre_frequency_hz(self) -> float:
        """The band's centre [Hz], midway between its lowest and highest frequency (a scalar: itself): the
        radio maps' frequency."""
        f = self.frequencies_hz()
        return f[0] if len(f) == 1 else 0.5 * (min(f) + max(f))

    def plates(self) -> list[Reflector]:
        """Every plate, in order: `reflectors`, or the one `reflector`."""
        return list(self.reflectors) if self.reflectors is not None else [self.reflector]

    def target_points(self):
        """All target points [m] as a list of [x, y, z]: explicit points, then the region grid, then each area's
        points (before the scene drops those inside buildings: `areas.outside_buildings`)."""
        pts = [list(map(float, p)) for p in self.targets.points]
        r = self.targets.region
        if r is not None:
            nx = int(round((r.max[0] - r.min[0]) / r.spacing_m + 1e-9)) + 1
            ny = int(round((r.max[1] - r.min[1]) / r.spacing_m + 1e-9)) + 1
            for j in range(ny):
                for i in range(nx):
                    pts.append([r.min[0] + i * r.spacing_m, r.min[1] + j * r.spacing_m, float(r.z)])
        from optimizer.experiment import areas

        return pts + [p for a in self.targets.area or [] for p in areas.sample(a.polygon, a.z, a.spacing_m).tolist()]

    def target_weights(self) -> list[float]:
        """One weight per point of `target_points()`: `targets.weights`, 1 on the region grid, each area's."""
        from optimizer.experiment import areas

        t = self.targets
        out = list(t.weights) if t.weights is not None else [1.0] * len(t.points)
        out += [1.0] * (len(self.target_points()) - len(out) - sum(e - s for s, e in areas.spans(self)))
        return out + [a.weight for a in t.area or [] for _ in range(len(areas.sample(a.polygon, a.z, a.spacing_m)))]

    def protect_points(self) -> tuple[list[list[float]], list[float]]:
        """`objective.protect`'s points [m] and the area each stands for [m^2] (`protect.points_of`)."""
        from optimizer.experiment.protect import points_of

        return points_of(self)

    def target_key(self, i: int) -> str:
        """Where target `i` of `target_points()` comes from: `targets.points[i]`, or `targets.region` (a
        point of its grid)."""
        n = len(self.targets.points)
        if i < n:
            return f"targets.points[{i}]"
        from optimizer.experiment import areas

        for k, (s, e) in enumerate(areas.spans(self)):
            if s <= i < e:
                return f"targets.area[{k}] (its point {i - s})"
        return f"targets.region (its point {i - n})"

    def final_samples(self) -> int:
        s = self.solver
        return s.final_samples_per_src or min(4 * s.samples_per_src, 100_000_000)

    def canonical_json(self) -> str:
        data = self.model_dump(mode="json", exclude={"resources"})
        obj = data["objective"]  # objectives and targets without the antenna keys hash as they always did
        if obj["combine"] is None and obj["bandwidth_hz"] is None and obj["noise_figure_db"] == NOISE_FIGURE_DB_DEFAULT:
            for key in ("combine", "bandwidth_hz", "noise_figure_db"):
                obj.pop(key)
        if data["targets"].get("antenna") is None:
            data["targets"].pop("antenna", None)
        for plate in data["reflectors"] or [data["reflector"]]:
            if plate.get("sizes_m") is None:  # no catalogue: the plate hashes as it did before catalogues
                plate.pop("sizes_m", None)
            if plate.get("mounted_on_wall") is None:  # no wall named: as it hashed before
                plate.pop("mounted_on_wall", None)
            if plate.get("kind") == "flat_plate":  # the default kind: as it hashed before kinds
                plate.pop("kind", None)
        if data["targets"].get("area") is None:  # no area: the targets hash as they did before areas
            data["targets"].pop("area", None)
        if obj.get("protect") is None:  # no constraint: as it hashed before objective.protect
            obj.pop("protect", None)
        if data["targets"].get("weights") is None:
            data["targets"].pop("weights", None)
        for a in data["targets"].get("area") or []:
            if a.get("weight") == 1.0:
                a.pop("weight")
        if self.objective.kind == "min":  # today's objective hashes as it did before objective kinds
            for key in ("kind", "p", "required"):
                data["objective"].pop(key, None)
        if self.reflectors is None:  # the one-plate shorthand hashes as it always did
            data.pop("reflectors", None)
            data["reflector"].pop("name", None)
        return json.dumps(data, sort_keys=True)

    def sha256(self) -> str:
        """Hash of the experiment's meaning (resources excluded: they do not change results)."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


