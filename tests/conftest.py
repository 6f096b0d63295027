"""Shared fixtures: a real S3 server (moto_server) on 127.0.0.1 for storage tests.

- `s3_server` (session): a `moto_server` subprocess on a free loopback port; `.endpoint_url`, `.env`,
  `.stop()` / `.start()` (same port; moto keeps data in memory only, so a restart empties the store).
  Set REFLECTOPT_TEST_S3_EXTERNAL=1 to use an already-running store from AWS_ENDPOINT_URL instead.
- `s3_env` (function): those variables set in os.environ (monkeypatch); yields the server.
- `s3_bucket` (function): a fresh, uniquely named bucket; returns its name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """A moto_server subprocess, started and stopped by PID."""

    def __init__(self, port: int | None = None, log_path: str | None = None):
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen | None = None
        self.log_path = log_path
        self.external = False
        self._lock = threading.RLock()  # start()/stop() may race (a Timer restarting it mid-test)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint_url, **TEST_CREDENTIALS}

    def start(self, timeout: float = 20.0) -> S3Server:
        with self._lock:
            return self._start(timeout)

    def _start(self, timeout: float) -> S3Server:
        if self.external or (self.proc and self.proc.poll() is None):
            return self
        exe = Path(sys.executable).with_name("moto_server")
        cmd = [str(exe) if exe.exists() else "moto_server", "-H", self.host, "-p", str(self.port)]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # the child holds its own copy
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.proc.returncode} (port {self.port})")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self._stop()
        raise RuntimeError(f"moto_server did not answer on {self.endpoint_url} within {timeout}s")

    def stop(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass
        # the port is free again once the listener is gone
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.1):
                    time.sleep(0.05)
            except OSError:
                return

    def boto3_client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")


class FlakyProxy:
    """TCP forwarder 127.0.0.1:port -> upstream; `down()` drops every connection and stops listening,
    `up()` listens again on the same port (the store behind it keeps its data)."""

    def __init__(self, upstream_port: int):
        self.upstream = upstream_port
        self.port = free_port()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.srv = None
        self.up()

    def up(self):
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        self.srv = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def down(self):
        srv, self.srv = self.srv, None
        srv.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self.conns.clear()

    def _accept(self, srv):
        while True:
            try:
                a, _ = srv.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:  # the store behind is restarting: this client sees a dropped connection
                a.close()
                continue
            with self.lock:
                self.conns += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pipe, args=(x, y), daemon=True).start()

    @staticmethod
    def _pipe(x, y):
        try:
            while data := x.recv(65536):
                y.sendall(data)
        except OSError:
            pass
        finally:
            for s in (x, y):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class OutageStore:
    """A private moto_server behind a `FlakyProxy`, for outages in the middle of a run. `outage(down_s)` makes
    the store unreachable (the proxy drops every connection and stops listening), copies every object out,
    stops and restarts moto_server on its port (moto keeps data in memory only), uploads the copies again and
    answers again after `down_s` seconds: a real restart that keeps every object."""

    def __init__(self, log_path: str | None = None):
        self.server = S3Server(log_path=log_path).start()
        self.proxy = FlakyProxy(self.server.port)
        self.restarts = 0

    @property
    def env(self) -> dict[str, str]:
        return {**self.server.env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.proxy.port}"}

    def client(self):
        return self.server.boto3_client()  # straight to moto, past the proxy

    def _snapshot(self) -> dict:
        c = self.client()
        out = {}
        for b in c.list_buckets().get("Buckets", []):
            objs = {}
            for page in c.get_paginator("list_objects_v2").paginate(Bucket=b["Name"]):
                for o in page.get("Contents", []):
                    objs[o["Key"]] = c.get_object(Bucket=b["Name"], Key=o["Key"])["Body"].read()
            out[b["Name"]] = objs
        return out

    def _restore(self, snap: dict) -> None:
        c = self.client()
        for bucket, objs in snap.items():
            c.create_bucket(Bucket=bucket)
            for key, body in objs.items():
                c.put_object(Bucket=bucket, Key=key, Body=body)

    def down(self) -> float:
        """Unreachable from now on; moto restarted behind it with every object kept. Returns the time it
        went down (time.monotonic())."""
        t0 = time.monotonic()
        self.proxy.down()
        snap = self._snapshot()
        self.server.stop()
        self.server.start()
        self._restore(snap)
        self.restarts += 1
        return t0

    def up(self) -> None:
        self.proxy.up()

    def outage(self, down_s: float) -> None:
        t0 = self.down()
        time.sleep(max(0.0, down_s - (time.monotonic() - t0)))
        self.up()

    def close(self) -> None:
        if self.proxy.srv is not None:
            self.proxy.down()
        self.server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    if os.environ.get("REFLECTOPT_TEST_S3_EXTERNAL") == "1" and os.environ.get("AWS_ENDPOINT_URL"):
        from urllib.parse import urlparse

        u = urlparse(os.environ["AWS_ENDPOINT_URL"])
        srv = S3Server(port=u.port or 80)
        srv.host = u.hostname or "127.0.0.1"
        srv.external = True
        yield srv
        return
    srv = S3Server(log_path=str(tmp_path_factory.mktemp("moto") / "moto_server.log")).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    for k, v in s3_server.env.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(k, raising=False)
    s3_server.start()  # no-op when running; brings it back if a test left it stopped
    yield s3_server


@pytest.fixture
def s3_bucket(s3_env) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_env.boto3_client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def local_ray():
    """A private local Ray (127.0.0.1) for one test."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    from optimizer.search.cluster import init_ray

    init_ray(None)
    yield
    ray.shutdown()
