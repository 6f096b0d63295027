"""Concurrent worlds on the local device: world-steps per second for N worlds at once (`reflectopt calibrate`,
`benchmarks/gpu_worlds.py`).

Each world is its own process (as a Ray Tune trial is), with the same experiment, start and world id, so every
world does the same work. Every process loads its scene and makes `warmup` steps (kernels compiled, the
first exploration done), says READY and waits; when all are ready they start together (GO) and time `steps`
steps each. Throughput counts the steps finished between GO and the moment the first world finishes (all
of them stepping the whole time), over that span: every count N is measured in the same steady state after
the same warm-up. Pipes only (no semaphores, which some sandboxes lack).

`recommend` picks the largest count at which throughput still grew by at least `CALIBRATE_GROWTH_PER_DOUBLING`
per doubling of the worlds (the counts are powers of two).
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from optimizer.constants import CALIBRATE_GROWTH_PER_DOUBLING, CALIBRATE_MAX_WORLDS_GPU

READY, DONE = "READY", "DONE "


def world_counts(device: str, cpus: int, cpu_per_world: float = 1.0, limit: int | None = None) -> list[int]:
    """1, 2, 4, 8, ... up to what the device can hold at once: on the CPU the worlds that get their own cores
    (cpus / cpu_per_world), on a GPU CALIBRATE_MAX_WORLDS_GPU (or `limit`)."""
    top = limit if limit is not None else (
        max(1, int(cpus // max(cpu_per_world, 1e-9))) if device == "cpu" else CALIBRATE_MAX_WORLDS_GPU)
    out, n = [], 1
    while n <= max(1, top):
        out.append(n)
        n *= 2
    return out


def growth_per_doubling(n1: int, r1: float, n2: int, r2: float) -> float:
    """Throughput growth per doubling of the worlds between counts n1 < n2 (r: world-steps/s), e.g. 0.10."""
    return (r2 / r1) ** (1.0 / math.log2(n2 / n1)) - 1.0


def recommend(counts: list[int], rates: list[float], growth: float = CALIBRATE_GROWTH_PER_DOUBLING) -> int:
    """The largest count reached while throughput grew by >= `growth` per doubling at every step up to it."""
    best = counts[0]
    for (n1, r1), (n2, r2) in zip(zip(counts, rates), zip(counts[1:], rates[1:])):
        if not (r1 > 0 and r2 > 0) or growth_per_doubling(n1, r1, n2, r2) < growth:
            break
        best = n2
    return best


def gpu_used_mb() -> float | None:
    """The card's used memory [MB] (nvidia-smi), None without one."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout.strip().splitlines()
        return float(out[0]) if out else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def _read_tagged(p, tag: str, timeout_s: float):
    t_end = time.time() + timeout_s
    while time.time() < t_end:
        line = p.stdout.readline()
        if not line:
            raise RuntimeError(f"a world process exited before {tag.strip()}")
        if line.startswith(tag):
            return line[len(tag):].strip()
        if line.startswith(DONE):  # an early error
            raise RuntimeError(json.loads(line[len(DONE):]).get("error", "failed"))
    raise TimeoutError(f"no {tag.strip()} within {timeout_s:.0f} s")


def measure(exp, n: int, steps: int = 5, warmup: int = 2, device: str = "cpu", threads: int = 1,
            timeout_s: float = 900.0) -> dict:
    """N worlds at once on `device`: world-steps/s in the common steady state, mean step time, memory."""
    # no world reaches its last step (the final tolerance check)
    exp = exp.model_copy(update={"device": device,
                                 "search": exp.search.model_copy(update={"steps": warmup + steps + 1})})
    with tempfile.TemporaryDirectory(prefix="reflectopt-calibrate-") as tmp:
        spec = Path(tmp) / "experiment.json"
        spec.write_text(json.dumps(exp.model_dump(mode="json")))
        before = gpu_used_mb() if device == "cuda" else None
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "optimizer.search.throughput", str(spec), device, str(threads), str(warmup),
               str(steps)]
        procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
                 for _ in range(n)]
        try:
            for p in procs:
                _read_tagged(p, READY, timeout_s)
            during = gpu_used_mb() if device == "cuda" else None
            t_go = time.time()
            for p in procs:
                p.stdin.write("GO\n")
                p.stdin.flush()
            res = [json.loads(_read_tagged(p, DONE, timeout_s)) for p in procs]
        finally:
            for p in procs:
                try:
                    p.stdin.write("EXIT\n")
                    p.stdin.flush()
                except (BrokenPipeError, OSError):
                    pass
            for p in procs:
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
    errors = [r["error"] for r in res if "error" in r]
    if errors:
        raise RuntimeError(errors[0])
    t_end = min(r["ends"][-1] for r in res)  # the first world done: until then every world was stepping
    done = sum(sum(1 for t in r["ends"] if t <= t_end) for r in res)
    return {"worlds": n, "world_steps_per_s": done / max(t_end - t_go, 1e-9),
            "step_s": sum((r["ends"][-1] - t_go) / len(r["ends"]) for r in res) / n,
            "host_mb_per_world": sum(r["host_mb"] for r in res) / n,
            "gpu_mb_per_world": (during - before) / n if during is not None and before is not None else None}


def _child(spec: str, device: str, threads: int, warmup: int, steps: int) -> None:
    """One world process (see the module docstring)."""
    try:
        from optimizer.experiment import parse_experiment
        from optimizer.physics.scene import RadioScene
        from optimizer.search.starts import initial_poses
        from optimizer.search.world import World

        exp = parse_experiment(json.loads(Path(spec).read_text()), spec)
        rs = RadioScene(exp, device=device, threads=threads)
        w = World(exp, 0, initial_poses(exp, None, 1)[0][0], radio_scene=rs)
        for _ in range(warmup):
            w.step()
        print(READY, flush=True)
        sys.stdin.readline()
        ends = []
        for _ in range(steps):
            w.step()
            ends.append(time.time())
        print(DONE + json.dumps({"ends": ends, "host_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}),
              flush=True)
    except Exception as err:  # noqa: BLE001 - reported to the parent in one line
        print(DONE + json.dumps({"error": f"{type(err).__name__}: {err}"}), flush=True)
    sys.stdin.readline()  # hold the process (and its GPU memory) until the parent has read everything


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
