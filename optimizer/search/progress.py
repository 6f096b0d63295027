"""Progress of a run on the terminal: a live per-world table on a tty (`rich`), periodic lines otherwise."""

from __future__ import annotations

import sys
import time

from optimizer.console import PREFIX
from optimizer.records.text import fmt_dbm, fmt_power

COLUMNS = ("world", "step", "min RSS [dBm]", "best [dBm]", "cover", "status")


class ProgressView:
    """Live per-world table on the terminal: on a tty a `rich.live.Live` table redrawn in place, otherwise a
    progress line every `interval` seconds. The live display is not pickled (Tune pickles its callbacks): a
    restored view starts a new one."""

    def __init__(self, steps: int):
        self.steps = steps
        self.rows: dict[int, dict] = {}
        self.status: dict[int, str] = {}
        self.tty = sys.stderr.isatty()
        self.interval = 0.3 if self.tty else 10.0  # [s] between redraws / progress lines
        self._last = 0.0
        self._live = None  # rich.live.Live on a tty, started at the first redraw

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_live"] = None
        return state

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

    def cells(self) -> list[tuple[str, ...]]:
        """One row of `COLUMNS` per world, in world order."""
        out = []
        for w in sorted(set(self.rows) | set(self.status)):
            r = self.rows.get(w)
            st = self.status.get(w, "pending")
            if r is None:
                out.append((str(w), "-", "-", "-", "-", st))
                continue
            out.append((str(w), f"{r['step']}/{self.steps}", fmt_dbm(r["min_rss_dbm"]), fmt_dbm(r["best_min_rss_dbm"]),
                        f"{r['best_coverage']:.0%}", st))
        return out

    def table(self):
        """The live table as a `rich.table.Table`."""
        from rich.table import Table
        from rich.text import Text

        t = Table(box=None, pad_edge=False)
        for k, name in enumerate(COLUMNS):  # Text: no markup ("[dBm]" is not a style)
            t.add_column(Text(name), justify="left" if k == len(COLUMNS) - 1 else "right")
        for row in self.cells():
            t.add_row(*(Text(c) for c in row), style="dim" if row[-1] == "pruned" else None)
        return t

    def line(self) -> str:
        """The periodic progress line (not a tty)."""
        counts: dict[str, int] = {}
        for st in self.status.values():
            counts[st] = counts.get(st, 0) + 1
        steps = sum(int(r["step"]) for r in self.rows.values())
        best = max((r["best_score"] for r in self.rows.values()), default=None)
        best_row = next((r for r in self.rows.values() if r["best_score"] == best), None)
        state = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        best_rss = fmt_power(best_row["best_min_rss_dbm"]) if best_row else "-"
        return f"{PREFIX} {steps} world-steps, best min RSS {best_rss}; worlds: {state}"

    def render(self):
        if not self.tty:
            sys.stderr.write(self.line() + "\n")
            sys.stderr.flush()
            return
        if self._live is None:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self.table(), console=Console(file=sys.stderr), auto_refresh=False, transient=False)
            self._live.start()
        self._live.update(self.table(), refresh=True)

    def close(self):
        """Stop the live display (the table stays on screen)."""
        if self._live is not None:
            self._live.stop()
            self._live = None
