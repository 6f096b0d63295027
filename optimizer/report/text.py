"""The report's text: one document (headings, paragraphs, tables, figures) built from the typed records,
rendered twice, as Markdown (`report.md`) and as one self-contained HTML page (`report.html`)."""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path

from optimizer.constants import HEATMAPS_DIR, MOUNTING_HTML
from optimizer.physics.wall import frame_label
from optimizer.records import Summary
from optimizer.records.text import (NO_PATH, fmt_cm, fmt_db, fmt_dbm, fmt_half_deg, fmt_pct, fmt_plate, fmt_pose,
                                    fmt_power, fmt_s)


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str
    kind: str = "p"  # p | small | warn | win


@dataclass
class Table:
    head: list[str] | None
    rows: list[list[str]]
    numeric_from: int = 1


@dataclass
class Link:
    text: str
    href: str  # relative to the report


@dataclass
class Figure:
    path: Path
    caption: str


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)

    def add(self, *blocks):
        self.blocks.extend(blocks)


# --- content ---------------------------------------------------------------------------------------------
def _winner_line(s: Summary) -> str:
    w = s.winner
    extra = [f"world {w.world}", f"min RSS during search {fmt_power(w.search_min_rss_dbm)}",
             f"re-evaluated with {w.samples_per_src:,} samples per source"]
    return fmt_pose(w.joint_pose) + f" ({'; '.join(extra)})"


def _objective_row(s: Summary) -> list[list[str]]:
    """The objective's own row where it is not `min` (min RSS is the next row): P<p> or the covered share."""
    o = s.objective
    if o is None or o.kind == "min":
        return []
    if o.kind == "coverage":
        gain = ("-" if o.baseline is None or o.winner is None
                else f"{100.0 * (o.winner - o.baseline):+.1f} points")
        return [["objective: share of targets covered", fmt_pct(o.baseline), fmt_pct(o.winner), gain]]
    label = (f"objective: P{o.params['p']:g} RSS [dBm]" if o.kind == "percentile"
             else f"objective: {o.kind}")
    gain = _gain(None if o.baseline is None or o.winner is None else o.winner - o.baseline)
    return [[label, fmt_dbm(o.baseline), fmt_dbm(o.winner), gain]]


def _metric_rows(s: Summary) -> list[list[str]]:
    b, w, g = s.baseline, s.winner, s.gain_db
    rows = _objective_row(s) + [["min RSS [dBm]", fmt_dbm(b.min_rss_dbm), fmt_dbm(w.min_rss_dbm), _gain(g.min)],
            ["P5 RSS [dBm]", fmt_dbm(b.p5_rss_dbm), fmt_dbm(w.p5_rss_dbm), _gain(g.p5)],
            ["mean RSS [dBm] (targets with a path)", fmt_dbm(b.mean_rss_dbm), fmt_dbm(w.mean_rss_dbm), _gain(g.mean)],
            ["coverage", fmt_pct(b.coverage), fmt_pct(w.coverage),
             f"{s.coverage_gain.targets:+d} targets ({100.0 * s.coverage_gain.share:+.1f} points)"],
            ["targets with no path", str(b.no_path), str(w.no_path), f"{w.no_path - b.no_path:+d}"]]
    return rows


def _antenna(a) -> str:
    if a.is_default():
        return ""
    aim = (f"look_at {a.look_at}" if a.look_at is not None
           else f"azimuth {a.azimuth_deg:g}°, downtilt {a.downtilt_deg:g}°")
    return f", {a.pattern} {a.polarization}, {aim}"


def _combine(exp) -> str:
    o = exp.objective
    if exp.combine() == "sinr":
        return (f"sinr: every RSS figure, the threshold and the objective in this report are dB SINR, not dBm "
                f"(noise kTB·NF over {o.bandwidth_hz:g} Hz, NF {o.noise_figure_db:g} dB)")
    return {"sum": "sum (powers add up)", "best_server": "best_server (each target's strongest transmitter)"}[
        exp.combine()]


def _frequencies(f) -> str:
    if not isinstance(f, list):
        return f"{f / 1e9:.3f} GHz"
    return (f"a band of {len(f)}: " + ", ".join(f"{x / 1e9:.3f}" for x in f) + " GHz (each target's worst of them "
            "counts; the radio maps are at the centre)")


