"""A run on a scene imported from a map, in latitude/longitude: `site.geojson` and `site.kml` in its results.

Both hold the same placemarks, converted from scene metres with the site's frame (site.json):

    transmitter    a Point per transmitter (name, power_dbm, height_m)
    target         a Point per target point, the region's grid included (index, key, height_m; with the run's
                   targets.csv also the baseline and winner RSS)
    target-area    the targets' region: a Polygon at its height (z_m, spacing_m)
    mounting-box   per plate, its `bounds`: in plan a Polygon (a LineString or a Point where the box is flat
                   along x or y; a box in a wall's frame: its own corners, a LineString at one stand-off) with
                   z_min_m/z_max_m and the yaw range; in KML its 12 edges in 3D (the bottom and top rings and 4
                   posts)
    plate          per plate, the winner's outline: the 4 corners (closed; in plan a LineString, as a vertical
                   plate has no area; in KML a Polygon in 3D), with size, yaw, pitch, the centre's lat/lon and
                   height, and the true bearing its normal faces (the plate is two-sided: also +180)

GeoJSON (RFC 7946) coordinates are longitude, latitude in WGS 84 and two-dimensional: the ground is flat
and RFC 7946's altitude is above the ellipsoid, so heights above the ground are properties. KML coordinates
carry the height with `altitudeMode` relativeToGround. Written only where the scene has a site.json.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from optimizer.constants import BUILTIN_SCENE_PREFIX, SITE_FILE, SITE_GEOJSON, SITE_KML
from optimizer.sites.projection import LocalFrame

KML_NS = "http://www.opengis.net/kml/2.2"


@dataclass
class Placemark:
    """One feature in scene metres: `plan` (2-D shapely geometry, GeoJSON) and `solid` (3-D, z above the
    ground, KML)."""

    name: str
    role: str
    plan: object
    solid: object
    properties: dict = field(default_factory=dict)


def _plan_box(x0: float, y0: float, x1: float, y1: float):
    """The plan of an axis-aligned box: a Polygon, a LineString where it is flat along x or y, or a Point."""
    from shapely.geometry import LineString, Point, box

    if x1 > x0 and y1 > y0:
        return box(x0, y0, x1, y1)
    if x1 > x0 or y1 > y0:
        return LineString([(x0, y0), (x1, y1)])
    return Point(x0, y0)


def _plan_ring(corners):
    """The plan of a box in a wall's frame from its 4 corners: a Polygon, a LineString where it has no
    width off the wall (a single stand-off) or along it, or a Point."""
    from shapely.geometry import LineString, Point, Polygon

    poly = Polygon(corners)
    if poly.area > 1e-12:
        return poly
    far = max(((a, b) for a in corners for b in corners), key=lambda ab: math.dist(*ab))
    return LineString(far) if math.dist(*far) > 0 else Point(corners[0])


def _box_edges(ring4, z0: float, z1: float):
    """The 12 edges of the box over the plan corners `ring4` from z0 to z1 [m] as a 3-D MultiLineString: the
    bottom and top rings and the 4 posts (a flat box keeps its repeated edges)."""
    from shapely.geometry import MultiLineString

    ring = [*ring4, ring4[0]]
    lines = [[(x, y, z) for x, y in ring] for z in (z0, z1)]
    lines += [[(x, y, z0), (x, y, z1)] for x, y in ring[:4]]
    return MultiLineString(lines)


def placemarks(exp, frame: LocalFrame, joint_pose=None, targets=None) -> list[Placemark]:
    """The run's placemarks in scene metres: transmitters, targets (and region), mounting boxes, and the
    plates at `joint_pose` (a `JointPose`; None: no plates). `targets`: targets.csv rows (RSS added)."""
    from shapely.geometry import LineString, Point, Polygon, box

    from optimizer.physics.geometry import plate_corners, plate_frame

    out = []
    for tx in exp.transmitters:
        x, y, z = (float(v) for v in tx.position)
        out.append(Placemark(tx.name, "transmitter", Point(x, y), Point(x, y, z),
                             {"power_dbm": tx.power_dbm, "height_m": z}))
    rows = {r.target: r for r in targets or []}
    for i, (x, y, z) in enumerate(exp.target_points()):
        props = {"index": i, "key": exp.target_key(i), "height_m": z}
        if i in rows:
            props |= {"baseline_rss_dbm": rows[i].baseline_rss_dbm, "winner_rss_dbm": rows[i].winner_rss_dbm}
        out.append(Placemark(f"target {i}", "target", Point(x, y), Point(x, y, z), props))
    region = exp.targets.region
    if region is not None:
        x0, y0, x1, y1 = region.min[0], region.min[1], region.max[0], region.max[1]
        ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        out.append(Placemark("targets.region", "target-area", box(x0, y0, x1, y1),
                             Polygon([(x, y, region.z) for x, y in ring]),
                             {"z_m": region.z, "spacing_m": region.spacing_m}))
    poses = list(joint_pose.plates) if joint_pose is not None else []
    for k, r in enumerate(exp.plates()):
        lo, hi = [float(v) for v in r.bounds.min], [float(v) for v in r.bounds.max]
        props = {"plate": r.name, "z_min_m": lo[2], "z_max_m": hi[2], "yaw_min_deg": r.yaw_deg.min,
                 "yaw_max_deg": r.yaw_deg.max}
        if r.bounds.frame is None:
            ring4 = [(lo[0], lo[1]), (hi[0], lo[1]), (hi[0], hi[1]), (lo[0], hi[1])]
            plan = _plan_box(lo[0], lo[1], hi[0], hi[1])
        else:  # the box in its wall's frame: its own corners, not the axis-aligned box around them
            ring4 = [tuple(float(v) for v in c) for c in r.bounds.frame.corners()]
            plan = _plan_ring(ring4)
            props |= {"along_m": list(r.bounds.frame.along_m), "off_m": list(r.bounds.frame.off_m)}
        out.append(Placemark(f"{r.name}: mounting box", "mounting-box", plan, _box_edges(ring4, lo[2], hi[2]),
                             props))
        if k >= len(poses):
            continue
        p = poses[k]
        corners = plate_corners(p, r.size_m)
        ring3 = [tuple(map(float, c)) for c in (*corners, corners[0])]
        _, _, n = plate_frame(p.yaw_deg, p.pitch_deg)
        (lat,), (lon,) = frame.to_geo([p.x], [p.y])
        out.append(Placemark(f"{r.name}: plate", "plate", LineString([c[:2] for c in ring3]), Polygon(ring3),
                             {"plate": r.name, "size_m": list(r.size_m), "yaw_deg": p.yaw_deg,
                              "pitch_deg": p.pitch_deg, "lat_deg": float(lat), "lon_deg": float(lon),
                              "height_m": p.z, "x_m": p.x, "y_m": p.y,
                              "normal_bearing_deg": round(frame.bearing_deg(p.x, p.y, float(n[0]), float(n[1])), 2)
                              if math.hypot(n[0], n[1]) > 1e-9 else None}))
    return out


def _to_lonlat(geom, frame: LocalFrame):
    import shapely

    return shapely.transform(geom, frame.scene_to_lonlat, include_z=geom.has_z)


def to_geojson(marks: list[Placemark], frame: LocalFrame, name: str, site: dict) -> dict:
    """A GeoJSON FeatureCollection (RFC 7946: lon/lat, WGS 84) of the placemarks."""
    from shapely.geometry import mapping

    features = [{"type": "Feature", "geometry": mapping(_to_lonlat(m.plan, frame)),
                 "properties": {"name": m.name, "role": m.role, **m.properties}} for m in marks]
    return {"type": "FeatureCollection", "name": name, "attribution": site.get("attribution"),
            "license": site.get("license"), "crs_note": f"scene frame EPSG:{frame.epsg} origin "
            f"{frame.origin_lat_deg:.7f}, {frame.origin_lon_deg:.7f}; heights above the ground in properties",
            "features": features}


def _coords(seq) -> str:
    return " ".join(f"{c[0]:.9f},{c[1]:.9f},{c[2]:.3f}" for c in seq)


def _kml_geometry(parent, geom) -> None:
    def sub(node, tag, text=None):
        el = ET.SubElement(node, f"{{{KML_NS}}}{tag}")
        if text is not None:
            el.text = text
        return el

    kind = geom.geom_type
    if kind == "MultiLineString":
        multi = sub(parent, "MultiGeometry")
        for g in geom.geoms:
            _kml_geometry(multi, g)
        return
    el = sub(parent, kind)
    sub(el, "altitudeMode", "relativeToGround")
    if kind == "Polygon":
        sub(sub(sub(el, "outerBoundaryIs"), "LinearRing"), "coordinates", _coords(geom.exterior.coords))
    else:  # Point, LineString
        sub(el, "coordinates", _coords(geom.coords))


def to_kml(marks: list[Placemark], frame: LocalFrame, name: str, site: dict) -> bytes:
    """A KML 2.2 document of the placemarks (3-D, heights relative to the ground)."""
    ET.register_namespace("", KML_NS)
    root = ET.Element(f"{{{KML_NS}}}kml")
    doc = ET.SubElement(root, f"{{{KML_NS}}}Document")
    ET.SubElement(doc, f"{{{KML_NS}}}name").text = name
    ET.SubElement(doc, f"{{{KML_NS}}}description").text = (
        f"reflectopt run on a site imported from a map; data {site.get('attribution') or ''} "
        f"({site.get('license') or ''})").strip()
    for m in marks:
        pm = ET.SubElement(doc, f"{{{KML_NS}}}Placemark")
        ET.SubElement(pm, f"{{{KML_NS}}}name").text = m.name
        data = ET.SubElement(pm, f"{{{KML_NS}}}ExtendedData")
        for key, value in {"role": m.role, **m.properties}.items():
            d = ET.SubElement(data, f"{{{KML_NS}}}Data", name=key)
            ET.SubElement(d, f"{{{KML_NS}}}value").text = "" if value is None else str(value)
        _kml_geometry(pm, _to_lonlat(m.solid, frame))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def scene_site(exp) -> dict | None:
    """The site.json of the experiment's scene, or None (a built-in or hand-made scene)."""
    if exp.scene.startswith(BUILTIN_SCENE_PREFIX):
        return None
    from optimizer.sites.record import read_site
    from optimizer.store import assets

    folder = assets.resolve_scene(exp.scene, exp.scene_sha256)
    return read_site(folder) if (Path(folder) / SITE_FILE).is_file() else None


def write_site_files(run_dir, exp, joint_pose=None, targets=None, site: dict | None = None) -> list[Path]:
    """Write site.geojson and site.kml into the local run folder where the scene has a site.json (`site`,
    default: read it); returns the files written (none without one)."""
    site = scene_site(exp) if site is None else site
    if site is None:
        return []
    frame = LocalFrame.from_record(site["frame"])
    marks = placemarks(exp, frame, joint_pose, targets)
    run_dir = Path(run_dir)
    gj, kml = run_dir / SITE_GEOJSON, run_dir / SITE_KML
    gj.write_text(json.dumps(to_geojson(marks, frame, exp.name, site), indent=1, ensure_ascii=False) + "\n",
                  encoding="utf-8")
    kml.write_bytes(to_kml(marks, frame, exp.name, site))
    return [gj, kml]
