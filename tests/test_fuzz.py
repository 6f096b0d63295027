"""Malformed experiments, generated from the shipped examples, and bad command lines: every one is refused with
at most 3 lines that name the key, exit 2 (1 for a store that cannot be reached), no traceback, and
nothing written to the output folder. Most run in-process (`optimizer.cli.main`); a few as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import free_port

from worlds_helpers import EXAMPLES, REPO

NAN, INF = float("nan"), float("inf")
# the one-plate examples (the cases edit `reflector.*`; tests/test_plates.py has the `reflectors` cases)
EXAMPLE_FILES = sorted(p for p in EXAMPLES.glob("*.yaml") if "reflector:" in p.read_text())


@dataclass
class Case:
    id: str
    key: str  # must appear in the output
    data: object = None  # mutate(dict) for a data case
    text: object = None  # mutate(str) -> str | bytes for a text case
    args: list = field(default_factory=list)  # extra arguments (a command other than run: args[0])
    code: int = 2
    example: int = 0  # which shipped example it starts from
    output_flag: bool = True  # pass --output (else the file's own output: is used)
    setup: object = None  # make(tmp_path): files the case needs (e.g. a hostile scene bundle)
    env: dict = field(default_factory=dict)  # environment changes (None: unset)


def _set(path: str, value):
    def mutate(d):
        node = d
        parts = path.split(".")
        for p in parts[:-1]:
            node = node[int(p)] if p.isdigit() else node.setdefault(p, {})
        node[int(parts[-1]) if parts[-1].isdigit() else parts[-1]] = value
    return mutate


def _region(**kw):
    return _set("targets", {"region": {"min": [0.0, 0.0], "max": [4.0, 4.0], "z": 1.5, "spacing_m": 1.0, **kw}})


NO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_EC2_METADATA_DISABLED": "true",
                  "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials", "AWS_CONFIG_FILE": "/nonexistent/config"}
CHAIN_DEPTH = 12


def _scene_folder(d: Path) -> Path:
    (d / "meshes").mkdir(parents=True)
    (d / "scene.xml").write_text('<scene version="2.1.0"><shape type="ply"><string name="filename" '
                                 'value="meshes/floor.ply"/></shape></scene>\n')
    (d / "meshes" / "floor.ply").write_bytes(b"ply\n")
    return d


def _linked_scene(link: str, target: str):
    """setup: a scene folder `{tmp}/bundle` with the symbolic link `link -> target`."""
    def make(tmp_path: Path):
        (_scene_folder(tmp_path / "bundle") / link).symlink_to(target)
    return make


def _chain_archive(target: str):
    """setup: `{tmp}/bundle.tar.gz` whose every link points inside on its own, while the chain
    meshes/x -> ../z/d0/../d11/ + ../ x 12 + target, with z/dN -> ., resolves outside."""
    def make(tmp_path: Path):
        import tarfile

        with tarfile.open(tmp_path / "bundle.tar.gz", "w:gz") as tf:
            links = [("meshes/x", "../z/" + "/".join(f"d{k}" for k in range(CHAIN_DEPTH)) + "/"
                      + "../" * CHAIN_DEPTH + target)] + [(f"z/d{k}", ".") for k in range(CHAIN_DEPTH)]
            for name, to in links:
                ti = tarfile.TarInfo(name)
                ti.type, ti.linkname = tarfile.SYMTYPE, to
                tf.addfile(ti)
            tf.add(_scene_folder(tmp_path / "clean"), arcname=".")
    return make


CASES = [
    # wrong types
    Case("freq-text", "frequency_hz", _set("frequency_hz", "abc")),
    Case("tx-not-list", "transmitters", _set("transmitters", "ap1"), example=1),
    Case("steps-text", "search.steps", _set("search.steps", "many"), example=2),
    Case("depth-float", "solver.max_depth", _set("solver.max_depth", 2.5)),
    Case("device-number", "device", _set("device", 3), example=1),
    Case("name-bad", "name", _set("name", "Bad_Name"), example=2),
    Case("samples-1e9", "solver.samples_per_src: Input should be less than or equal to 100000000",
         text=lambda t: t.replace("samples_per_src: 100000", "samples_per_src: 1e9")),  # a number, not text
    Case("prune-sometimes", "search.prune", _set("search.prune", "sometimes"), example=1),
    Case("typo-key", "serach", _set("serach", {"worlds": 2}), example=2),
    Case("top-level-list", "(top level)", text=lambda t: "- 1\n- 2\n"),
    # NaN and infinity
    Case("freq-nan", "frequency_hz", _set("frequency_hz", NAN), example=1),
    Case("tx-pos-nan", "transmitters[0].position[0]", _set("transmitters.0.position", [NAN, 0.0, 10.0])),
    Case("tx-power-inf", "transmitters[0].power_dbm", _set("transmitters.0.power_dbm", INF), example=2),
    Case("bounds-nan", "reflector.bounds.min[0]", _set("reflector.bounds.min", [NAN, 7.5, 5.0])),
    Case("yaw-inf", "reflector.yaw_deg.min", _set("reflector.yaw_deg.min", -INF), example=1),
    Case("points-inf", "targets.points[0][0]", _set("targets", {"points": [[INF, 0.0, 1.5]]}), example=2),
    Case("initial-nan", "search.initial_poses[0][0]", _set("search.initial_poses", [[NAN, 8.0, 5.0, 140.0]])),
    Case("lr-nan", "search.learning_rate", _set("search.learning_rate", NAN), example=1),
    Case("threshold-inf", "objective.coverage_threshold_dbm", _set("objective.coverage_threshold_dbm", -INF),
         example=2),
    Case("cpu-nan", "resources.cpu_per_world", _set("resources", {"cpu_per_world": NAN})),
    # huge or negative numbers
    Case("bounds-1e308", "reflector.bounds.min[0]",
         _set("reflector.bounds", {"min": [-1e308, 7.5, 5.0], "max": [1e308, 8.5, 5.0]}), example=1),
    Case("region-1e308", "targets.region.min[0]", _region(min=[-1e308, 0.0]), example=2),
    Case("region-tiny-spacing", "targets.region", _region(spacing_m=5e-324)),
    Case("freq-huge", "frequency_hz", _set("frequency_hz", 1e20), example=1),
    Case("power-huge", "transmitters[0].power_dbm", _set("transmitters.0.power_dbm", 1000.0), example=2),
    Case("tx-far", "transmitters[0].position[1]", _set("transmitters.0.position", [0.0, 1e7, 10.0])),
    Case("worlds-negative", "search.worlds", _set("search.worlds", -3), example=1),
    Case("worlds-huge", "search.worlds", _set("search.worlds", 10**9), example=2),
    Case("seed-negative", "search.seed", _set("search.seed", -1)),
    Case("size-negative", "reflector.size_m", _set("reflector.size_m", [-1.0, 2.0]), example=1),
    Case("temperature-zero", "objective.softmin_temperature_db", _set("objective.softmin_temperature_db", 0),
         example=2),
    # empty lists and values
    Case("tx-empty", "transmitters", _set("transmitters", [])),
    Case("size-empty", "reflector.size_m", _set("reflector.size_m", []), example=1),
    Case("no-targets", "targets", _set("targets", {"points": []}), example=2),
    Case("initial-empty", "search.initial_poses[0]", _set("search.initial_poses", [[]])),
    Case("output-empty", "output", _set("output", ""), example=1, output_flag=False),
    # duplicate keys, broken files
    Case("dup-search", "given twice", text=lambda t: t + "search: {steps: 3, prune: off}\n"),
    Case("dup-nested", "'worlds' given twice", text=lambda t: t.replace("  worlds: 8\n", "  worlds: 8\n  worlds: 2\n"),
         example=1),
    Case("binary", "not a text file", text=lambda t: b"\x89PNG\r\n\x1a\n\x00\xff\xfe" + bytes(range(256)),
         example=2),
    Case("empty-file", "(top level)", text=lambda t: ""),
    Case("yaml-syntax", "not valid YAML", text=lambda t: t + "search: [unclosed\n", example=1),
    # unwritable outputs
    Case("output-proc", "--output", args=["--output", "/proc/reflectopt-fuzz/out"], output_flag=False),
    Case("output-below-file", "output", _set("output", "{tmp}/a-file/out"), example=2, output_flag=False),
    # command-line overrides
    Case("cli-worlds-negative", "--worlds", args=["--worlds", "-3"]),
    Case("cli-worlds-zero", "--worlds", args=["--worlds", "0"], example=1),
    Case("cli-worlds-huge", "--worlds", args=["--worlds", "1000000000"], example=2),
    Case("cli-worlds-text", "--worlds", args=["--worlds", "1e9"]),
    Case("cli-device", "--device", args=["--device", "gpu"], example=1),
    Case("cli-pose-nan", "--pose", args=["evaluate", "--pose", "nan,8,5,140"], example=2),
    Case("cli-pose-short", "--pose", args=["evaluate", "--pose", "24,8"]),
    Case("cli-samples", "--samples", args=["evaluate", "--pose", "24,8,5,140", "--samples", "-5"], example=1),
    Case("cli-grid-spacing", "--spacing", args=["grid", "--spacing", "nan"], example=2),
    Case("cli-grid-refine", "--refine", args=["grid", "--refine", "-1"]),
    Case("cli-calibrate-steps", "--steps", args=["calibrate", "--steps", "0"], example=1),
    # a scene that is not one, or a store without credentials: bad input, exit 2
    Case("scene-missing", "scene", _set("scene", "/nonexistent/scene-folder"), example=2),
    Case("scene-not-an-archive", "corrupt or unknown archive", _set("scene", "{tmp}/text.tar.gz"),
         setup=lambda t: (t / "text.tar.gz").write_text("not an archive\n")),
    Case("scene-not-xml", "cannot be loaded by Sionna", _set("scene", "{tmp}/a-file")),
    Case("scene-no-scene-xml", "no scene.xml", _set("scene", "{tmp}/bundle"), example=1,
         setup=lambda t: (t / "bundle").mkdir()),
    Case("scene-no-credentials", "no AWS credentials", _set("scene", "s3://fuzz-bucket/scenes/x"), example=2,
         env=NO_CREDENTIALS),
    Case("output-no-credentials", "no AWS credentials", args=["--output", "s3://fuzz-bucket/results"],
         env=NO_CREDENTIALS),
    # hostile scene bundles (links; tests/test_bundle_links.py has them all): refused before anything is read
    Case("bundle-link-to-file", "'meshes/pw' is a symbolic link", _set("scene", "{tmp}/bundle"), example=1,
         setup=_linked_scene("meshes/pw", "/etc/passwd")),
    Case("bundle-link-to-folder", "'meshes/etc' is a symbolic link", _set("scene", "{tmp}/bundle"), example=2,
         setup=_linked_scene("meshes/etc", "/etc")),
    Case("bundle-loop", "'meshes/loop' is a symbolic link", _set("scene", "{tmp}/bundle/scene.xml"),
         setup=_linked_scene("meshes/loop", ".")),
    Case("bundle-environ", "'meshes/env' is a symbolic link", _set("scene", "{tmp}/bundle"), example=1,
         setup=_linked_scene("meshes/env", "/proc/self/environ")),
    Case("bundle-chain-archive", "unsafe archive: 'meshes/x' is a symbolic link",
         _set("scene", "{tmp}/bundle.tar.gz"), example=2, setup=_chain_archive("etc/passwd")),
    Case("bundle-chain-environ", "unsafe archive: 'meshes/x' is a symbolic link",
         _set("scene", "{tmp}/bundle.tar.gz"), setup=_chain_archive("proc/self/environ")),
    # accepted silently before (issue 22): a start far outside the bounds, targets no path can reach, a wrong
    # scene_sha256 not naming its key, a NUL reported at "?"
    Case("initial-far", "search.initial_poses[0].x: 300 is 269.7 m outside reflector.bounds",
         _set("search.initial_poses", [[300.0, -12.0, 4.0, 100.0]]), example=1),
    Case("initial-yaw-far", "search.initial_poses[0].yaw_deg",
         _set("search.initial_poses", [[29.3, 1.5, 1.8, 170.0]])),
    Case("target-10km", "targets.points[0]: [10000.0, 0.0, 1.5] is 9908 m outside the scene",
         _set("targets", {"points": [[19.0, -25.0, 1.5], [10000.0, 0.0, 1.5]][1:]}), example=1),
    Case("target-below-ground", "targets.points[1]: [19.0, -25.0, -500.0] is 500 m below",
         _set("targets", {"points": [[19.0, -25.0, 1.5], [19.0, -25.0, -500.0]]}), example=1),
    Case("region-below-ground", "targets.region (its point 0)", _region(z=-100.0)),
    Case("sha-mismatch", "scene_sha256: ", _set("scene_sha256", "1" * 64)),
    Case("nul-in-name", "line 1 (name): not valid YAML (the character #x0000 (NUL)",
         text=lambda t: t.replace("name: ", "name: a\x00", 1), example=2),
    # what cannot be reached: exit 1
    Case("store-down-output", "--output", args=["--output", "s3://fuzz-bucket/results"], code=1),
    Case("store-down-scene", "scene", _set("scene", "s3://fuzz-bucket/scenes/x"), code=1, example=1),
]
SUBPROCESS = {"binary", "worlds-negative", "output-proc", "cli-worlds-negative", "bundle-loop"}  # also run as real processes


def _experiment(case: Case, tmp_path: Path) -> Path:
    src = EXAMPLE_FILES[case.example % len(EXAMPLE_FILES)]
    text = src.read_text()
    data = yaml.safe_load(text)
    data["scene"] = str((src.parent / data["scene"]).resolve()) if not data["scene"].startswith("builtin:") \
        else data["scene"]
    data["output"] = str(tmp_path / "out")
    if case.setup is not None:
        case.setup(tmp_path)
    if case.data is not None:
        case.data(data)
        for key in ("output", "scene"):
            if isinstance(data.get(key), str):
                data[key] = data[key].format(tmp=tmp_path)
    text = yaml.safe_dump(data, sort_keys=False, width=200)
    if case.text is not None:
        text = case.text(text)
    f = tmp_path / f"{case.id}.yaml"
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    return f


def _argv(case: Case, f: Path, tmp_path: Path) -> list[str]:
    if case.args and not case.args[0].startswith("-"):
        return [case.args[0], str(f), *case.args[1:]]
    extra = ["--output", str(tmp_path / "out")] if case.output_flag and "--output" not in case.args else []
    return ["run", str(f), "--no-progress", *extra, *case.args]


@pytest.fixture
def fuzz_env(tmp_path, monkeypatch, request):
    (tmp_path / "a-file").write_text("a file where a folder would go\n")
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_ACCESS_KEY_ID": "fuzz",
           "AWS_SECRET_ACCESS_KEY": "fuzz", "AWS_DEFAULT_REGION": "us-east-1", "REFLECTOPT_S3_RETRY_S": "1",
           "REFLECTOPT_CACHE_DIR": str(tmp_path / "cache")}  # nothing listens there: the store is down
    callspec = getattr(request.node, "callspec", None)
    case = callspec.params.get("case") if callspec is not None else None
    env.update(case.env if case is not None else {})
    for k, v in env.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)
    return env


def _check(case: Case, rc: int, text: str, tmp_path: Path) -> None:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert rc == case.code, (case.id, rc, text)
    assert "Traceback" not in text, (case.id, text)
    assert 1 <= len(lines) <= 3, (case.id, lines)
    assert case.key in text, (case.id, case.key, text)
    written = [p for p in (tmp_path / "out").rglob("*")] if (tmp_path / "out").exists() else []
    assert written == [], (case.id, written)


def test_there_are_enough_cases():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input_is_one_clean_line(case, tmp_path, fuzz_env, capsys, monkeypatch):
    from optimizer.cli import main
    from optimizer.cli import run as run_cli

    def accepted(*args, **kw):  # an input that gets this far was not refused (and must not start a run)
        raise AssertionError(f"{case.id}: accepted")

    monkeypatch.setattr(run_cli, "start_ray", accepted)

    f = _experiment(case, tmp_path)
    try:
        rc = main(_argv(case, f, tmp_path))
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    out, err = capsys.readouterr()
    _check(case, rc, out + err, tmp_path)


@pytest.mark.parametrize("case", [c for c in CASES if c.id in SUBPROCESS], ids=[c.id for c in CASES if c.id in SUBPROCESS])
def test_malformed_input_as_a_real_process(case, tmp_path, fuzz_env):
    f = _experiment(case, tmp_path)
    r = subprocess.run([sys.executable, "-m", "optimizer.cli", *_argv(case, f, tmp_path)], capture_output=True,
                       text=True, cwd=REPO,
                       env={k: v for k, v in {**os.environ, **fuzz_env}.items() if v is not None}, timeout=300)
    _check(case, r.returncode, r.stdout + r.stderr, tmp_path)


def test_negative_numbers_in_pose_are_values(tmp_path):
    """`--pose -5,7.5,5,141` is a pose, not an unknown option (argparse took only `-5` as a number)."""
    from optimizer.cli import build_parser

    args = build_parser().parse_args(["evaluate", "e.yaml", "--pose", "-5,7.5,5,141"])
    assert args.pose == "-5,7.5,5,141"
    args = build_parser().parse_args(["evaluate", "e.yaml", "--pose", "-.5,-7.5,5,-141;1,2,3,4"])
    assert args.pose == "-.5,-7.5,5,-141;1,2,3,4"
