"""Mitsuba / Dr.Jit set-up: variant (CPU LLVM or CUDA), libLLVM location, thread count.

Must run before anything imports `sionna.rt`. Idempotent within a process.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from optimizer.constants import DEFAULT_LIBLLVM_PATH, ENV_DEVICE, ENV_LIBLLVM, VARIANT_CPU, VARIANT_GPU
from optimizer.errors import ReflectoptError

_state: dict = {}


def _gpu_visible() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return shutil.which("nvidia-smi") is not None or Path("/dev/nvidia0").exists()


def resolve_device(device: str = "auto") -> str:
    """`auto` -> `cuda` when a GPU is visible, else `cpu`. REFLECTOPT_DEVICE overrides `auto`."""
    env = os.environ.get(ENV_DEVICE, "").strip().lower()
    if device == "auto" and env in ("cpu", "cuda"):
        device = env
    if device == "auto":
        device = "cuda" if _gpu_visible() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ReflectoptError(f"device: {device!r} is not one of auto, cpu, cuda")
    return device


def init(device: str = "auto", threads: int | None = None) -> str:
    """Select the Mitsuba variant for `device` and set Dr.Jit's worker-thread count. Returns the variant."""
    device = resolve_device(device)
    if device == "cpu" and ENV_LIBLLVM not in os.environ and Path(DEFAULT_LIBLLVM_PATH).exists():
        os.environ[ENV_LIBLLVM] = DEFAULT_LIBLLVM_PATH
    variant = VARIANT_GPU if device == "cuda" else VARIANT_CPU
    import drjit as dr
    import mitsuba as mi

    if _state.get("variant") != variant:
        try:
            mi.set_variant(variant)
        except Exception as err:  # noqa: BLE001 - turn into one clear line
            hint = ("install libLLVM 19 (apt-get install libllvm19) or set DRJIT_LIBLLVM_PATH"
                    if device == "cpu" else "no usable CUDA device; set device: cpu")
            raise ReflectoptError(f"device: cannot use Mitsuba variant {variant} ({err}); {hint}") from None
        _state["variant"] = variant
    if threads is not None and device == "cpu":
        dr.set_thread_count(max(1, int(threads)))
    return variant


def versions() -> dict:
    """Versions of the libraries that shape the numbers (recorded in summary.json)."""
    import importlib.metadata as md

    out = {}
    for pkg in ("reflectopt", "sionna-rt", "mitsuba", "drjit", "ray", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    out["variant"] = _state.get("variant")
    return out
