"""Experiment files in, validated `Experiment`s out: YAML parsing, one line per problem, scene paths.

Every problem in a bad file becomes one line `FILE: key.path: what is wrong (what is allowed)`; a key given
twice is one of them (YAML would silently keep the last). Command-line overrides go through the same model
(`with_overrides`), never around it. Relative scene paths resolve against the experiment file's folder (as
compose files and kustomize do), through `resolve_scene_path`, for every command alike.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from optimizer.constants import BUILTIN_SCENE_PREFIX, EXPERIMENT_MAX_BYTES, S3_SCHEME
from optimizer.errors import ConfigError
from optimizer.experiment.model import Experiment
from optimizer.sites.positions import resolve_geo_positions
from optimizer.sites.wallbox import resolve_wall_bounds

# A number in exponent form (1e9, 1.0e9, -2.5e-3). YAML 1.1 (PyYAML) reads it as text unless it has a dot and
# a signed exponent (so `samples_per_src: 1e9` was refused as "not an integer"); experiment files read it as
# a number, as YAML 1.2 does.
_EXPONENT_NUMBER = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


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


def format_validation_error(err: ValidationError, source: str, flags: dict[str, str] | None = None) -> list[str]:
    """One line per problem: `SOURCE: key.path: what is wrong`; a key set by a command-line flag is named as
    `--flag (key.path)` (`flags`: key path -> flag)."""
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
        elif e["type"] == "finite_number":
            msg = "must be a finite number (not .nan or .inf)"
        top = re.match(r"^([a-z_]+(?:\.[a-z_]+|\[\d+\])*): (.*)$", msg)
        if top:  # a rule across keys (a model validator) names its key first: lift it to the key path
            loc, msg = (top.group(1) if loc == "(top level)" else f"{loc}.{top.group(1)}"), top.group(2)
        if flags and loc in flags:
            loc = f"{flags[loc]} ({loc})"
        line = f"{source}: {loc}: {msg}" if source else f"{loc}: {msg}"
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
                seen[key] = first or key_node.start_mark.line + 1
            except TypeError:
                continue  # an unhashable key: the constructor below reports it
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice (first on line {first}); keep one", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_NUMBER, list("-+0123456789"))


def load_experiment_text(text: str, source: str, base_dir: Path | None = None, scene: str | None = None) -> Experiment:
    """Parse and validate; {lat, lon, height_m} positions become scene metres and wall-given mounting boxes
    become {min, max} through the scene's site.json (`optimizer.sites.positions`, `optimizer.sites.wallbox`):
    the scene is `scene` if given (as resolved at a run's start), else the file's own, relative to
    `base_dir`."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: {_yaml_problem(err, text)}") from None
    if scene is None and isinstance(data, dict) and isinstance(data.get("scene"), str):
        scene = resolve_scene_path(data["scene"], base_dir)
    resolve_geo_positions(data, source, scene)
    resolve_wall_bounds(data, source, scene)
    return parse_experiment(data, source)


_KEY_OF_LINE = re.compile(r"^\s*(?:-\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*:")


def _yaml_problem(err: yaml.YAMLError, text: str) -> str:
    """`line N (key): not valid YAML (what)` in one line, for a parser error (its mark) and for a character the
    YAML reader refuses, such as a NUL (its position in the text): where it is, the key on that line if any."""
    if isinstance(err, yaml.reader.ReaderError):
        line = text.count("\n", 0, max(0, int(err.position))) + 1
        char = err.character if isinstance(err.character, int) else ord(str(err.character)[:1] or "?")
        name = "NUL" if char == 0 else repr(chr(char))
        what = f"the character #x{char:04x} ({name}) is not allowed; remove it"
    else:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        what = " ".join(str(getattr(err, "problem", None) or err).split())
    if line is None:
        return f"(top level): not valid YAML ({what})"
    lines = text.split("\n")  # YAML's lines (str.splitlines also breaks at \x0b, \x1c, \x85, ...)
    key = _KEY_OF_LINE.match(lines[line - 1]) if line <= len(lines) else None
    return f"line {line}{f' ({key.group(1)})' if key else ''}: not valid YAML ({what})"


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
        data = storage.read_bytes(src)
    else:
        p = Path(src)
        if not p.is_file():
            raise ConfigError(f"{src}: no such file; give the path of an experiment YAML (see examples/)")
        if p.stat().st_size > EXPERIMENT_MAX_BYTES:
            raise ConfigError(f"{src}: {p.stat().st_size} bytes is not an experiment file (limit "
                              f"{EXPERIMENT_MAX_BYTES}); give the path of an experiment YAML (see examples/)")
        try:
            data = p.read_bytes()
        except OSError as err:
            raise ConfigError(f"{src}: cannot be read ({err.strerror or err})") from None
    if len(data) > EXPERIMENT_MAX_BYTES:
        raise ConfigError(f"{src}: {len(data)} bytes is not an experiment file (limit {EXPERIMENT_MAX_BYTES})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{src}: not a text file (byte {err.start} is not UTF-8); give an experiment YAML "
                          "(see examples/)") from None


