"""Footprints to meshes: roofs and floors triangulated by trimesh (mapbox-earcut, holes kept), walls from
`optimizer.sites.walls` (one rectangle, two triangles, per exposed wall piece); one PLY per ITU material plus
the ground, and the Mitsuba scene.xml that both `sionna.rt.load_scene` and the product load.

Coordinates are scene metres (float64 until the PLY, float32 in it: the site's origin is subtracted before).
A building standing on the ground (bottom 0) has no floor face: it would lie on the ground plane.
The ground is one flat rectangle at z = 0 covering the site with GROUND_MARGIN_M around it (no terrain).
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from optimizer.constants import SCENE_FILE

GROUND_MARGIN_M = 50.0  # [m] the ground reaches this far beyond the buildings and the area
WALL_THICKNESS_M = 0.3  # [m] the ITU materials' slab thickness (what a ray crossing a face goes through)
GROUND_THICKNESS_M = 1.0  # [m]
MESH_DIR = "meshes"
GROUND_MESH = "ground"
BUILDING_MESH_PREFIX = "buildings-"

SHAPE_XML = """    <shape type="ply" id={id}>
        <string name="filename" value={file}/>
        <boolean name="face_normals" value="true"/>
        <ref id={mat} name="bsdf"/>
    </shape>
"""
BSDF_XML = """    <bsdf type="itu-radio-material" id={id}>
        <string name="type" value={type}/>
        <float name="thickness" value="{thickness}"/>
    </bsdf>
"""


class _Soup:
    """Vertices and triangles gathered for one mesh."""

    def __init__(self):
        self.vertices: list[np.ndarray] = []
        self.faces: list[np.ndarray] = []
        self.n = 0

    def add(self, vertices, faces):
        self.vertices.append(np.asarray(vertices, float))
        self.faces.append(np.asarray(faces, np.int64) + self.n)
        self.n += len(vertices)

    def cap(self, polygon, z: float, up: bool):
        from trimesh.creation import triangulate_polygon

        v2, f = triangulate_polygon(polygon, engine="earcut")
        v = np.column_stack([v2, np.full(len(v2), z)])
        # earcut's winding is not promised: set it from the triangles' signed areas
        a, b, c = v2[f[:, 0]], v2[f[:, 1]], v2[f[:, 2]]
        area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
        f = np.where(((area > 0) == up)[:, None], f, f[:, ::-1])
        self.add(v, f)

    def wall(self, w):
        v = [(w.x0, w.y0, w.z0), (w.x1, w.y1, w.z0), (w.x1, w.y1, w.z1), (w.x0, w.y0, w.z1)]
        self.add(v, [(0, 1, 2), (0, 2, 3)])  # counter-clockwise seen from the outward side

    def mesh(self):
        import trimesh

        return trimesh.Trimesh(np.concatenate(self.vertices), np.concatenate(self.faces), process=False)


def building_soups(buildings) -> dict[str, _Soup]:
    soups: dict[str, _Soup] = {}
    for b in buildings:
        soup = soups.setdefault(b.material, _Soup())
        for polygon in b.polygons:
            soup.cap(polygon, b.top_m, up=True)
            if b.bottom_m > 0:
                soup.cap(polygon, b.bottom_m, up=False)
        for w in b.walls:
            soup.wall(w)
    return soups


def ground_rectangle(extent_m) -> tuple[float, float, float, float]:
    """The ground's (xmin, ymin, xmax, ymax) [m]: the buildings' extent and GROUND_MARGIN_M around it."""
    x0, y0, x1, y1 = extent_m
    g = GROUND_MARGIN_M
    return x0 - g, y0 - g, x1 + g, y1 + g


def ground_soup(extent_m) -> _Soup:
    x0, y0, x1, y1 = ground_rectangle(extent_m)
    soup = _Soup()
    soup.add([(x0, y0, 0.0), (x1, y0, 0.0), (x1, y1, 0.0), (x0, y1, 0.0)], [(0, 1, 2), (0, 2, 3)])
    return soup


def write_scene(out: Path, buildings, extent_m, ground_material: str, note: str) -> list[str]:
    """meshes/*.ply and scene.xml under `out`; returns the written files (relative paths)."""
    from trimesh.exchange.ply import export_ply

    (out / MESH_DIR).mkdir(parents=True, exist_ok=True)
    shapes = [(GROUND_MESH, ground_material, ground_soup(extent_m))]
    shapes += [(BUILDING_MESH_PREFIX + mat, mat, soup) for mat, soup in sorted(building_soups(buildings).items())]
    written, bsdfs, xml_shapes = [], {}, []
    for name, mat, soup in shapes:
        rel = f"{MESH_DIR}/{name}.ply"
        (out / rel).write_bytes(export_ply(soup.mesh(), encoding="binary", vertex_normal=False,
                                           include_attributes=False))
        written.append(rel)
        thickness = GROUND_THICKNESS_M if name == GROUND_MESH else WALL_THICKNESS_M
        bsdfs.setdefault(mat, BSDF_XML.format(id=quoteattr(f"itu_{mat}"), type=quoteattr(mat),
                                              thickness=thickness))
        xml_shapes.append(SHAPE_XML.format(id=quoteattr(f"mesh-{name}"), file=quoteattr(rel),
                                           mat=quoteattr(f"itu_{mat}")))
    note = note.replace("--", "-")
    (out / SCENE_FILE).write_text(f'<scene version="2.1.0">\n<!-- {note} -->\n' + "".join(bsdfs.values())
                                  + "".join(xml_shapes) + "</scene>\n", encoding="utf-8")
    written.append(SCENE_FILE)
    return written
