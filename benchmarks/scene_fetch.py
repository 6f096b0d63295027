"""Scene fetch benchmark: cold vs cached resolve of a >= 20 MB bundle from a local S3 server (moto_server on
127.0.0.1, started and stopped here), and the bytes N concurrent worlds on one node download (target: one
download). Usage: python benchmarks/scene_fetch.py [--mb 24] [--worlds 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(port: int) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen([str(exe) if exe.exists() else "moto_server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    raise SystemExit("moto_server did not start")


def make_bundle(d: Path, mb: int) -> Path:
    (d / "meshes").mkdir(parents=True)
    (d / "scene.xml").write_text("<scene version=\"2.1.0\"/>\n")
    per = 4 * 1024 * 1024
    left, i = mb * 1024 * 1024, 0
    while left > 0:
        n = min(per, left)
        (d / "meshes" / f"part{i:02d}.ply").write_bytes(os.urandom(n))  # incompressible, like real meshes
        left -= n
        i += 1
    return d


def _world(args):
    uri, cache_dir, barrier_t = args
    from optimizer.store import assets

    while time.time() < barrier_t:  # start together
        time.sleep(0.001)
    t = time.perf_counter()
    assets.resolve_scene(uri, cache_dir=cache_dir)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=24)
    ap.add_argument("--worlds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    port = free_port()
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})
    os.environ.pop("REFLECTOPT_CACHE_DIR", None)
    proc = start_moto(port)
    try:
        from optimizer.store import assets, storage

        storage.client().create_bucket(Bucket="bench")
        with tempfile.TemporaryDirectory(prefix="scene-fetch-") as tmp:
            tmp = Path(tmp)
            src = make_bundle(tmp / "bundle", a.mb)
            uri = "s3://bench/scenes/big"
            t = time.perf_counter()
            sha = assets.push_bundle(src, uri)
            push_s = time.perf_counter() - t
            manifest = storage.read_text(f"{uri}/bundle.json")
            import json

            archive_bytes = json.loads(manifest)["archive_bytes"]

            cold, warm, pinned = [], [], []
            for r in range(a.repeats):
                cache = tmp / f"cache{r}"
                t = time.perf_counter()
                assets.resolve_scene(uri, cache_dir=cache)
                cold.append(time.perf_counter() - t)
                t = time.perf_counter()
                assets.resolve_scene(uri, cache_dir=cache)
                warm.append(time.perf_counter() - t)
                t = time.perf_counter()
                assets.resolve_scene(uri, sha256=sha, cache_dir=cache)
                pinned.append(time.perf_counter() - t)

            node = tmp / "node-cache"
            start_at = time.time() + 0.5
            with multiprocessing.get_context("spawn").Pool(a.worlds) as pool:
                times = pool.map(_world, [(uri, str(node), start_at)] * a.worlds)
            log = assets.downloads_logged(node)
            got_bytes = sum(e["bytes"] for e in log)

        def med(xs):
            return sorted(xs)[len(xs) // 2]
        print(f"scene fetch: bundle {a.mb} MiB unpacked, archive {archive_bytes / 2**20:.1f} MiB, "
              f"moto_server on 127.0.0.1 (push {push_s:.2f} s)")
        print(f"{'case':<34} {'median':>10}")
        print(f"{'cold fetch (download+verify+unpack)':<34} {med(cold) * 1e3:>8.0f} ms")
        print(f"{'cached (reads bundle.json)':<34} {med(warm) * 1e3:>8.1f} ms")
        print(f"{'cached, hash pinned (no network)':<34} {med(pinned) * 1e3:>8.2f} ms")
        print(f"cold / cached = {med(cold) / med(warm):.0f}x, cold / pinned = {med(cold) / med(pinned):.0f}x")
        print(f"{a.worlds} concurrent worlds on one node: {len(log)} download(s), {got_bytes} bytes "
              f"({got_bytes / archive_bytes:.2f} x archive); slowest world {max(times):.2f} s "
              f"-> {'OK' if len(log) == 1 else 'FAIL'} (target: exactly 1)")
        return 0 if len(log) == 1 else 1
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