def _band_rows(s: Summary) -> list[list[str]]:
    """Per frequency of a band: the objective, min RSS and coverage without and with the plate."""
    def obj(v):
        return "-" if v is None else (fmt_pct(v) if s.objective is not None and s.objective.kind == "coverage"
                                      else fmt_dbm(v))

    return [[f"{b.frequency_hz / 1e9:.3f} GHz", obj(b.objective_baseline), obj(b.objective_winner),
             fmt_dbm(b.baseline.min_rss_dbm), fmt_dbm(b.winner.min_rss_dbm), fmt_pct(b.baseline.coverage),
             fmt_pct(b.winner.coverage)] for b in s.band]


BAND_HEAD = ["frequency", "objective baseline", "objective winner", "min RSS baseline [dBm]",
             "min RSS winner [dBm]", "coverage baseline", "coverage winner"]


def _gain(v) -> str:
    return f"{fmt_db(v)} dB" if v is not None else "- (no path on a side: see coverage)"


def _facts(s: Summary, exp) -> list[list[str]]:
    c = s.counts
    rows = [["experiment", s.name], ["run id", s.run_id], ["scene", s.scene],
            ["frequency", _frequencies(s.frequency_hz)], ["coverage threshold", fmt_power(s.threshold_dbm)]]
    if exp is not None:
        plates = "; ".join(f"{r.size_m[0]:g} m × {r.size_m[1]:g} m {r.material}" for r in exp.plates())
        rows += [["transmitters", ", ".join(f"{t.name} ({t.power_dbm:g} dBm{_antenna(t.antenna)})"
                                            for t in exp.transmitters)],
                 ["transmitters combine", _combine(exp)],
                 ["targets", str(s.targets_count)], ["plate", plates],
                 ["search", f"{exp.search.gradient}, {exp.search.worlds} worlds × {exp.search.steps} steps, "
                            f"starts {exp.search.starts}"]]
    solver = ", ".join(f"{k} {v}" for k, v in s.solver.items())
    rows += [["truth solver (Sionna PathSolver)", solver],
             ["worlds run / completed / pruned / merged / failed",
              f"{c.worlds} / {c.completed} / {c.pruned} / {c.merged} / {c.failed}"],
             ["worlds started in freed slots (search.reuse)", ", ".join(
                 f"{r.world} ({r.kind}{'' if r.parent is None else f' of {r.parent}'}, slot of {r.freed_by})"
                 for r in s.reused) or "none"],
             ["truth evaluations", str(s.evaluations)], ["wall time", fmt_s(s.wall_time_s)],
             ["device", s.device], ["started / finished (UTC)", f"{s.created_utc} / {s.finished_utc}"],
             ["experiment sha256", s.experiment_sha256]]
    return rows


WORLD_HEAD = ["world", "start", "status", "steps", "evaluations", "min RSS [dBm]", "coverage", "pose (its result)",
              "moved by the worst-case polish"]


def _world_rows(s: Summary) -> list[list[str]]:
    """One pose per world: the one its result stands for (the pose its tolerance check is of, where the
    worst-case polish moved it; else its best pose), its truth, and how far the polish moved it."""
    rows = []
    for o in s.worlds:
        chk = o.tolerance
        pose = chk.pose if chk is not None and chk.pose is not None else o.best_pose
        truth = chk.nominal if chk is not None and chk.pose is not None else o.best
        rows.append([f"{o.world}" + (" ★" if o.world == s.winner.world else ""), o.start_kind or "-", o.status,
                     str(o.steps), str(o.evaluations), fmt_dbm(truth.min_rss_dbm) if truth else "-",
                     fmt_pct(truth.coverage) if truth else "-", fmt_pose(pose), _polish_move(o.best_pose, pose)])
    return rows


def _polish_move(before, after) -> str:
    """How far the worst-case polish moved a world's best pose (every plate: the largest move), or '-'."""
    if before is None or after is None or before == after:
        return "-"
    d = max(math.dist(a.position, b.position) for a, b in zip(before.plates, after.plates))
    turn = max(max(abs(a.yaw_deg - b.yaw_deg), abs(a.pitch_deg - b.pitch_deg))
               for a, b in zip(before.plates, after.plates))
    return f"{100 * d:.0f} cm, {turn:.1f}° from {fmt_pose(before)}"


