"""Who owns a run folder: the lease (`lease.json`) of the driver that runs it.

`run` takes the lease of the folder it creates; `resume` takes it only if nobody holds it, so two drivers
never run the same worlds. The holder renews it every LEASE_RENEW_S in a background thread and removes it
when it ends (complete, failed or interrupted). A lease is held when

* its host is this machine: its PID is alive and is the same process (its start time matches), whatever
  its renewal says (a killed driver's lease is given up at once);
* its host is another machine (a shared folder, an s3:// run from another pod): it was renewed less than
  `ttl_s` (LEASE_TTL_S) ago; a driver on a machine that is gone loses it when it lapses.

A lease that is not held is taken over. Taking one is atomic on a local folder (an exclusive lock on the
folder while it is checked and written); on S3 a missing lease is created with a conditional put, and a
lapsed one is overwritten and read back, so two resumes racing for the same lapsed lease within a moment of
each other are the one case not excluded.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime

from optimizer.console import say
from optimizer.constants import LEASE_FILE
from optimizer.errors import ConfigError, ReflectoptError, StorageError
from optimizer.records import RunLease
from optimizer.store import storage

LEASE_RENEW_S = 20.0  # [s] between renewals
LEASE_TTL_S = 120.0  # [s] a lease not renewed for this long lapses (another host's; this host's: its PID)
PROCESS_START_SLACK_S = 1.0  # [s] a PID whose start time differs by more is another process


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _process_start(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _pid_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def held(lease: RunLease, now: float | None = None) -> bool:
    """Whether `lease` still holds (see the module's docstring)."""
    if lease.host == socket.gethostname():
        if not _pid_alive(lease.pid):
            return False
        start = _process_start(lease.pid)
        return lease.process_start is None or start is None or abs(start - lease.process_start) <= PROCESS_START_SLACK_S
    now = time.time() if now is None else now
    return now - lease.heartbeat_unix < lease.ttl_s


def read(run_uri: str) -> RunLease | None:
    """The run folder's lease, or None: there is none (or it is not a lease: never written whole)."""
    uri = storage.join(run_uri, LEASE_FILE)
    try:
        text = storage.read_text(uri)
    except StorageError:
        if storage.exists(uri):
            raise
        return None
    try:
        return RunLease.model_validate_json(text)
    except ValueError:
        return None


def describe(lease: RunLease, now: float | None = None) -> str:
    """The holder in a few words: who, where, since when, and its last renewal."""
    age = (time.time() if now is None else now) - lease.heartbeat_unix
    return (f"pid {lease.pid} on host {lease.host} ({lease.command} since {lease.started_utc}, renewed "
            f"{max(0.0, age):.0f} s ago)")


def refusal(run_uri: str, lease: RunLease) -> ConfigError:
    """The one line `resume` ends with when the run's driver still holds its folder."""
    if lease.host == socket.gethostname():
        how = (f"wait for it to end, or stop it (Ctrl-C or `kill {lease.pid}` keeps its checkpoints) and then "
               "resume")
    else:
        how = (f"wait for it to end or stop it; if that host is gone, resume after its lease lapses at "
               f"{_utc(lease.heartbeat_unix + lease.ttl_s)}")
    return ConfigError(f"RESULTS: {run_uri} is still being run by {describe(lease)}; {how}")


def check_free(run_uri: str) -> None:
    """Raise `refusal` if a live driver holds the run folder (writes nothing)."""
    lease = read(run_uri)
    if lease is not None and held(lease):
        raise refusal(run_uri, lease)


class Lease:
    """This process's lease of a run folder: `acquire` it, then `release` it when the run ends."""

    def __init__(self, run_uri: str, command: str, ttl_s: float = LEASE_TTL_S, renew_s: float = LEASE_RENEW_S):
        self.run_uri, self.uri = run_uri, storage.join(run_uri, LEASE_FILE)
        self.renew_s = renew_s
        now = time.time()
        self.record = RunLease(pid=os.getpid(), host=socket.gethostname(), process_start=_process_start(os.getpid()),
                               command=command, token=uuid.uuid4().hex, started_utc=_utc(now),
                               heartbeat_utc=_utc(now), heartbeat_unix=now, ttl_s=ttl_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._abandoned = False

    # --- taking and giving up ------------------------------------------------------------------------------
    def acquire(self) -> Lease:
        """Take the lease, or raise `refusal` naming its live holder; then renew it in the background."""
        if storage.is_remote(self.uri):
            self._acquire_remote()
        else:
            with _folder_lock(self.run_uri):
                current = read(self.run_uri)
                if current is not None and current.token != self.record.token and held(current):
                    raise refusal(self.run_uri, current)
                storage.write_text(self.uri, self.record.to_json())
        self._thread = threading.Thread(target=self._renew_loop, name="reflectopt-lease", daemon=True)
        self._thread.start()
        return self

    def _acquire_remote(self) -> None:
        data = self.record.to_json()
        if storage.create_exclusive(self.uri, data.encode()):
            return
        current = read(self.run_uri)
        if current is not None and held(current):
            raise refusal(self.run_uri, current)
        storage.write_text(self.uri, data)
        time.sleep(1.0)  # a rival that saw the same lapsed lease wrote by now: the last write wins
        current = read(self.run_uri)
        if current is None or current.token != self.record.token:
            raise refusal(self.run_uri, current) if current is not None else StorageError(
                f"{self.uri}: the lease vanished while it was taken; try again")

    def release(self) -> None:
        """Stop renewing and remove the lease if it is still ours (best effort: a store that is down keeps
        it, and it lapses)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._abandoned:
            return
        with contextlib.suppress(ReflectoptError), self._guard():
            current = read(self.run_uri)
            if current is not None and current.token == self.record.token:
                storage.delete(self.uri)

    def abandon(self) -> None:
        """Stop renewing without touching the store (it is down: the lease is given up when this process ends,
        or lapses for another host)."""
        self._stop.set()
        self._thread = None
        self._abandoned = True

    # --- renewing ------------------------------------------------------------------------------------------
    def renew(self) -> bool:
        """Write a fresh renewal; False (writing nothing) if another driver took the lease over."""
        with self._guard():  # a local takeover (`acquire`, under the same lock) never lands between check and write
            current = read(self.run_uri)
            if current is not None and current.token != self.record.token:
                return False
            now = time.time()
            self.record = self.record.model_copy(update={"heartbeat_unix": now, "heartbeat_utc": _utc(now)})
            storage.write_text(self.uri, self.record.to_json())
            return True

    def _guard(self):
        """The run folder's lock where it is local (an S3 lease relies on its expiry instead)."""
        local = not storage.is_remote(self.uri) and os.path.isdir(self.run_uri)
        return _folder_lock(self.run_uri) if local else contextlib.nullcontext()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_s):
            try:
                if not self.renew():
                    say(f"warning: {self.uri}: another driver took this run's lease over "
                        "(this one's renewals stalled longer than its lease); stop one of them")
                    return
            except ReflectoptError:
                continue  # the store is down: the next renewal tries again (the run reports the outage)


@contextlib.contextmanager
def _folder_lock(folder: str):
    """An exclusive lock on a local run folder while its lease is checked and written."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
