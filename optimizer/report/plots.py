"""Pictures of a run (matplotlib, headless Agg): radio maps, trajectories, convergence, RSS CDF.

Every function takes plain numpy data and a destination path, draws one figure, saves it and closes it.
Nothing here ray-traces or reads run files (see `optimizer.report`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")  # headless; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patheffects
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.lines import Line2D
from matplotlib.colors import ListedColormap
from matplotlib.patches import Polygon, Rectangle
from matplotlib.ticker import MaxNLocator

from optimizer.constants import (
    GAIN_MAP_LIMIT_DB,
    NO_PATH_FLOOR_DBM,
    REPORT_COLOR_BUILDING,
    REPORT_COLOR_NEW_PATH,
    REPORT_COLOR_COVERED,
    REPORT_COLOR_PLATE,
    REPORT_COLOR_UNCOVERED,
    REPORT_COLOR_WINNER,
    REPORT_DPI,
)
from optimizer.physics.geometry import plate_corners, plate_frame
from optimizer.records import PlatePose
from optimizer.records.text import fmt_power

STOPPED_EARLY = ("pruned", "merged", "failed")  # world statuses drawn faint: they stopped before their last step


@dataclass
class FloorPlan:
    """What every top view shows: scene geometry cut at the map height, transmitters, targets, plate box."""

    sections: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 2)))  # [S, 2, 2] wall cuts [m]
    footprints: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 2)))  # [T, 3, 2] triangles [m]
    tx_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    tx_names: list = field(default_factory=list)
    targets_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    bounds_min: tuple = (0.0, 0.0)  # plate search box (x, y) [m]
    bounds_max: tuple = (0.0, 0.0)
    plate_size: tuple = (1.0, 1.0)  # [m]
    height_m: float = 1.5  # [m] the cut / map height
    plate_sizes: list = field(default_factory=list)  # [m] every plate's (width, height); empty: plate_size
    plate_names: list = field(default_factory=list)
    more_boxes: list = field(default_factory=list)  # search boxes (x0, y0, x1, y1) [m] of plates 2, 3, ...
    box_rings: list = field(default_factory=list)  # where a box is in a wall's frame: every plate's [4, 2] corners


# --- helpers ---------------------------------------------------------------------------------------
def _save(fig, path):
    fig.savefig(path, dpi=REPORT_DPI, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return path


def _figsize(extent, width_in=7.5, min_h=3.2, max_h=7.5, extra_w=1.4):
    """Figure size for an equal-aspect map of `extent` (x0, x1, y0, y1) plus a colour bar / legend."""
    w = max(extent[1] - extent[0], 1e-6)
    h = max(extent[3] - extent[2], 1e-6)
    fig_h = float(np.clip((width_in - extra_w) * h / w + 0.9, min_h, max_h))
    return (width_in, fig_h)


def draw_floor_plan(ax, plan: FloorPlan, *, on_dark=False, bounds=True, targets=True, tx=True,
                    target_colors=None, labels=True):
    """Buildings/walls (light footprints + cut outline), plate search box, transmitters and targets."""
    handles = []
    if len(plan.footprints):  # buildings as buildings: opaque over a map (inside them it shows no signal)
        ax.add_collection(PolyCollection(plan.footprints, facecolors=REPORT_COLOR_BUILDING,
                                         edgecolors=REPORT_COLOR_BUILDING, linewidths=0.3,
                                         alpha=1.0 if on_dark else 0.6, zorder=1))
        handles.append(Rectangle((0, 0), 1, 1, fc=REPORT_COLOR_BUILDING, ec="none", label="building"))
    halo = [patheffects.withStroke(linewidth=3.0, foreground="black")] if on_dark else None
    line_c = "white" if on_dark else "#424242"
    box_c = "white" if on_dark else "#6a1b9a"
    if len(plan.sections):
        ax.add_collection(LineCollection(plan.sections, colors=line_c, linewidths=1.3, zorder=3, path_effects=halo))
        handles.append(Line2D([], [], color=line_c, lw=1.5, path_effects=halo,
                              label=f"walls cut at z = {plan.height_m:.1f} m"))
    if bounds:
        bx0, by0 = plan.bounds_min
        bx1, by1 = plan.bounds_max
        if plan.box_rings:  # a box in a wall's frame: its own corners, not the axis-aligned box around them
            for ring in plan.box_rings:
                ax.add_patch(Polygon(np.asarray(ring, float), closed=True, fill=False, ls="--", lw=1.3, ec=box_c,
                                     zorder=4, path_effects=halo))
        for x0, y0, x1, y1 in [] if plan.box_rings else [(bx0, by0, bx1, by1), *plan.more_boxes]:
            ax.add_patch(Rectangle((x0, y0), max(x1 - x0, 0.05), max(y1 - y0, 0.05), fill=False,
                                   ls="--", lw=1.3, ec=box_c, zorder=4, path_effects=halo))
        handles.append(Line2D([], [], ls="--", color=box_c, lw=1.3, path_effects=halo, label="plate search box"))
    if targets and len(plan.targets_xy):
        if target_colors is None:
            ax.scatter(plan.targets_xy[:, 0], plan.targets_xy[:, 1], s=14, c="#616161", marker="o",
                       edgecolors="white", linewidths=0.4, zorder=6)
            handles.append(Line2D([], [], ls="", marker="o", color="#616161", label="targets"))
        else:
            cov = np.asarray(target_colors, bool)
            for mask, color, marker, lab in ((cov, REPORT_COLOR_COVERED, "o", "target covered"),
                                             (~cov, REPORT_COLOR_UNCOVERED, "X", "target not covered")):
                if mask.any():
                    ax.scatter(plan.targets_xy[mask, 0], plan.targets_xy[mask, 1], s=34, c=color, marker=marker,
                               edgecolors="black", linewidths=0.8, zorder=6)
                handles.append(Line2D([], [], ls="", marker=marker, color=color, markeredgecolor="black",
                                      markersize=7, label=f"{lab} ({int(mask.sum())})"))
    if tx and len(plan.tx_xy):
        ax.scatter(plan.tx_xy[:, 0], plan.tx_xy[:, 1], s=110, marker="^", c="#ffeb3b" if on_dark else "#212121",
                   edgecolors="black", linewidths=1.0, zorder=7)
        if labels:
            for (x, y), name in zip(plan.tx_xy, plan.tx_names):
                ax.annotate(name, (x, y), xytext=(6, 6), textcoords="offset points", fontsize=8, zorder=8,
                            color="black", bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
        handles.append(Line2D([], [], ls="", marker="^", color="#ffeb3b" if on_dark else "#212121",
                              markeredgecolor="black", markersize=9, label="transmitter"))
    return handles


def draw_plates(ax, pose, plan: FloorPlan, *, label="plate (winner pose) + normal", **kw):
    """Every plate of a joint pose (or one PlatePose), each with its size from the plan; one legend entry."""
    plates = pose.plates if hasattr(pose, "plates") else [pose]
    sizes = plan.plate_sizes or [plan.plate_size]
    handle = None
    for k, p in enumerate(plates):
        handle = draw_plate(ax, p, sizes[min(k, len(sizes) - 1)], label=label, **kw)
        if len(plates) > 1:
            name = plan.plate_names[k] if k < len(plan.plate_names) else f"plate-{k + 1}"
            ax.annotate(name, (p.x, p.y), xytext=(6, -12), textcoords="offset points", fontsize=8, zorder=12,
                        color="black", bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    if len(plates) > 1:
        handle.set_label(label.replace("plate", f"{len(plates)} plates", 1))
    return handle


def draw_plate(ax, pose: PlatePose, size, *, color=REPORT_COLOR_PLATE, arrow_len=None, lw=4.0, label="plate",
               zorder=9):
    """The plate seen from above: a thick segment between its side edges, and its normal as an arrow."""
    c = plate_corners(pose, size)
    a = 0.5 * (c[0] + c[3])
    b = 0.5 * (c[1] + c[2])
    ax.plot([a[0], b[0]], [a[1], b[1]], color="black", lw=lw + 2.0, solid_capstyle="butt", zorder=zorder)
    ax.plot([a[0], b[0]], [a[1], b[1]], color=color, lw=lw, solid_capstyle="butt", zorder=zorder + 0.1)
    _, _, n = plate_frame(pose.yaw_deg, pose.pitch_deg)
    nxy = n[:2]
    if np.linalg.norm(nxy) > 1e-6:
        nxy = nxy / np.linalg.norm(nxy)
        L = arrow_len if arrow_len is not None else max(1.0, float(size[0]))
        ax.annotate("", xy=(pose.x + L * nxy[0], pose.y + L * nxy[1]), xytext=(pose.x, pose.y),
                    arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.8, "mutation_scale": 12}, zorder=zorder + 0.2)
    return Line2D([], [], color=color, lw=lw, label=label)


def _legend_outside(ax, handles, ncol=None):
    """A legend under the plot (the figure must use the constrained layout)."""
    if not handles:
        return
    ncol = ncol or min(4, len(handles))
    ax.figure.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=8, frameon=False)


def dbm_range(*maps, threshold=None, span_max=100.0):
    """A shared colour range [dBm] for RSS maps: the 99th percentile of powered cells at the top (the cells
    next to a transmitter would otherwise flatten the rest), at most `span_max` dB below it."""
    vals = np.concatenate([np.asarray(m, float).ravel() for m in maps])
    vals = vals[np.isfinite(vals) & (vals > NO_PATH_FLOOR_DBM)]
    if vals.size == 0:
        hi = (threshold if threshold is not None else -60.0) + 30.0
        return hi - 60.0, hi
    hi = math.ceil(float(np.percentile(vals, 99.0)) / 5.0) * 5.0
    lo = math.floor(float(np.percentile(vals, 1.0)) / 5.0) * 5.0
    if threshold is not None:
        lo = min(lo, math.floor((threshold - 10.0) / 5.0) * 5.0)
        hi = max(hi, threshold + 10.0)
    lo = max(lo, hi - span_max)
    return lo, hi


# --- radio maps ------------------------------------------------------------------------------------
def _cell_extent(x, y):
    """imshow extent (left, right, bottom, top) [m] of a grid given its cell centres."""
    dx = x[1] - x[0] if len(x) > 1 else 1.0
    dy = y[1] - y[0] if len(y) > 1 else 1.0
    return (x[0] - 0.5 * dx, x[-1] + 0.5 * dx, y[0] - 0.5 * dy, y[-1] + 0.5 * dy)


def _finish_map(fig, ax, extent, title, handles, path):
    """Shared end of every top-view map: bounds, equal axes in metres, title, legend below, save."""
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_title(title, fontsize=11)
    _legend_outside(ax, handles, ncol=3)
    return _save(fig, path)


def radio_map(path, x, y, dbm, plan: FloorPlan, *, title, vmin, vmax, threshold=None, covered=None,
              pose: PlatePose | None = None):
    """One RSS map [dBm] (cells `x` [nx], `y` [ny] centres, `dbm` [ny, nx]); no-power cells get the floor
    colour (the bottom of the scale)."""
    extent = _cell_extent(x, y)
    fig, ax = plt.subplots(figsize=_figsize(extent), layout="constrained")
    cmap = plt.get_cmap("viridis").with_extremes(under="#0b0b1a")
    im = ax.imshow(np.asarray(dbm, float), origin="lower", extent=extent, cmap=cmap, vmin=vmin, vmax=vmax,
                   interpolation="nearest", zorder=0)
    cb = fig.colorbar(im, ax=ax, extend="min", shrink=0.95)
    cb.set_label("received power [dBm]")
    if threshold is not None and vmin <= threshold <= vmax:
        cb.ax.axhline(threshold, color="red", lw=2)
    handles = draw_floor_plan(ax, plan, on_dark=True, target_colors=covered)
    if pose is not None:
        handles.append(draw_plates(ax, pose, plan))
    if threshold is not None:
        handles.append(Line2D([], [], color="red", lw=2, label=f"coverage threshold {threshold:.0f} dBm (bar)"))
    return _finish_map(fig, ax, extent, title, handles, path)


def gain_map(path, x, y, baseline_dbm, winner_dbm, plan: FloorPlan, *, title, covered=None,
             pose: PlatePose | None = None, limit_db: float = GAIN_MAP_LIMIT_DB):
    """Winner minus baseline [dB] on one fixed scale (±GAIN_MAP_LIMIT_DB, the same for every run, so runs
    compare), only where both maps have power; cells lit only with the plate in their own colour, cells
    dark in both grey."""
    b, w = np.asarray(baseline_dbm, float), np.asarray(winner_dbm, float)
    lit_b, lit_w = b > NO_PATH_FLOOR_DBM, w > NO_PATH_FLOOR_DBM
    g = np.where(lit_b & lit_w, w - b, np.nan)
    extent = _cell_extent(x, y)
    fig, ax = plt.subplots(figsize=_figsize(extent), layout="constrained")
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#d9d9d9")
    im = ax.imshow(g, origin="lower", extent=extent, cmap=cmap, vmin=-limit_db, vmax=limit_db,
                   interpolation="nearest", zorder=0)
    new = np.where(lit_w & ~lit_b, 1.0, np.nan)
    ax.imshow(new, origin="lower", extent=extent, cmap=ListedColormap([REPORT_COLOR_NEW_PATH]), vmin=0, vmax=1,
              interpolation="nearest", zorder=0.5)
    cb = fig.colorbar(im, ax=ax, extend="both", shrink=0.95)
    cb.set_label(f"gain: winner − baseline [dB] (fixed scale ±{limit_db:g} dB)")
    handles = draw_floor_plan(ax, plan, on_dark=False, target_colors=covered)
    if pose is not None:
        handles.append(draw_plates(ax, pose, plan))
    handles.append(Rectangle((0, 0), 1, 1, fc=REPORT_COLOR_NEW_PATH, ec="none", label="no path without the plate"))
    handles.append(Rectangle((0, 0), 1, 1, fc="#d9d9d9", ec="none", label="no path in either map"))
    return _finish_map(fig, ax, extent, title, handles, path)


def collateral_map(path, x, y, baseline_dbm, winner_dbm, collateral, plan: FloorPlan, *, title, threshold,
                   buildings=None, pose: PlatePose | None = None, worst_xy=None, limit_db: float = GAIN_MAP_LIMIT_DB):
    """The loss (baseline − winner) [dB] over the cells covered without the plate (others grey), the
    collateral cells (covered without the plate, not with it) outlined and hatched, the worst cell starred."""
    b, w = np.asarray(baseline_dbm, float), np.asarray(winner_dbm, float)
    covered = b >= threshold
    if buildings is not None:
        covered &= ~np.asarray(buildings, bool)
    loss = np.where(covered, np.clip(b - np.maximum(w, NO_PATH_FLOOR_DBM), 0.0, None), np.nan)
    extent = _cell_extent(x, y)
    fig, ax = plt.subplots(figsize=_figsize(extent), layout="constrained")
    cmap = plt.get_cmap("Reds").with_extremes(bad="#d9d9d9")
    im = ax.imshow(loss, origin="lower", extent=extent, cmap=cmap, vmin=0.0, vmax=limit_db, interpolation="nearest",
                   zorder=0)
    cb = fig.colorbar(im, ax=ax, extend="max", shrink=0.95)
    cb.set_label(f"loss: baseline − winner [dB] (fixed scale 0 to {limit_db:g} dB)")
    mask = np.asarray(collateral, bool)
    if mask.any():
        ax.contourf(x, y, mask.astype(float), levels=[0.5, 1.5], colors="none", hatches=["////"], zorder=0.6)
        ax.contour(x, y, mask.astype(float), levels=[0.5], colors=REPORT_COLOR_UNCOVERED, linewidths=1.4,
                   zorder=0.7)
    handles = draw_floor_plan(ax, plan, on_dark=False, targets=False)
    if pose is not None:
        handles.append(draw_plates(ax, pose, plan))
    if worst_xy is not None:
        ax.plot([worst_xy[0]], [worst_xy[1]], ls="", marker="*", ms=15, color="#311b92", mec="white", zorder=11)
        handles.append(Line2D([], [], ls="", marker="*", ms=12, color="#311b92", mec="white", label="worst cell"))
    handles.append(Rectangle((0, 0), 1, 1, fc="none", hatch="////", ec=REPORT_COLOR_UNCOVERED,
                             label=f"collateral: covered ≥ {threshold:.0f} dBm without the plate, not with it"))
    handles.append(Rectangle((0, 0), 1, 1, fc="#d9d9d9", ec="none", label="not covered without the plate"))
    return _finish_map(fig, ax, extent, title, handles, path)


def tolerance_map(path, along_m, yaw_deg, min_rss_dbm, covered, *, box_along_m: float, box_yaw_deg: float,
                  threshold: float, title: str):
    """Truth min RSS [dBm] over offsets around the winner: along the wall [m] (x) against yaw [deg] (y),
    the mounting tolerance box drawn; cells where a target is not covered hatched."""
    along_m, yaw_deg = np.asarray(along_m, float), np.asarray(yaw_deg, float)
    v = np.asarray(min_rss_dbm, float)  # [yaw, along]
    shown = np.where(np.isfinite(v), v, np.nan)
    fig, ax = plt.subplots(figsize=(7.2, 5.2), layout="constrained")
    ext = (100 * along_m[0], 100 * along_m[-1], yaw_deg[0], yaw_deg[-1])
    dx = 0.5 * (ext[1] - ext[0]) / max(len(along_m) - 1, 1)
    dy = 0.5 * (ext[3] - ext[2]) / max(len(yaw_deg) - 1, 1)
    finite = shown[np.isfinite(shown)]
    vmax = float(np.ceil(finite.max())) if finite.size else threshold + 10
    vmin = min(threshold - 10.0, float(np.floor(finite.min()))) if finite.size else threshold - 10
    cmap = plt.get_cmap("viridis").with_extremes(bad="#0b0b1a")
    im = ax.imshow(shown, origin="lower", extent=(ext[0] - dx, ext[1] + dx, ext[2] - dy, ext[3] + dy),
                   aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    cb = fig.colorbar(im, ax=ax, shrink=0.95)
    cb.set_label("min RSS over targets [dBm] (truth)")
    if vmin <= threshold <= vmax:
        cb.ax.axhline(threshold, color="red", lw=2)
    bad = ~np.asarray(covered, bool)
    for i, j in zip(*np.nonzero(bad)):
        ax.add_patch(Rectangle((100 * along_m[j] - dx, yaw_deg[i] - dy), 2 * dx, 2 * dy, fill=False, hatch="xx",
                               ec=REPORT_COLOR_UNCOVERED, lw=0.0))
    halo = [patheffects.withStroke(linewidth=3.5, foreground="black")]  # a white dash reads on map and legend
    ax.add_patch(Rectangle((-100 * box_along_m, -box_yaw_deg), 200 * box_along_m, 2 * box_yaw_deg, fill=False,
                           ec="white", lw=2.0, ls="--", path_effects=halo))
    ax.plot([0], [0], marker="*", ms=14, color=REPORT_COLOR_WINNER, mec="black")
    ax.set_xlabel("offset along the wall [cm]")
    ax.set_ylabel("yaw offset [deg]")
    ax.set_title(title, fontsize=11)
    handles = [Line2D([], [], color="white", ls="--", lw=2, path_effects=halo,
                      label="mounting tolerance box (along the wall, yaw)"),
               Rectangle((0, 0), 1, 1, fill=False, hatch="xx", ec=REPORT_COLOR_UNCOVERED,
                         label="a target not covered"),
               Line2D([], [], ls="", marker="*", ms=12, color=REPORT_COLOR_WINNER, mec="black", label="winner"),
               Line2D([], [], color="red", lw=2, label=f"coverage threshold {threshold:.0f} dBm (bar)")]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    ax.set_facecolor("#444444")
    return _save(fig, path)


# --- trajectories ----------------------------------------------------------------------------------
def _world_colors(n):
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


def trajectories(path, plan: FloorPlan, paths: dict, status: dict, winner: int | None, *, extent,
                 winner_pose: PlatePose | None = None):
    """All worlds' plate positions over the floor plan: overview (left) and the mounting box (right).

    paths: world -> [steps, 2] (x, y) [m]; status: world -> completed | pruned | failed."""
    worlds = sorted(paths)
    colors = dict(zip(worlds, _world_colors(len(worlds))))
    bx0, by0 = plan.bounds_min
    bx1, by1 = plan.bounds_max
    pw = max(plan.plate_size[0], 0.5)
    pad_x, pad_y = max(0.1 * (bx1 - bx0), 0.7 * pw), max(0.1 * (by1 - by0), 0.7 * pw)
    zoom = (bx0 - pad_x, bx1 + pad_x, by0 - pad_y, by1 + pad_y)
    zw, zh = zoom[1] - zoom[0], zoom[3] - zoom[2]
    ratio = (extent[3] - extent[2]) / max(extent[1] - extent[0], 1e-9)
    fig_h = float(np.clip(6.0 * ratio + 1.6, 3.6, 7.0))
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12.5, fig_h), gridspec_kw={"width_ratios": [1.15, 1.0]},
                                   layout="constrained")
    for ax, ext, is_zoom in ((ax0, extent, False), (ax1, zoom, True)):
        draw_floor_plan(ax, plan, on_dark=False, labels=not is_zoom)
        for w in worlds:
            p = np.asarray(paths[w], float)
            if p.size == 0:
                continue
            st = status.get(w, "completed")
            is_win = w == winner
            alpha = 1.0 if is_win else (0.3 if st in STOPPED_EARLY else 0.85)
            lw = 2.8 if is_win else 1.3
            ls = ":" if st == "failed" else "-"
            ax.plot(p[:, 0], p[:, 1], color=colors[w], lw=lw, alpha=alpha, ls=ls, zorder=10 if is_win else 8)
            ax.scatter(p[0, 0], p[0, 1], s=36, facecolors="white", edgecolors=[colors[w]], linewidths=1.6,
                       alpha=alpha, zorder=11)
            ax.scatter(p[-1, 0], p[-1, 1], s=30, marker="s", color=colors[w], edgecolors="black",
                       linewidths=0.5, alpha=alpha, zorder=11)
            if is_zoom and not is_win:
                ax.annotate(str(w), (p[-1, 0], p[-1, 1]), xytext=(4, 3), textcoords="offset points", fontsize=7,
                            color=colors[w], alpha=alpha, zorder=12)
        if winner_pose is not None:
            draw_plates(ax, winner_pose, plan, color=REPORT_COLOR_WINNER, lw=3.0,
                        arrow_len=(0.3 * min(zw, zh)) if is_zoom else None)
            first = winner_pose.plates[0] if hasattr(winner_pose, "plates") else winner_pose
            ax.scatter([first.x], [first.y], s=220, marker="*", color=REPORT_COLOR_WINNER,
                       edgecolors="black", linewidths=0.8, zorder=13)
        ax.set_xlim(ext[0], ext[1])
        ax.set_ylim(ext[2], ext[3])
        ratio = (ext[3] - ext[2]) / max(ext[1] - ext[0], 1e-9)
        ax.set_aspect("equal" if 0.2 <= ratio <= 5 else "auto")
        ax.set_xlabel("x [m]")
        ax.set_ylabel("y [m]")
    if zoom[0] > extent[0] or zoom[1] < extent[1] or zoom[2] > extent[2] or zoom[3] < extent[3]:
        ax0.add_patch(Rectangle((zoom[0], zoom[2]), zw, zh, fill=False, ec="black", lw=0.8, ls="-", zorder=14))
    ax0.set_title("Plate centre per world: site overview", fontsize=11)
    ax1.set_title("Mounting box (zoom)" + ("" if ax1.get_aspect() == 1.0 else ", axes not to scale"),
                  fontsize=11)
    n_pruned = sum(1 for w in worlds if status.get(w) == "pruned")
    n_merged = sum(1 for w in worlds if status.get(w) == "merged")
    n_failed = sum(1 for w in worlds if status.get(w) == "failed")
    handles = [Line2D([], [], ls="", marker="o", mfc="white", mec="black", label="start"),
               Line2D([], [], ls="", marker="s", color="grey", mec="black", label="end (last step)"),
               Line2D([], [], color="grey", lw=1.3, label="path (one colour per world)"),
               Line2D([], [], color="grey", lw=1.3, alpha=0.3, label=f"pruned ({n_pruned})" + (f" or merged ({n_merged})" if n_merged else "")),
               Line2D([], [], ls="", marker="*", color=REPORT_COLOR_WINNER, mec="black", markersize=13,
                      label=f"winner (world {winner}): best pose + plate"),
               Line2D([], [], ls="--", color="#6a1b9a", label="plate search box"),
               Line2D([], [], ls="", marker="^", color="#212121", label="transmitter"),
               Line2D([], [], ls="", marker="o", color="#616161", markersize=4, label="targets")]
    if n_failed:
        handles.insert(4, Line2D([], [], color="grey", ls=":", label=f"failed ({n_failed})"))
    fig.legend(handles=handles, loc="outside lower center", ncol=5, fontsize=8, frameon=False)
    return _save(fig, path)


# --- convergence -----------------------------------------------------------------------------------
def _clip_low(values, threshold):
    """A lower y limit that keeps the interesting range (no path: -inf or the floor)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > NO_PATH_FLOOR_DBM)]
    lo = float(np.percentile(v, 2)) if v.size else threshold - 30.0
    lo = min(lo, threshold - 10.0) if threshold is not None else lo
    return math.floor((lo - 3.0) / 5.0) * 5.0


