"""Mitsuba / Dr.Jit set-up: the device rule, the variant (CPU LLVM or CUDA), libLLVM, thread count.

`resolve_device` is the one rule for where truth runs, used by the worlds, the driver, the summary and
`calibrate`:

1. an explicit `cpu` or `cuda` (experiment `device:` or the command line) wins;
2. a process given no GPU share (a world with `resources.gpu_per_world: 0`) runs on the CPU;
3. otherwise `REFLECTOPT_DEVICE=cpu` (the Helm chart sets it on every pod) keeps it on the CPU, and else
   it runs on CUDA when a GPU is visible, on the CPU when none is (a GPU-less head pod, a laptop).

`init` must run before anything imports `sionna.rt`. Idempotent within a process.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from optimizer.constants import (DEFAULT_LIBLLVM_PATH, ENV_DEVICE, ENV_LIBLLVM, LLVM_ALIGN_BYTES, VARIANT_CPU,
                                 VARIANT_GPU)
from optimizer.errors import ReflectoptError

DEVICES = ("auto", "cpu", "cuda")
_state: dict = {}


def gpu_visible() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return shutil.which("nvidia-smi") is not None or Path("/dev/nvidia0").exists()


def resolve_device(device: str = "auto", gpu_share: float | None = None) -> str:
    """`cpu` or `cuda` for a process asked for `device` and given `gpu_share` GPUs (None: a process with
    no Ray share of its own, such as the driver or a one-off command)."""
    device = (device or "auto").strip().lower()
    if device not in DEVICES:
        raise ReflectoptError(f"device: {device!r} is not one of {', '.join(DEVICES)}")
    if device != "auto":
        return device
    if gpu_share is not None and gpu_share <= 0:
        return "cpu"
    if os.environ.get(ENV_DEVICE, "").strip().lower() == "cpu":
        return "cpu"
    return "cuda" if gpu_visible() else "cpu"


def init(device: str = "auto", threads: int | None = None, gpu_share: float | None = None) -> str:
    """Select the Mitsuba variant for the resolved device and set Dr.Jit's worker-thread count (CPU).
    Returns the device actually used (`cpu` or `cuda`)."""
    device = resolve_device(device, gpu_share)
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
    return device


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


def to_float(values):
    """A Dr.Jit Float of `values` (cast to float32) whose host buffer starts on LLVM_ALIGN_BYTES: Dr.Jit maps a
    numpy array's memory as it lies, and a kernel reading a buffer off that boundary is another kernel (`align
    1` loads), so every alignment pattern of a model's inputs was compiled anew (measured: 32 compilations
    per multi-plate evaluation). The values are those of `mi.Float(np.asarray(values, np.float32))`."""
    import mitsuba as mi

    a = np.asarray(values, dtype=np.float32).reshape(-1)
    pad = LLVM_ALIGN_BYTES // a.itemsize
    buf = np.empty(a.size + pad, dtype=np.float32)
    start = (-buf.ctypes.data % LLVM_ALIGN_BYTES) // a.itemsize
    out = buf[start:start + a.size]
    out[...] = a
    return mi.Float(out)
