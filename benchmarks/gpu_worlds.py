#!/usr/bin/env python3
"""On a GPU machine: check the CUDA variant and measure worlds per GPU.

1. CUDA variant: `cuda_ad_mono_polarized` loads, Sionna's free-space power matches Friis on the GPU, and the
   street example's truth at fixed poses is printed (compare with the CPU: `reflectopt evaluate ... --json`).
2. Worlds per GPU: N = 1, 4, 16 world processes share one GPU (what `gpu_per_world = 1/N` packs), each runs
   the street example's surrogate steps; prints aggregate world-steps per second, the speed-up over N = 1,
   GPU memory per world (from nvidia-smi's used memory before/after) and host memory per world.

    python benchmarks/gpu_worlds.py [--steps 20] [--worlds 1,4,16] [--samples 100000,1000000] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEVICE = os.environ.get("REFLECTOPT_BENCH_DEVICE", "cuda")  # "cpu" only to smoke-test this script
POSES = [(23.7, 8.26, 5.0, 139.2), (21.0, 8.0, 5.0, 141.0), (26.0, 7.6, 5.0, 120.0)]


def gpu_used_mb() -> float | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used,memory.total,name", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
        return float(out.split(",")[0])
    except Exception:  # noqa: BLE001
        return None


def gpu_info() -> dict:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
        name, total, driver = [x.strip() for x in out.split(",")]
        return {"name": name, "memory_total": total, "driver": driver}
    except Exception as err:  # noqa: BLE001
        return {"error": str(err)}


def check_variant(samples: int) -> dict:
    import numpy as np

    from optimizer.physics import backend
    from optimizer.experiment import load_experiment
    from optimizer.physics.geometry import free_space_gain_db, wavelength_m
    from optimizer.records import PlatePose as Pose

    variant = backend.init(DEVICE)
    import mitsuba as mi
    import sionna.rt as rt

    sc = rt.load_scene(merge_shapes=False)
    sc.frequency = 3.5e9
    sc.tx_array = rt.PlanarArray(num_rows=1, num_cols=1, pattern="iso", polarization="V")
    sc.rx_array = rt.PlanarArray(num_rows=1, num_cols=1, pattern="iso", polarization="V")
    sc.add(rt.Transmitter("tx", position=mi.Point3f(0.0, 0.0, 10.0), power_dbm=0))
    for i, d in enumerate([5.0, 37.0, 250.0]):
        sc.add(rt.Receiver(f"rx{i}", position=mi.Point3f(d, 0.0, 10.0)))
    a_re, a_im = rt.PathSolver()(sc, max_depth=0, samples_per_src=10000).a
    a2 = np.array(a_re, dtype=float) ** 2 + np.array(a_im, dtype=float) ** 2
    got = 10 * np.log10(a2.reshape(3, -1).sum(-1))
    ref = free_space_gain_db([5.0, 37.0, 250.0], wavelength_m(3.5e9))
    from optimizer.physics.scene import RadioScene

    exp = load_experiment(REPO / "examples" / "street-corner.yaml")
    exp.solver.samples_per_src = samples
    rs = RadioScene(exp, device=DEVICE)
    truth = {str(p): rs.rss_dbm(Pose(*p)).tolist() for p in POSES}
    truth["baseline"] = rs.rss_dbm(None).tolist()
    return {"variant": variant, "mi_variant": mi.variant(), "friis_max_err_db": float(np.max(np.abs(got - ref))),
            "street_truth_dbm": truth}


def child(idx: int, samples: int, steps: int):
    """One world process: warm up, print READY, wait for GO on stdin, time `steps` steps, print the
    result, then hold its GPU memory until EXIT (pipes only: no semaphores, which some sandboxes lack)."""
    try:
        from optimizer.experiment import load_experiment
        from optimizer.records import PlatePose as Pose
        from optimizer.physics.scene import RadioScene
        from optimizer.search.world import World

        exp = load_experiment(REPO / "examples" / "street-corner.yaml")
        exp.solver.samples_per_src = samples
        exp.search.steps = steps + 2
        rs = RadioScene(exp, device=DEVICE, threads=1)
        w = World(exp, idx, Pose(20.0 + 0.4 * (idx % 16), 7.6 + 0.05 * (idx % 16), 5.0, 100.0 + 4 * (idx % 16)),
                  radio_scene=rs)
        w.step()
        w.step()  # warm: kernels compiled
        print("READY", flush=True)
        sys.stdin.readline()
        t0 = time.perf_counter()
        for _ in range(steps):
            w.step()
        dt = time.perf_counter() - t0
        print("DONE " + json.dumps({"idx": idx, "wall_s": dt, "steps": steps,
                                    "host_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                    "best": w.best.truth.min_rss_dbm}), flush=True)
        sys.stdin.readline()
    except Exception as err:  # noqa: BLE001
        print("DONE " + json.dumps({"idx": idx, "error": f"{type(err).__name__}: {err}"}), flush=True)


def _read_tagged(p, tag: str, timeout_s: float = 900):
    t_end = time.time() + timeout_s
    while time.time() < t_end:
        line = p.stdout.readline()
        if not line:
            raise RuntimeError(f"world process exited before {tag}")
        if line.startswith(tag):
            return line[len(tag):].strip()
        if line.startswith("DONE "):  # an early error
            raise RuntimeError(json.loads(line[5:]).get("error", "failed"))
    raise TimeoutError(tag)


def measure(n: int, samples: int, steps: int) -> dict:
    before = gpu_used_mb()
    t_start = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen([sys.executable, __file__, "--child", f"{i},{samples},{steps}"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env) for i in range(n)]
    try:
        for p in procs:
            _read_tagged(p, "READY")
        t_ready = time.perf_counter() - t_start
        t0 = time.perf_counter()
        for p in procs:
            p.stdin.write("GO\n")
            p.stdin.flush()
        res = [json.loads(_read_tagged(p, "DONE ")) for p in procs]
        wall = time.perf_counter() - t0
        during = gpu_used_mb()
    except Exception as err:  # noqa: BLE001
        for p in procs:
            p.kill()
        return {"worlds": n, "samples_per_src": samples, "error": f"{type(err).__name__}: {err}"}
    for p in procs:
        try:
            p.stdin.write("EXIT\n")
            p.stdin.flush()
        except BrokenPipeError:
            pass
        p.wait(timeout=120)
    errors = [r["error"] for r in res if "error" in r]
    if errors:
        return {"worlds": n, "samples_per_src": samples, "error": errors[0]}
    total_steps = sum(r["steps"] for r in res)
    return {"worlds": n, "samples_per_src": samples, "world_steps_per_s": total_steps / wall, "wall_s": wall,
            "startup_s": t_ready, "mean_step_s": sum(r["wall_s"] / r["steps"] for r in res) / n,
            "gpu_mb_per_world": (during - before) / n if during is not None and before is not None else None,
            "host_mb_per_world": sum(r["host_mb"] for r in res) / n}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--worlds", default="1,4,16")
    ap.add_argument("--samples", default="100000,1000000")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        idx, samples, steps = (int(v) for v in args.child.split(","))
        return child(idx, samples, steps)
    out = {"gpu": gpu_info()}
    print("GPU:", out["gpu"], flush=True)
    try:
        out["variant_check"] = check_variant(100000)
        vc = out["variant_check"]
        print(f"variant {vc['mi_variant']}: Friis max error {vc['friis_max_err_db']:.4f} dB", flush=True)
    except Exception as err:  # noqa: BLE001
        out["variant_check"] = {"error": f"{type(err).__name__}: {err}"}
        print("variant check FAILED:", out["variant_check"], flush=True)
    out["scaling"] = []
    for samples in [int(s) for s in args.samples.split(",")]:
        base = None
        for n in [int(x) for x in args.worlds.split(",")]:
            r = measure(n, samples, args.steps)
            out["scaling"].append(r)
            if "error" in r:
                print(f"N={n} samples={samples}: ERROR {r['error']}", flush=True)
                continue
            base = base or r["world_steps_per_s"]
            gm = f"{r['gpu_mb_per_world']:.0f}" if r["gpu_mb_per_world"] is not None else "n/a"
            print(f"samples {samples:>8} worlds {n:>3}: {r['world_steps_per_s']:7.2f} world-steps/s "
                  f"(x{r['world_steps_per_s'] / base:.2f} vs 1 world), step {r['mean_step_s']:.3f} s, "
                  f"GPU {gm} MB/world, host {r['host_mb_per_world']:.0f} MB/world, start {r['startup_s']:.0f} s",
                  flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