def _timing_line(timing: dict, s: Summary) -> str:
    parts = []
    if timing.get("radio_maps_s") is not None:
        cells = timing.get("cells")
        parts.append(f"scene + radio maps {timing['radio_maps_s']:.1f} s"
                     + (f" ({cells[0]} × {cells[1]} cells, {timing['samples_per_tx']:,} rays per transmitter)"
                        if cells and timing.get("samples_per_tx") else ""))
    parts.append(f"pictures {timing['pictures_s']:.1f} s")
    line = "Rendering: " + ", ".join(parts) + f"; report total {timing['total_s']:.1f} s"
    if s.wall_time_s:
        line += f" ({100.0 * timing['total_s'] / s.wall_time_s:.0f} % of the run's wall time)"
    return line + "."


def build_document(s: Summary, exp, pictures: list[Path], captions: dict, timing: dict,
                   problems: list[str], attribution: str | None = None) -> Document:
    """The report; `attribution`: the map data's credit where the scene came from a map
    (`optimizer.sites.record.credit`)."""
    doc = Document(title=f"reflectopt report: {s.name} ({s.run_id})")
    doc.add(Heading(doc.title, 1), Para(f"Winner pose: {_winner_line(s)}", "win"),
            Para(f"Reproduce: reflectopt evaluate EXPERIMENT --pose={s.winner.pose_arg}"
                 + (f" --size={s.winner.size_arg}" if s.winner.size_arg else ""), "small"))
    if attribution:
        doc.add(Para(attribution, "small"))
    if s.winner.on_bounds:
        doc.add(Para(f"The winner lies on the mounting box's bound(s) {', '.join(s.winner.on_bounds)}: widening "
                     "the box there may find a better pose.", "warn"))
    for note in s.winner.notes:
        doc.add(Para(note, "warn"))
    doc.add(Table(["metric", "baseline (no plate)", "winner (with plate)", "gain"], _metric_rows(s)),
            Para(f"A target that no path reaches has no dBm value ('{NO_PATH}'); a dB gain is given only where both "
                 "sides have a path, otherwise the coverage gained counts.", "small"))
    if s.band:
        doc.add(Heading("Per frequency (the band)"), Table(BAND_HEAD, _band_rows(s)),
                Para("Each frequency's truth alone (a PathSolver solve at that frequency, final sample count); the "
                     "figures above take each target's worst over the band.", "small"))
    if s.collateral is not None:
        doc.add(Heading("Collateral loss (no harm elsewhere)"), Table(None, collateral_rows(s.collateral),
                                                                      numeric_from=99))
    chk = s.winner.tolerance
    if chk is not None:
        doc.add(Heading("Mounting tolerance"), Table(None, [
            ["box (per axis)", f"±{100 * chk.position_m:g} cm along / off the wall and vertical, ±{chk.yaw_deg:g}° yaw, "
                               f"±{chk.pitch_deg:g}° pitch"],
            *[[f"frame of the box ({f.plate})" if len(s.tolerance_frames) > 1 else "frame of the box",
               frame_label(f)] for f in s.tolerance_frames],
            ["coverage over the box", "HOLDS" if chk.holds else "does NOT hold"],
            ["poses checked (truth)", f"{chk.poses_checked} (every corner + seeded interior poses)"],
            ["min RSS: nominal / worst over the box", f"{fmt_power(chk.nominal_min_rss_dbm)} / "
                                                      f"{fmt_power(chk.worst_min_rss_dbm)}"],
            ["lowest coverage over the box", fmt_pct(chk.worst_coverage)],
            ["margin (largest share of the box that holds)", "-" if chk.margin_scale is None else
             f"{chk.margin_scale:.0%}"]], numeric_from=99))
        doc.add(*[Para(f"To make it hold: {line}", "warn") for line in chk.suggestions])
    if s.winner.plates and any(p.mount is not None for p in s.winner.plates):
        doc.add(Heading("How to mount it"), Table(["", *[p.name for p in s.winner.plates]],
                                                  mount_rows([p.mount for p in s.winner.plates]), numeric_from=99),
                Link(f"{MOUNTING_HTML}: one page to take to the site (plan and side view of the wall, the plate to "
                     "scale, these figures; prints on one page)", MOUNTING_HTML))
    conv = s.winner.truth_convergence
    if conv is not None:
        doc.add(Heading("Truth convergence"), Table(["check", "min RSS change", "coverage"], [
            ["max_depth + 1", f"{fmt_db(conv.depth_plus_1_db)} dB", fmt_pct(conv.coverage_depth_plus_1)],
            ["4 × samples per source", f"{fmt_db(conv.samples_x4_db)} dB", fmt_pct(conv.coverage_samples_x4)]]))
    if len(s.winner.plates) > 1:
        def _tol(t):
            if t is None:
                return "off"
            held = "holds" if t.holds and t.complete else ("does NOT hold" if not t.holds else "not checked")
            return f"{held} ({t.poses_checked} poses; worst min RSS {fmt_power(t.worst_min_rss_dbm)})"

        doc.add(Heading("Plates"), Table(["plate", "pose", "size [m]", "over its mounting tolerance"],
                                         [[p.name, fmt_plate(p.pose), f"{p.size_m[0]:g} × {p.size_m[1]:g}",
                                           _tol(p.tolerance)] for p in s.winner.plates], numeric_from=99))
    if s.sizes:
        def _held(r):
            return ("not run" if r.world is None else "not checked" if r.holds is None else
                    "holds" if r.holds else "does NOT hold")

        doc.add(Heading("Plate sizes (catalogue)"),
                Table(["size [m]", "area [m²]", "worlds", "over the tolerance", "worst min RSS", "lowest coverage",
                       "nominal min RSS"],
                      [[" + ".join(f"{w:g} × {h:g}" for w, h in r.size_m) + (" ★" if r.chosen else ""),
                        f"{r.area_m2:g}", str(len(r.worlds)), _held(r), fmt_power(r.worst_min_rss_dbm),
                        fmt_pct(r.worst_coverage), fmt_power(r.min_rss_dbm)] for r in s.sizes], numeric_from=1))
    doc.add(Heading("Run"), Table(None, _facts(s, exp), numeric_from=99),
            Heading("Worlds"), Table(WORLD_HEAD, _world_rows(s), numeric_from=3))
    if s.failures:
        doc.add(Heading("Failures"), Table(["world", "status", "restarts", "error"],
                                           [[str(f.world), f.status, str(f.restarts), f.error] for f in s.failures],
                                           numeric_from=99))
    doc.add(Heading("Pictures"))
    doc.add(*[Figure(p, captions.get(p.name, p.name)) for p in pictures])
    if problems:
        doc.add(Heading("Not drawn"), *[Para(p, "warn") for p in problems])
    doc.add(Heading("Versions"), Table(["package", "version"], [[k, str(v)] for k, v in s.versions.items()],
                                       numeric_from=99),
            Para(_timing_line(timing, s), "small"))
    return doc


