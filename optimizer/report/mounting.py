"""`mounting.html`: one printable page to mount the winning plate by: a plan view and a side view of its wall
with the plate drawn to scale, the figures of `winner.mount`, the tolerance box, the plate's size and material.

Both views are drawn in the wall's frame (`optimizer.physics.wall`): the plan from above (the wall a hatched
line, the plate a thick segment with its normal, the stand-off and the distance from the wall's nearer end
dimensioned), the side view looking at the wall from the plate's side (the plate's outline projected onto
the wall, its centre's height above the ground and its distance along the wall dimensioned). The tolerance
box is drawn to scale around the plate centre (dashed; its size is in the table beside). Without a known
wall the plan shows the frame's axis instead and no stand-off.
"""

from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.patches import FancyArrowPatch, Rectangle  # noqa: E402

from optimizer.constants import REPORT_COLOR_PLATE  # noqa: E402
from optimizer.physics.geometry import plate_corners, plate_frame  # noqa: E402
from optimizer.physics.wall import offset_axes  # noqa: E402
from optimizer.records import Mount, PlatePose, Summary  # noqa: E402

WALL_COLOR = "#616161"
BOX_COLOR = "#1565c0"
DIM_COLOR = "#212121"


def _wall_axes(m: Mount, c):
    """(origin [2], along [2], out [2]) of the drawings: `along` from the wall's nearer end towards the plate
    centre `c`, `out` off the wall towards the plate; without a wall, the frame's own axes (origin None)."""
    f = m.frame
    if f.normal is None or f.point is None:
        a, o = offset_axes(f.yaw_deg)
        return None, a[:2], o[:2]
    n = np.array(f.normal, float)
    along = np.array([-n[1], n[0]])
    origin = np.array(m.from_end if m.from_end is not None else f.point, float)
    if float(np.dot(np.asarray(c, float)[:2] - origin, along)) < 0:
        along = -along
    return origin, along, n


def _dim(ax, p, q, text, offset=(0, 0), color=DIM_COLOR):
    """A dimension line p -> q with arrows both ends and its text at the middle."""
    ax.add_patch(FancyArrowPatch(p, q, arrowstyle="<->", mutation_scale=10, lw=1.0, color=color, zorder=6))
    mid = 0.5 * (np.asarray(p) + np.asarray(q))
    ax.annotate(text, mid, xytext=offset, textcoords="offset points", fontsize=8, ha="center", va="center",
                color=color, zorder=7, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.9})


def _plan(ax, pose: PlatePose, m: Mount):
    """The plan view in wall coordinates: s along the wall from its nearer end, t off the wall."""
    c = np.array(pose.position[:2], float)
    origin, along, out = _wall_axes(m, c)
    ref = origin if origin is not None else c
    to_wall = np.array([[*along], [*out]])  # rows: along, out

    def st(xy):
        return to_wall @ (np.asarray(xy, float)[:2] - ref)

    w = m.size_m[0]
    u, _, n = plate_frame(pose.yaw_deg, pose.pitch_deg)
    ends = np.array([st(c - 0.5 * w * u[:2]), st(c + 0.5 * w * u[:2])])
    cs = st(c)
    span_s = [min(0.0, ends[:, 0].min()) - 1.0, max(ends[:, 0].max(), cs[0]) + 1.5]
    if origin is not None:
        wall_s = [0.0 if m.from_end is not None else span_s[0], span_s[1]]
        ax.fill_between(wall_s, -0.6, 0.0, color=WALL_COLOR, alpha=0.25, hatch="///", lw=0, zorder=1)
        ax.plot(wall_s, [0, 0], color=WALL_COLOR, lw=2.5, zorder=2, label=f"wall {m.wall_id or ''}".strip())
        if m.from_end is not None:
            ax.plot([0, 0], [-0.6, 0.0], color=WALL_COLOR, lw=2.5, zorder=2)
            ax.annotate("nearer end", (0, -0.6), xytext=(0, -10), textcoords="offset points", fontsize=8,
                        ha="center", color=WALL_COLOR)
    else:
        ax.plot(span_s, [cs[1]] * 2, color=WALL_COLOR, lw=1.0, ls=":", zorder=2,
                label="frame axis (no wall known)")
    ax.plot(ends[:, 0], ends[:, 1], color=REPORT_COLOR_PLATE, lw=5, solid_capstyle="butt", zorder=5,
            label=f"plate {m.size_m[0]:g} m wide",
            path_effects=[patheffects.withStroke(linewidth=7, foreground="black")])
    nn = to_wall @ n[:2]
    if nn[1] < 0:
        nn = -nn  # the face away from the wall
    ax.add_patch(FancyArrowPatch(cs, cs + 0.6 * nn / max(np.linalg.norm(nn), 1e-9), arrowstyle="-|>",
                                 mutation_scale=12, color="black", lw=1.2, zorder=6))
    tol = m.tolerance["position_m"]
    ax.add_patch(Rectangle((cs[0] - tol, cs[1] - tol), 2 * tol, 2 * tol, fill=False, ls="--", ec=BOX_COLOR,
                           lw=1.2, zorder=7,
                           label=f"tolerance box ±{100 * tol:g} cm along / off the wall, vertical (to scale)"))
    if origin is not None:
        if m.standoff_m is not None:
            _dim(ax, (cs[0], 0.0), (cs[0], cs[1]), f"stand-off {m.standoff_m:.2f} m", offset=(-48, 0))
        if m.along_m is not None:
            y = -0.3
            _dim(ax, (0.0, y), (cs[0], y), f"{m.along_m:.2f} m along the wall")
            ax.plot([cs[0], cs[0]], [y, cs[1]], color=DIM_COLOR, lw=0.6, ls=":", zorder=4)
    ax.annotate(f"{m.angle_to_wall_deg:.1f}° to the wall", (cs[0], top_t := max(cs[1], ends[:, 1].max())),
                xytext=(0, 14), textcoords="offset points", fontsize=8, color="black", ha="center")
    ax.set_aspect("equal")
    ax.set_xlim(span_s)
    bottom = min(-0.9, ends[:, 1].min() - 0.3)
    ax.set_ylim(bottom, max(top_t + 1.0, bottom + 0.5 * (span_s[1] - span_s[0])))  # never a sliver
    ax.set_xlabel("along the wall [m]" + (" from its nearer end" if m.from_end is not None else ""))
    ax.set_ylabel("off the wall [m]")
    ax.set_title("Plan (from above)", fontsize=10)
    ax.grid(alpha=0.25)