def convergence(path, series: dict, status: dict, winner: int | None, rungs, threshold, *,
                objective_label="objective [dBm]", model: bool = False):
    """series: world -> dict(step, min_rss, best_min_rss, objective) arrays. Truth min RSS per step (left),
    the smooth objective (right; `model`: the surrogate's, titled and shaded as a model's diagnostic, not a
    measurement); pruning rungs as vertical lines."""
    worlds = sorted(series)
    colors = dict(zip(worlds, _world_colors(len(worlds))))
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12.5, 4.8), layout="constrained")
    all_truth = np.concatenate([np.asarray(series[w]["min_rss"], float) for w in worlds]) if worlds else np.zeros(0)
    lo0 = _clip_low(all_truth, threshold)
    all_obj = np.concatenate([np.asarray(series[w]["objective"], float) for w in worlds]) if worlds else np.zeros(0)
    lo1 = _clip_low(all_obj, threshold) if np.isfinite(all_obj).any() else None
    hit_floor = False
    for w in worlds:
        s = series[w]
        st = status.get(w, "completed")
        is_win = w == winner
        alpha = 1.0 if is_win else (0.3 if st in STOPPED_EARLY else 0.8)
        lw = 2.6 if is_win else 1.2
        steps = np.asarray(s["step"], float)
        truth = np.asarray(s["min_rss"], float)
        hit_floor |= bool(np.any(truth < lo0))
        lab = f"world {w}" + (" (winner)" if is_win else f" ({st})" if st != "completed" else "")
        ax0.plot(steps, np.maximum(truth, lo0), color=colors[w], lw=lw, alpha=alpha, marker="." if len(steps) < 40
                 else None, ms=4, label=lab, zorder=10 if is_win else 5)
        if is_win and "best_min_rss" in s:
            ax0.plot(steps, np.maximum(np.asarray(s["best_min_rss"], float), lo0), color="black", lw=1.2, ls="--",
                     label="winner: best so far", zorder=11)
        obj = np.asarray(s["objective"], float)
        if lo1 is not None and np.isfinite(obj).any():
            ax1.plot(steps, np.maximum(obj, lo1), color=colors[w], lw=lw, alpha=alpha, zorder=10 if is_win else 5)
    for ax, lo in ((ax0, lo0), (ax1, lo1)):
        for i, r in enumerate(rungs or []):
            ax.axvline(r, color="#6a1b9a", ls=":", lw=1.3, label="pruning rung" if i == 0 and ax is ax0 else None)
        if threshold is not None:
            ax.axhline(threshold, color="red", lw=1.0, ls="--",
                       label=f"coverage threshold {threshold:.0f} dBm" if ax is ax0 else None)
        if lo is not None:
            ax.set_ylim(bottom=lo)
        ax.set_xlabel("step (truth evaluations per world)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    ax0.set_ylabel("min RSS over targets [dBm] (ray-traced truth)")
    ax0.set_title("Truth: worst target per step" + ("; bottom edge = no path" if hit_floor else ""), fontsize=11)
    ax1.set_ylabel(objective_label)
    if model:
        ax1.set_facecolor("#f3f3f3")
        ax1.set_title("Diagnostic: the MODEL's objective per step (surrogate,\nnot ray-traced; "
                      "its swings are the model's, not the signal's)", fontsize=10)
    else:
        ax1.set_title("Smooth objective per step", fontsize=11)
    if lo1 is None:
        ax1.text(0.5, 0.5, "no objective recorded", ha="center", va="center", transform=ax1.transAxes)
    handles, labels = ax0.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    return _save(fig, path)


# --- distribution ----------------------------------------------------------------------------------
def rss_cdf(path, baseline, winner, threshold, area=None):
    """Empirical CDF of RSS over targets [dBm], baseline vs winner; `area`: (baseline, winner) RSS of the
    radio maps' cells outside buildings (equal cells: a share of the area), drawn dashed on the same axes."""
    b = np.sort(np.asarray(baseline, float))
    w = np.sort(np.asarray(winner, float))
    curves = [(b, "#757575", "baseline (no plate)", "-", 2.2), (w, REPORT_COLOR_WINNER, "winner (with plate)", "-", 2.2)]
    if area is not None:
        ab, aw = (np.sort(np.where(np.asarray(a, float).ravel() <= NO_PATH_FLOOR_DBM, -np.inf,
                                   np.asarray(a, float).ravel())) for a in area)
        curves += [(ab, "#212121", "area, baseline", "--", 1.4), (aw, "#bf360c", "area, winner", "--", 1.4)]
    lo = _clip_low(np.concatenate([c[0] for c in curves]), threshold)
    fig, ax = plt.subplots(figsize=(7.0, 4.8), layout="constrained")
    hi = lo
    for vals, color, name, ls, lw in curves:
        if vals.size == 0:
            continue
        n_dark = int(np.sum(vals < lo))
        y = np.arange(1, vals.size + 1) / vals.size
        xs = np.maximum(vals, lo)
        lit = vals[np.isfinite(vals) & (vals > NO_PATH_FLOOR_DBM)]
        dark = (f"; {n_dark} with no path (at left edge)" if name[:4] != "area" else
                f"; {100.0 * n_dark / vals.size:.1f} % below {lo:.0f} dBm or no path (at left edge)") if n_dark else ""
        lab = f"{name}: min {fmt_power(vals.min())}, mean {fmt_power(lit.mean() if lit.size else None)}" + dark
        ax.step(np.r_[lo, xs], np.r_[0.0, y], where="post", color=color, ls=ls, lw=lw, label=lab)
        hi = max(hi, float(vals.max())) if np.isfinite(vals.max()) else hi
    if threshold is not None:
        ax.axvline(threshold, color="red", ls="--", lw=1.0, label=f"coverage threshold {threshold:.0f} dBm")
    ax.set_xlim(lo, math.ceil((hi + 3.0) / 5.0) * 5.0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("received power [dBm]")
    ax.set_ylabel("fraction ≤ value (targets solid, area dashed)" if area is not None
                  else "fraction of targets ≤ value")
    ax.set_title(f"RSS over {max(b.size, w.size)} targets" + (" and over the radio map's area" if area is not None
                                                               else "") + ": distribution", fontsize=11)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", fontsize=8, frameon=False)
    return _save(fig, path)
