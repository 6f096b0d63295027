"""Helpers for the Kubernetes tests: find helm/kubectl, render the chart, parse multi-document YAML."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "helm" / "reflectopt"
CI_VALUES = sorted((CHART / "ci").glob("values.*.yaml"))


def tool(name: str) -> str | None:
    local = REPO / "tools" / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


def need(name: str, how: str) -> str:
    path = tool(name)
    if path is None:
        pytest.skip(f"{name} not installed ({how})")
    return path


def helm() -> str:
    return need("helm", "run `bash scripts/install-helm.sh`; CI does")


def run(args: list[str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, check=False, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def helm_template(*values_files, release: str = "demo", namespace: str = "rf", extra: list[str] = ()) -> list[dict]:
    args = [helm(), "template", release, str(CHART), "-n", namespace]
    for f in values_files:
        args += ["-f", str(f)]
    return docs(run(args + list(extra)).stdout)


def by_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o.get("kind") == kind]


def pod_templates(rc: dict) -> list[tuple[str, dict]]:
    """(group, pod template) for the head and every worker group of a RayCluster spec."""
    spec = rc["spec"] if "headGroupSpec" not in rc else rc
    out = [("head", spec["headGroupSpec"]["template"])]
    out += [(g["groupName"], g["template"]) for g in spec.get("workerGroupSpecs") or []]
    return out