def _side(ax, pose: PlatePose, m: Mount, size):
    """The side view: looking at the wall from the plate's side; s along the wall, height above the ground."""
    c = np.array(pose.position, float)
    origin, along, _ = _wall_axes(m, c)
    ground = c[2] - m.height_m
    ref = origin if origin is not None else c[:2]
    corners = plate_corners(pose, size)
    s = (corners[:, :2] - ref) @ along
    h = corners[:, 2] - ground
    cs = float(np.dot(c[:2] - ref, along))
    lo, hi = min(0.0, s.min()) - 1.0, max(s.max(), cs) + 1.5
    top = max(h.max(), m.height_m) + 1.0
    if origin is not None:
        ax.add_patch(Rectangle((lo if m.from_end is None else 0.0, 0.0), hi - (lo if m.from_end is None else 0.0),
                               top, fc=WALL_COLOR, alpha=0.12, ec="none", zorder=1, label="wall face"))
    ax.plot([lo, hi], [0, 0], color="#5d4037", lw=2.5, zorder=2, label="ground below the plate")
    ax.fill(np.append(s, s[0]), np.append(h, h[0]), fc=REPORT_COLOR_PLATE, ec="black", lw=1.2, alpha=0.85, zorder=5,
            label=f"plate {size[0]:g} m × {size[1]:g} m (outline seen from the front)")
    tol = m.tolerance["position_m"]
    ax.add_patch(Rectangle((cs - tol, m.height_m - tol), 2 * tol, 2 * tol, fill=False, ls="--", ec=BOX_COLOR,
                           lw=1.2, zorder=7))
    ax.plot([cs], [m.height_m], marker="+", ms=10, color="black", zorder=8)
    _dim(ax, (cs, 0.0), (cs, m.height_m), f"{m.height_m:.2f} m", offset=(26, 0))
    if m.along_m is not None:
        _dim(ax, (0.0, 0.35 * m.height_m), (cs, 0.35 * m.height_m), f"{m.along_m:.2f} m")
    ax.set_aspect("equal")
    ax.set_xlim(lo, hi)
    ax.set_ylim(-0.4, top)
    ax.set_xlabel("along the wall [m]" + (" from its nearer end" if m.from_end is not None else ""))
    ax.set_ylabel("height above the ground [m]")
    ax.set_title(f"Side view (facing the wall), pitch {m.pitch_deg:.1f}°", fontsize=10)
    ax.grid(alpha=0.25)



def drawing_png(pose: PlatePose, m: Mount) -> bytes:
    """The plan and the side view of one plate, side by side, as PNG bytes."""
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(10.5, 5.6), layout="constrained")
    _plan(a0, pose, m)
    _side(a1, pose, m, m.size_m)
    handles = {}
    for ax in (a0, a1):
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


_CSS = ("@page{size:A4 landscape;margin:10mm}body{font-family:system-ui,Helvetica,Arial,sans-serif;color:#212121;"
        "margin:0 auto;max-width:270mm;font-size:12px}h1{font-size:17px;margin:4px 0}h2{font-size:14px;margin:6px 0}"
        "table{border-collapse:collapse;margin:4px 0}td,th{border:1px solid #ccc;padding:1px 8px}"
        "th{background:#f5f5f5;text-align:left}img{width:100%;max-height:88mm;object-fit:contain}"
        ".plate{page-break-inside:avoid}small{color:#555}")


def to_html(s: Summary, attribution: str | None = None) -> str:
    """The page (self-contained: the drawings inline); `attribution`: the map data's credit, where the scene
    came from a map (`optimizer.sites.record.credit`)."""
    from optimizer.report.text import mount_rows

    e = html.escape
    parts = [f"<h1>Mounting: {e(s.name)} (run {e(s.run_id)})</h1>"]
    for p in s.winner.plates:
        if p.mount is None:
            continue
        data = base64.b64encode(drawing_png(p.pose, p.mount)).decode("ascii")
        rows = "".join(f"<tr><th>{e(r[0])}</th><td>{e(r[1])}</td></tr>" for r in mount_rows([p.mount]))
        parts.append(f"<div class='plate'><h2>{e(p.name)}</h2><img alt='plan and side view of {e(p.name)}' "
                     f"src='data:image/png;base64,{data}'><table>{rows}</table></div>")
    parts.append(f"<p><small>Pose in the scene frame: {e(s.winner.pose_arg)} (x, y, z [m], yaw, pitch [deg]; "
                 "`reflectopt evaluate EXPERIMENT --pose=...` reproduces it). Figures are rounded to the "
                 "mounting tolerance's resolution; the coverage was checked over the whole tolerance box "
                 f"({'holds' if s.winner.tolerance is not None and s.winner.tolerance.holds else 'see report.html'})."
                 "</small></p>")
    if attribution:
        parts.append(f"<p><small>{e(attribution)}</small></p>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>Mounting: {e(s.name)}</title><style>{_CSS}</style></head><body>\n" + "\n".join(parts)
            + "\n</body></html>\n")

