"""Experiment files in, validated `Experiment`s out: YAML parsing, one line per problem, scene paths.

Every problem in a bad file becomes one line `FILE: key.path: what is wrong (what is allowed)`.
Relative scene paths resolve against the experiment file's folder (as compose files and kustomize do),
through `resolve_scene_path`, for every command alike.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from optimizer.constants import BUILTIN_SCENE_PREFIX, S3_SCHEME
from optimizer.errors import ConfigError
from optimizer.experiment.model import Experiment

def _loc(loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "literal[")) or str(part)[:1].isupper():
            continue  # pydantic's union/validator labels, not keys
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def format_validation_error(err: ValidationError, source: str) -> list[str]:
    lines = []
    for e in err.errors():
        loc = _loc(e["loc"])
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if e["type"] == "extra_forbidden":
            msg = "unknown key; check the spelling (see examples/ for the allowed keys)"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] == "string_pattern_mismatch" and loc == "name":
            msg = "must be lower-case letters, digits and '-' (a DNS label), e.g. street-corner"
        line = f"{source}: {loc}: {msg}"
        if line not in lines:
            lines.append(line)
    return lines


def parse_experiment(data, source: str = "experiment") -> Experiment:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: (top level): expected a mapping of keys (name, scene, ...), got "
                          f"{type(data).__name__}")
    try:
        return Experiment.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def load_experiment_text(text: str, source: str) -> Experiment:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise ConfigError(f"{source}: {where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    return parse_experiment(data, source)


def resolve_scene_path(scene: str, base_dir: Path | None) -> str:
    """A relative local scene (folder or archive) as an absolute path, relative to `base_dir` (the
    experiment file's folder); builtin:, s3:// and absolute paths are returned as they are."""
    if scene.startswith((BUILTIN_SCENE_PREFIX, S3_SCHEME)) or base_dir is None:
        return scene
    p = Path(os.path.expanduser(scene))
    if p.is_absolute():
        return str(p)
    return str((Path(base_dir) / p).resolve())


@dataclass
class Submitted:
    """An experiment as the user gave it: the model (scene path resolved), its text and its hash."""

    exp: Experiment
    text: str
    sha256: str  # of the experiment's meaning as submitted (before the scene path was resolved)
    source: str
    base_dir: Path | None  # the folder relative scene paths resolve against (None for s3://)


def read_experiment_text(src: str) -> str:
    from optimizer.store import storage

    if storage.is_remote(src):
        return storage.read_text(src)
    p = Path(src)
    if not p.is_file():
        raise ConfigError(f"{src}: no such file; give the path of an experiment YAML (see examples/)")
    return p.read_text()


def load_submitted(src: str | os.PathLike) -> Submitted:
    """Load an experiment file (local path or s3:// URI) with its relative scene path resolved."""
    from optimizer.store import storage

    src = str(src)
    text = read_experiment_text(src)
    exp = load_experiment_text(text, src)
    for refl in exp.plates():
        for line in refl.tolerance.warnings():
            sys.stderr.write(f"reflectopt: warning: {line}\n")
    sha = exp.sha256()
    base = None if storage.is_remote(src) else Path(src).resolve().parent
    exp.scene = resolve_scene_path(exp.scene, base)
    return Submitted(exp=exp, text=text, sha256=sha, source=src, base_dir=base)


def load_experiment(path: str | os.PathLike) -> Experiment:
    """Load an experiment from a local path or an s3:// URI (relative scene paths resolved)."""
    return load_submitted(path).exp


def load_run_experiment(store, meta=None) -> Experiment:
    """The experiment of a run folder (`optimizer.store.runstore.RunStore`) as it ran: the submitted file
    with the run's overrides from run.json (output, device, worlds, and the scene as resolved at start)."""
    from optimizer.constants import EXPERIMENT_FILE
    from optimizer.errors import StorageError

    exp = load_experiment_text(store.read_experiment_text(), store.join(EXPERIMENT_FILE))
    if meta is None:
        try:
            meta = store.read_meta()
        except (StorageError, ValueError):
            meta = None
    if meta is not None:
        ov = meta.overrides
        exp.output, exp.device, exp.search.worlds, exp.scene = ov.output, ov.device, ov.worlds, ov.scene
    return exp
