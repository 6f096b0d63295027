"""An object-store outage on the driver's console: one line when the store stops answering, one when it answers
again, however many processes of the run (the driver, every world) see it.

Each process notes an outage once (`optimizer.store.storage.report_outages_to`). The driver's own notes go
straight to `Console`. A world runs in a Ray worker whose output stays off the console, so its notes travel to
the driver through Ray's key-value store (the cluster's GCS, not the object store that is down), in the run's
Ray job's namespace; the driver reads them while Tune runs (`poll`, from `tune.callbacks.Watch`) and after. The console
merges them: the first "down" of an outage is printed, the first "up" after it closes it (timed from the
earliest "down"), and the other processes' notes of that same outage are dropped.
"""

from __future__ import annotations

import json
import logging
import os
import time

from optimizer.console import say

POLL_EVERY_S = 0.5  # [s] how often the driver reads the worlds' notes while Tune runs
_NAMESPACE = "reflectopt-outage-"  # + the Ray job id


class Console:
    """The driver's view of an outage: since when it is open (wall clock; None: none is), when the last one
    closed. `write(line)` prints one line."""

    def __init__(self, write=None):
        self._write = write
        self.open_since: float | None = None
        self.closed_at = 0.0

    def write(self, line: str) -> None:
        if self._write is not None:
            self._write(line)
            return
        say(line)

    def note(self, kind: str, line: str, since: float, at: float | None = None) -> None:
        """A process's note: `kind` "down" (`line` says what failed) or "up"; `since`: when that process's
        outage began, `at`: when it noted this (both Unix time)."""
        at = time.time() if at is None else float(at)
        if kind == "down":
            if self.open_since is None and since > self.closed_at:  # (else: an outage already told, or closed)
                self.open_since = float(since)
                self.write(f"warning: {line}")
        elif kind == "up" and self.open_since is not None:
            self.write(f"object store answers again (after {max(0.0, at - self.open_since):.0f} s)")
            self.open_since, self.closed_at = None, at


console = Console()  # this process's (the driver's)
_last_poll = {"t": 0.0}


def to_console() -> None:
    """This process is a driver: its outage notes go to `console`."""
    from optimizer.store import storage

    storage.report_outages_to(lambda kind, line, since: console.note(kind, line, since))


def reset() -> None:
    """A new run (or resume): no outage open, none closed."""
    console.open_since, console.closed_at = None, 0.0


def _namespace() -> str | None:
    import ray

    if not ray.is_initialized():
        return None
    return _NAMESPACE + ray.get_runtime_context().get_job_id()


def to_driver() -> None:
    """This process is a world's (a Ray worker): its outage notes go to the driver (and to its own log)."""
    from optimizer.store import storage

    ns = _namespace()
    logger = logging.getLogger(storage.__name__)

    def forward(kind: str, line: str, since: float) -> None:
        logger.warning("%s", line)
        if ns is None:
            return
        try:
            from ray.experimental import internal_kv

            internal_kv._internal_kv_put(f"{os.getpid()}-{time.time_ns()}",
                                         json.dumps({"kind": kind, "line": line, "since": since, "at": time.time()}),
                                         namespace=ns)
        except Exception:  # noqa: BLE001 - a note that cannot travel never fails the world
            pass

    storage.report_outages_to(forward)


def poll(force: bool = False) -> None:
    """Driver: read the worlds' notes (at most every POLL_EVERY_S unless `force`) into `console`, oldest first."""
    now = time.monotonic()
    if not force and now - _last_poll["t"] < POLL_EVERY_S:
        return
    _last_poll["t"] = now
    notes = []
    try:
        from ray.experimental import internal_kv

        ns = _namespace()
        if ns is None or not internal_kv._internal_kv_initialized():
            return
        for key in internal_kv._internal_kv_list("", namespace=ns):
            raw = internal_kv._internal_kv_get(key, namespace=ns)
            internal_kv._internal_kv_del(key, namespace=ns)
            if raw:
                notes.append(json.loads(raw))
    except Exception:  # noqa: BLE001 - the console's notes never fail a run
        pass
    for n in sorted(notes, key=lambda n: n.get("at", 0.0)):
        console.note(str(n.get("kind")), str(n.get("line")), float(n.get("since", 0.0)), n.get("at"))