def collateral_rows(c) -> list[list[str]]:
    """`summary.collateral` as table rows."""
    def xy(p):
        return "-" if p is None else f"x = {p[0]:.1f} m, y = {p[1]:.1f} m"

    worst = "-" if c.worst_loss_db is None else f"{c.worst_loss_db:.1f} dB" + (
        " (no path with the plate: counted down to the no-path floor)" if c.worst_no_path else "")
    return [["area covered without the plate, not with it", f"{c.area_m2:.1f} m² ({c.cells} cells of "
             f"{c.cell_m:g} m; of {c.covered_area_m2:.0f} m² covered without the plate)"],
            ["the same without the noise margin (any drop below the threshold)", f"{c.area_any_drop_m2:.1f} m²"],
            ["where (centroid of those cells)", xy(c.centroid_xy_m)],
            ["worst loss over the covered cells", worst], ["worst cell", xy(c.worst_xy_m)],
            ["how", f"radio maps at z = {c.height_m:.1f} m ({c.samples_per_tx:,} rays per transmitter, geometric-"
                    f"optics plate), threshold {fmt_power(c.threshold_dbm)}; a cell counts if it falls below the "
                    f"threshold and loses more than {c.margin_db:g} dB (the maps' sampling noise); buildings left "
                    f"out"]]


