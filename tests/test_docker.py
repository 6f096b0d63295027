"""Images cannot be built here: check the Dockerfiles' structure and pins against requirements.lock (+ hadolint)."""

from __future__ import annotations

import re
import tomllib

import pytest
from kube_helpers import REPO, run, tool

DOCKERFILES = {"gpu": REPO / "docker" / "Dockerfile.gpu", "cpu": REPO / "docker" / "Dockerfile.cpu"}
LOCK = REPO / "requirements.lock"


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def args_of(text: str) -> dict[str, str]:
    return dict(re.findall(r"^ARG ([A-Z_]+)=(\S+)$", text, re.MULTILINE))


def instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("flavour", DOCKERFILES)
def test_base_image_matches_lock(flavour):
    text = DOCKERFILES[flavour].read_text()
    args = args_of(text)
    pins = lock_pins()
    assert args["RAY_VERSION"] == pins["ray"] == "2.60.0"
    py = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert args["PYTHON_TAG"] == "py311" and ">=3.11" in py
    (frm,) = [rest for word, rest in instructions(text) if word == "FROM"]
    if flavour == "gpu":
        assert frm == "rayproject/ray:${RAY_VERSION}-${PYTHON_TAG}-${CUDA_TAG}"
        assert re.fullmatch(r"cu12\d", args["CUDA_TAG"])
    else:
        assert frm == "rayproject/ray:${RAY_VERSION}-${PYTHON_TAG}"
    assert "assert sys.version_info[:2] == (3, 11)" in text


@pytest.mark.parametrize("flavour", DOCKERFILES)
def test_installs_exactly_the_lock_then_the_package_without_deps(flavour):
    steps = instructions(DOCKERFILES[flavour].read_text())
    runs = [rest for word, rest in steps if word == "RUN"]
    pip_lines = [r for r in runs if "pip install" in r]
    assert len(pip_lines) == 2
    assert "pip install --no-cache-dir -r requirements.lock" in pip_lines[0]
    assert "pip install --no-cache-dir --no-deps ." in pip_lines[1]
    # nothing is installed by name, so nothing can disagree with the lock
    for r in pip_lines:
        assert not re.search(r"pip install[^&]*\b[A-Za-z][\w.-]*==", r), r
    copies = [rest for word, rest in steps if word == "COPY"]
    assert copies[0].endswith("requirements.lock ./")  # dependency layer before the source
    assert any("optimizer ./optimizer" in c for c in copies[1:])


@pytest.mark.parametrize("flavour", DOCKERFILES)
def test_runs_as_non_root(flavour):
    steps = instructions(DOCKERFILES[flavour].read_text())
    users = [rest for word, rest in steps if word == "USER"]
    assert users[-1] == "1000:100"  # the Ray images' `ray` user, numeric so runAsNonRoot can verify it
    last_user = max(i for i, (w, _) in enumerate(steps) if w == "USER")
    assert not any(w == "RUN" for w, _ in steps[last_user:] if "apt-get" in _)


@pytest.mark.parametrize("flavour", DOCKERFILES)
def test_llvm_and_device(flavour):
    text = DOCKERFILES[flavour].read_text()
    assert "libllvm19" in text and "DRJIT_LIBLLVM_PATH=/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1" in text
    assert re.search(r"^ENV REFLECTOPT_DEVICE=(\w+)", text, re.MULTILINE).group(1) == {"cpu": "cpu", "gpu": "auto"}[flavour]
    assert "rm -rf /var/lib/apt/lists/*" in text


def test_lock_agrees_with_pyproject_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = lock_pins()
    deps = project["dependencies"] + project["optional-dependencies"]["dev"]
    exact = [re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==(\S+)$", d) for d in deps]
    checked = 0
    for m in filter(None, exact):
        assert pins[m.group(1).lower()] == m.group(3), m.group(1)
        checked += 1
    assert checked >= 2  # ray and sionna-rt
    for dep in deps:  # every dependency is locked
        name = re.match(r"^[A-Za-z0-9_.-]+", dep).group(0).lower().replace("_", "-")
        assert name in pins, name


def test_dockerignore_keeps_context_small():
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert lines[next(i for i, x in enumerate(lines) if not x.startswith("#"))] == "**"
    allowed = {x[1:] for x in lines if x.startswith("!")}
    copied = set()
    for text in (p.read_text() for p in DOCKERFILES.values()):
        for word, rest in instructions(text):
            if word == "COPY":
                copied |= {p.rstrip("/") for p in rest.split()[1:-1]}
    assert copied <= {a.rstrip("/") for a in allowed}


@pytest.mark.parametrize("flavour", DOCKERFILES)
def test_hadolint(flavour):
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (run `bash scripts/install-hadolint.sh`)")
    proc = run([hadolint, "--no-color", str(DOCKERFILES[flavour])], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
