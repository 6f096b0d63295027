#!/usr/bin/env python3
"""On a GPU machine: check the CUDA variant against the CPU truth and measure worlds per GPU (issues 3, 13).

1. CUDA variant: `cuda_ad_mono_polarized` loads, Sionna's free-space power matches Friis on the GPU, and the
   street example's truth at three poses (and without the plate) equals the CPU truth to 0.01 dB: the CPU
   figures come from `--cpu-reference FILE`, written beforehand on a CPU machine by
   `python benchmarks/gpu_worlds.py --write-cpu-reference FILE` (scripts/gpu_check.sh does both).
2. Worlds per GPU: N = 1, 4, 10 world processes share one GPU (what `gpu_per_world = 1/N` packs), each the
   street example, the same start and world, measured as `reflectopt calibrate` measures them
   (`optimizer.search.throughput`: the same warm-up for every N, then the steps finished while all were
   stepping): world-steps per second, the growth, GPU memory per world (nvidia-smi's used memory once all are
   loaded, over N) and host memory per world.

Targets (issue 13): throughput grows 4 -> 10 worlds by >= 1.5x; at 100 000 samples it reaches >= 2x the seed's
22.4 world-steps/s; GPU memory per world <= 1.5 GB.

    python benchmarks/gpu_worlds.py [--steps 10] [--worlds 1,4,10] [--samples 100000] [--cpu-reference F]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEVICE = os.environ.get("REFLECTOPT_BENCH_DEVICE", "cuda")  # "cpu" only to smoke-test this script
POSES = [(23.7, 8.26, 5.0, 139.2), (21.0, 8.0, 5.0, 141.0), (26.0, 7.6, 5.0, 120.0)]
SEED_WORLD_STEPS_S = 22.4  # the seed's H100 figure at 16 worlds, 100 000 samples (benchmarks/README.md)
TRUTH_TOLERANCE_DB = 0.01
GPU_MB_PER_WORLD_MAX = 1500.0


def gpu_info() -> dict:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
        name, total, driver = [x.strip() for x in out.split(",")]
        return {"name": name, "memory_total": total, "driver": driver}
    except Exception as err:  # noqa: BLE001
        return {"error": str(err)}


def street(samples: int):
    from optimizer.experiment import load_experiment

    from optimizer.experiment import with_overrides

    exp = load_experiment(REPO / "examples" / "street-corner.yaml")
    return with_overrides(exp, "street-corner", {"solver.samples_per_src": samples})


def street_truth(device: str, samples: int) -> dict:
    from optimizer.physics.scene import RadioScene
    from optimizer.records import PlatePose

    rs = RadioScene(street(samples), device=device)
    out = {str(p): rs.rss_dbm(PlatePose(*p)).tolist() for p in POSES}
    out["baseline"] = rs.rss_dbm(None).tolist()
    return out


def check_variant(samples: int, reference: dict | None) -> dict:
    import numpy as np

    from optimizer.physics import backend
    from optimizer.physics.geometry import free_space_gain_db, wavelength_m

    device = backend.init(DEVICE)
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
    out = {"device": device, "mi_variant": mi.variant(), "friis_max_err_db": float(np.max(np.abs(got - ref)))}
    truth = street_truth(DEVICE, samples)
    out["street_truth_dbm"] = truth
    if reference is not None:
        diffs = [abs(a - b) for k in reference for a, b in zip(reference[k], truth[k])
                 if a is not None and b is not None and np.isfinite(a) and np.isfinite(b)]
        same_paths = all(np.isfinite(a) == np.isfinite(b) for k in reference for a, b in zip(reference[k], truth[k]))
        out["cpu_max_diff_db"] = max(diffs) if diffs else None
        out["cpu_same_paths"] = same_paths
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10, help="timed steps per world (after 2 warm-up steps)")
    ap.add_argument("--worlds", default="1,4,10")
    ap.add_argument("--samples", default="100000")
    ap.add_argument("--cpu-reference", default=None, help="JSON of the CPU truth (--write-cpu-reference)")
    ap.add_argument("--write-cpu-reference", default=None, help="on a CPU machine: write the CPU truth and stop")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.write_cpu_reference:
        from optimizer.physics import backend

        backend.init("cpu")
        Path(args.write_cpu_reference).write_text(json.dumps(street_truth("cpu", 100000)))
        print(f"CPU truth of the street example at {len(POSES)} poses -> {args.write_cpu_reference}")
        return 0
    from optimizer.search import throughput

    reference = json.loads(Path(args.cpu_reference).read_text()) if args.cpu_reference else None
    out = {"gpu": gpu_info()}
    print("GPU:", out["gpu"], flush=True)
    checks = []
    try:
        vc = out["variant_check"] = check_variant(100000, reference)
        print(f"variant {vc['mi_variant']}: Friis max error {vc['friis_max_err_db']:.4f} dB", flush=True)
        checks.append(("Friis on the device", f"{vc['friis_max_err_db']:.4f} dB", vc["friis_max_err_db"] <= 0.01))
        if reference is not None:
            d = vc["cpu_max_diff_db"]
            checks.append(("street truth equals the CPU truth (3 poses + baseline)",
                           f"max {d:.4f} dB, same paths {vc['cpu_same_paths']}",
                           d is not None and d <= TRUTH_TOLERANCE_DB and vc["cpu_same_paths"]))
    except Exception as err:  # noqa: BLE001
        out["variant_check"] = {"error": f"{type(err).__name__}: {err}"}
        print("variant check FAILED:", out["variant_check"], flush=True)
        checks.append(("CUDA variant", out["variant_check"]["error"], False))
    out["scaling"] = []
    counts = [int(x) for x in args.worlds.split(",")]
    print(f"\n{'samples':>9} {'worlds':>6} {'world-steps/s':>14} {'vs 1':>6} {'growth/doubling':>16} {'s/step':>7} "
          f"{'GPU MB/world':>13} {'host MB/world':>14}", flush=True)
    for samples in [int(s) for s in args.samples.split(",")]:
        rows = {}
        for n in counts:
            try:
                r = throughput.measure(street(samples), n, steps=args.steps, device=DEVICE, threads=1)
            except Exception as err:  # noqa: BLE001
                print(f"{samples:>9} {n:>6} ERROR {type(err).__name__}: {err}", flush=True)
                out["scaling"].append({"worlds": n, "samples_per_src": samples, "error": str(err)})
                continue
            r["samples_per_src"] = samples
            out["scaling"].append(r)
            prev = rows[max(rows)] if rows else None
            rows[n] = r
            g = "" if prev is None else f"{100 * throughput.growth_per_doubling(prev['worlds'], prev['world_steps_per_s'], n, r['world_steps_per_s']):+.0f} %"  # noqa: E501
            gm = f"{r['gpu_mb_per_world']:.0f}" if r["gpu_mb_per_world"] is not None else "n/a"
            print(f"{samples:>9} {n:>6} {r['world_steps_per_s']:>14.2f} "
                  f"{r['world_steps_per_s'] / rows[min(rows)]['world_steps_per_s']:>5.2f}x {g:>16} "
                  f"{r['step_s']:>7.3f} {gm:>13} {r['host_mb_per_world']:>14.0f}", flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(out, indent=2))
        if 4 in rows and 10 in rows:
            x = rows[10]["world_steps_per_s"] / rows[4]["world_steps_per_s"]
            checks.append((f"{samples} samples: 4 -> 10 worlds per GPU", f"{x:.2f}x", x >= 1.5))
        if samples == 100000 and rows:
            top = max(r["world_steps_per_s"] for r in rows.values())
            checks.append(("100 000 samples: best world-steps/s vs 2 x the seed's 22.4",
                           f"{top:.1f} vs {2 * SEED_WORLD_STEPS_S:.1f}", top >= 2 * SEED_WORLD_STEPS_S))
        mem = [r["gpu_mb_per_world"] for r in rows.values() if r["gpu_mb_per_world"] is not None]
        if mem:
            checks.append((f"{samples} samples: GPU memory per world", f"{max(mem):.0f} MB (<= 1500)",
                           max(mem) <= GPU_MB_PER_WORLD_MAX))
        ok_rows = [rows[n] for n in counts if n in rows]
        if len(ok_rows) > 1:
            rec = throughput.recommend([r["worlds"] for r in ok_rows], [r["world_steps_per_s"] for r in ok_rows])
            print(f"{samples:>9} recommended worlds.perGpu (last count growing >= 10 % per doubling): {rec}")
    print()
    for name, detail, ok in checks:
        print(f"[{'PASS' if ok else 'MISS'}] {name}: {detail}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