def mount_rows(mounts) -> list[list[str]]:
    """The `winner.mount` figures as table rows, one column per plate (null: what the site does not tell)."""
    def row(label, fn):
        return [label, *["-" if m is None else fn(m) for m in mounts]]

    def tol(m):
        t = m.tolerance
        return f"±{100 * t['position_m']:g} cm along / off the wall and vertical, ±{t['yaw_deg']:g}° yaw, " \
               f"±{t['pitch_deg']:g}° pitch"

    return [row("wall", lambda m: m.wall_id or "not known"),
            row("frame of the tolerance box", lambda m: frame_label(m.frame)),
            row("along the wall from its nearer end", lambda m: "-" if m.along_m is None else
                f"{fmt_cm(m.along_m)} (from the end at x = {m.from_end[0]:.2f}, y = {m.from_end[1]:.2f} m)"),
            row("height of the plate centre above the ground", lambda m: fmt_cm(m.height_m)
                + ("" if m.ground == "mesh" else " (above z = 0: no ground found below it)")),
            row("stand-off: plate centre to the wall", lambda m: "-" if m.standoff_m is None else fmt_cm(m.standoff_m)),
            row("angle between plate and wall (plan)", lambda m: fmt_half_deg(m.angle_to_wall_deg)),
            row("bearing of the plate's normal (from true north)", lambda m: "- (site not geo-referenced)" if m.bearing_deg is None
                else fmt_half_deg(m.bearing_deg)),
            row("plate centre (latitude, longitude)", lambda m: "- (site not geo-referenced)" if m.lat_deg is None
                else f"{m.lat_deg:.7f}, {m.lon_deg:.7f}"),
            row("pitch (normal tilted up)", lambda m: fmt_half_deg(m.pitch_deg)),
            row("plate", lambda m: f"{m.size_m[0]:g} m × {m.size_m[1]:g} m {m.material}"),
            row("mounting tolerance", tol),
            row("figures rounded to", lambda m: f"{100 * m.rounding['m']:g} cm, {m.rounding['deg']:g}°")]


# --- rendering -------------------------------------------------------------------------------------------
def to_markdown(doc: Document) -> str:
    out: list[str] = []
    for b in doc.blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            text = f"**{b.text}**" if b.kind == "win" else (f"> {b.text}" if b.kind == "warn" else b.text)
            out += [text, ""]
        elif isinstance(b, Table):
            head = b.head or ["", ""]
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "".join("---:|" if i >= b.numeric_from else "---|" for i in range(len(head))))
            out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in b.rows]
            out.append("")
        elif isinstance(b, Link):
            out += [f"[{b.text}]({b.href})", ""]
        elif isinstance(b, Figure):
            out += [f"### {b.caption}", "", f"![{b.caption}]({HEATMAPS_DIR}/{b.path.name})", ""]
    return "\n".join(out)


_CSS = ("body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:24px auto;"
        "padding:0 16px;color:#212121}table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ddd;"
        "padding:4px 10px;font-size:14px}th{background:#f5f5f5;text-align:left}td.n{text-align:right;"
        "font-variant-numeric:tabular-nums}figure{margin:16px 0}figure img{max-width:100%;border:1px solid #eee}"
        "figcaption{font-size:13px;color:#555}.win{font-size:17px;margin:12px 0;font-weight:600}.warn{color:#b71c1c}"
        "small{color:#666}")


def to_html(doc: Document) -> str:
    e = html.escape
    body: list[str] = []
    for b in doc.blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            if b.kind == "small":
                body.append(f"<p><small>{e(b.text)}</small></p>")
            else:
                body.append(f"<p class='{b.kind}'>{e(b.text)}</p>")
        elif isinstance(b, Table):
            rows = ["<table>"]
            if b.head:
                rows.append("<tr>" + "".join(f"<th>{e(h)}</th>" for h in b.head) + "</tr>")
            for r in b.rows:
                rows.append("<tr>" + "".join(f"<td class='n'>{e(c)}</td>" if i >= b.numeric_from else
                                             f"<td>{e(c)}</td>" for i, c in enumerate(r)) + "</tr>")
            rows.append("</table>")
            body.append("\n".join(rows))
        elif isinstance(b, Link):
            body.append(f"<p><a href='{e(b.href)}'>{e(b.text)}</a></p>")
        elif isinstance(b, Figure):
            data = base64.b64encode(b.path.read_bytes()).decode("ascii")
            body.append(f"<figure><img alt='{e(b.caption)}' src='data:image/png;base64,{data}'>"
                        f"<figcaption>{e(b.caption)} ({e(HEATMAPS_DIR + '/' + b.path.name)})</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{e(doc.title)}</title><style>{_CSS}</style></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n")
