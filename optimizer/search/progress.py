"""Progress of a run on the terminal: a live per-world table on a tty, periodic lines otherwise."""

from __future__ import annotations

import sys
import time

from optimizer.console import PREFIX
from optimizer.records.text import fmt_dbm, fmt_power


class ProgressView:
    """Live per-world table on the terminal (rewritten in place on a tty, periodic lines otherwise)."""

    def __init__(self, steps: int):
        self.steps = steps
        self.rows: dict[int, dict] = {}
        self.status: dict[int, str] = {}
        self.tty = sys.stderr.isatty()
        self.interval = 0.3 if self.tty else 10.0  # [s] between redraws / progress lines
        self._last = 0.0
        self._lines = 0

    def update(self, world: int, row: dict | None = None, status: str | None = None, force=False):
        if row is not None:
            self.rows[world] = row
            self.status.setdefault(world, "running")
        if status:
            self.status[world] = status
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            self.render()

    def table(self) -> list[str]:
        lines = [f"{'world':>5} {'step':>9} {'min RSS [dBm]':>14} {'best [dBm]':>11} {'cover':>6}  status"]
        for w in sorted(set(self.rows) | set(self.status)):
            r = self.rows.get(w)
            st = self.status.get(w, "pending")
            if r is None:
                lines.append(f"{w:>5} {'-':>9} {'-':>14} {'-':>11} {'-':>6}  {st}")
                continue
            mark = " (pruned)" if st == "pruned" else ""
            lines.append(f"{w:>5} {r['step']:>4}/{self.steps:<4} {fmt_dbm(r['min_rss_dbm']):>14} "
                         f"{fmt_dbm(r['best_min_rss_dbm']):>11} {r['best_coverage']:>6.0%}  {st}{mark}")
        return lines

    @property
    def stream(self):  # resolved at each use: Tune pickles callbacks, and streams do not pickle
        return sys.stderr

    def render(self):
        lines = self.table()
        if self.tty and self._lines:
            self.stream.write(f"\x1b[{self._lines}F\x1b[J")
        elif not self.tty:
            counts = {}
            for st in self.status.values():
                counts[st] = counts.get(st, 0) + 1
            steps = sum(int(r["step"]) for r in self.rows.values())
            best = max((r["best_score"] for r in self.rows.values()), default=None)
            best_row = next((r for r in self.rows.values() if r["best_score"] == best), None)
            state = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
            best_rss = fmt_power(best_row["best_min_rss_dbm"]) if best_row else "-"
            self.stream.write(f"{PREFIX} {steps} world-steps, best min RSS {best_rss}; worlds: {state}\n")
        if self.tty:
            self.stream.write("\n".join(lines) + "\n")
            self._lines = len(lines)
        self.stream.flush()