def load_submitted(src: str | os.PathLike) -> Submitted:
    """Load an experiment file (local path or s3:// URI) with its relative scene path resolved."""
    from optimizer.store import storage

    src = str(src)
    text = read_experiment_text(src)
    base = None if storage.is_remote(src) else Path(src).resolve().parent
    exp = load_experiment_text(text, src, base_dir=base)
    for refl in exp.plates():
        for line in refl.tolerance.warnings():
            sys.stderr.write(f"reflectopt: warning: {line}\n")
    sha = exp.sha256()
    exp = exp.model_copy(update={"scene": resolve_scene_path(exp.scene, base)})
    return Submitted(exp=exp, text=text, sha256=sha, source=src, base_dir=base)


def with_overrides(exp: Experiment, source: str, changes: dict, flags: dict[str, str] | None = None) -> Experiment:
    """A new `Experiment` with `changes` (dotted key -> value; None: keep) applied and validated by the model,
    so an override obeys every rule a file does. Problems are ConfigError lines naming `flags[key]` (the
    command-line flag that set it) or else the key, under `source`."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return exp
    data = exp.model_dump(exclude_unset=True)  # what was set stays set (defaults stay defaults)
    for key, value in changes.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        return Experiment.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, flags)) from None


def load_experiment(path: str | os.PathLike) -> Experiment:
    """Load an experiment from a local path or an s3:// URI (relative scene paths resolved)."""
    return load_submitted(path).exp


def load_run_experiment(store, meta=None) -> Experiment:
    """The experiment of a run folder (`optimizer.store.runstore.RunStore`) as it ran: the submitted file
    with the run's overrides from run.json (output, device, worlds, and the scene as resolved at start)."""
    from optimizer.constants import EXPERIMENT_FILE, RUN_FILE
    from optimizer.errors import StorageError

    if meta is None:
        try:
            meta = store.read_meta()
        except (StorageError, ValueError):
            meta = None
    scene = meta.overrides.scene if meta is not None else None  # geo positions: the scene it ran on
    exp = load_experiment_text(store.read_experiment_text(), store.join(EXPERIMENT_FILE), scene=scene)
    if meta is not None:
        ov = meta.overrides
        exp = with_overrides(exp, store.join(RUN_FILE), {"output": ov.output, "device": ov.device,
                                                           "search.worlds": ov.worlds, "scene": ov.scene})
    return exp


def changed_keys(before, after, path: str = "") -> list[str]:
    """The dotted paths (list items as `[i]`) where two experiment dumps differ, in order."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in list(before) + [k for k in after if k not in before]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in before or key not in after:
                out.append(sub)
            else:
                out += changed_keys(before[key], after[key], sub)
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [k for i, (b, a) in enumerate(zip(before, after)) for k in changed_keys(b, a, f"{path}[{i}]")]
    return [] if before == after else [path or "(the whole experiment)"]


def check_run_experiment_unchanged(store, meta, exp: Experiment) -> None:
    """`resume` continues a run with the experiment it started with. Its folder's experiment.yaml edited
    since (anything but `resources`: its meaning no longer hashes to run.json's `experiment_sha256`) is a
    ConfigError naming the keys that changed (against the experiment the worlds were started with), or, before
    any world started, saying that it changed. `exp`: the file as `load_run_experiment` reads it."""
    import json

    from optimizer.constants import EXPERIMENT_FILE

    source = store.join(EXPERIMENT_FILE)
    if load_experiment_text(store.read_experiment_text(), source).sha256() == meta.experiment_sha256:
        return
    keys: list[str] = []
    started = store.started_experiment()
    if started is not None:
        try:
            keys = changed_keys(json.loads(parse_experiment(started, "the started run").canonical_json()),
                                json.loads(exp.canonical_json()))
        except ConfigError:
            keys = []
    what = f"{', '.join(keys)} changed" if keys else "its content changed"
    raise ConfigError(f"{source}: {what} since the run started; resume continues a run only with the experiment "
                      "it started with (only `resources` may change): put the file back, or start a new run "
                      "with `reflectopt run`")
