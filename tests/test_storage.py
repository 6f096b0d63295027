"""optimizer.storage against the local file system and a real S3 server (moto_server on 127.0.0.1)."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

import pytest
from conftest import FlakyProxy, S3Server, free_port

from optimizer.store import storage, tunefs
from optimizer.errors import StorageError, StoreUnreachable


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setenv("REFLECTOPT_S3_RETRY_S", "3")  # seconds of patience (default: S3_RETRY_S)
    monkeypatch.setenv("REFLECTOPT_S3_BACKOFF_S", "0.2")
    monkeypatch.delenv("REFLECTOPT_S3_ATTEMPTS", raising=False)


def make_run(d: Path, n_files: int = 6, size: int = 1000) -> Path:
    (d / "heatmaps").mkdir(parents=True)
    (d / "winner_scene").mkdir()
    (d / "experiment.yaml").write_text("name: t\n")
    (d / "targets.csv").write_text("x,y,z\n")
    (d / "winner_scene" / "scene.xml").write_text("<scene/>")
    for i in range(n_files):
        (d / "heatmaps" / f"h{i:03d}.png").write_bytes(bytes([i % 256]) * size)
    (d / "summary.json").write_text('{"winner": {"min_rss_dbm": -71.5}}')
    return d


# --- pure helpers ----------------------------------------------------------------------------------
def test_join_and_run_ids():
    assert storage.is_remote("s3://b/k") and not storage.is_remote("/tmp/x")
    assert storage.join("s3://b/out/", "name", "/run/") == "s3://b/out/name/run"
    assert storage.join("s3://b", "a") == "s3://b/a"
    assert storage.join("results/", "a", "b") == "results/a/b"
    assert storage.run_uri("s3://b/results", "exp", "r1") == "s3://b/results/exp/r1"
    a = storage.new_run_id()
    time.sleep(1.01)
    b = storage.new_run_id()
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{4}", a)
    assert a < b


def test_local_roundtrip_atomic(tmp_path):
    f = tmp_path / "deep" / "er" / "x.txt"
    storage.write_text(f, "hello")
    assert storage.read_text(f) == "hello" and storage.exists(f)
    assert [p.name for p in f.parent.iterdir()] == ["x.txt"]  # no temp file left behind
    storage.write_bytes(tmp_path / "deep" / "y.bin", b"\x00\x01")
    assert storage.list(tmp_path / "deep") == ["er", "y.bin"]
    assert storage.list(tmp_path / "deep", recursive=True) == ["er/x.txt", "y.bin"]
    assert storage.list(tmp_path / "missing") == []
    with pytest.raises(StorageError, match="missing.txt: read failed"):
        storage.read_bytes(tmp_path / "missing.txt")
    assert tunefs.tune_storage(str(tmp_path / "t")) == (str(tmp_path / "t"), None)


def test_publish_run_local(tmp_path):
    src = make_run(tmp_path / "run")
    dest = tmp_path / "out" / "exp" / "r1"
    assert storage.publish_run(src, str(dest)) == 10
    assert storage.list(dest, recursive=True) == storage.list(src, recursive=True)
    assert storage.publish_run(src, str(src)) == 10  # same folder: no-op
    (src / "summary.json").unlink()
    with pytest.raises(StorageError, match="summary.json missing"):
        storage.publish_run(src, str(src))


# --- S3 --------------------------------------------------------------------------------------------
def test_s3_roundtrip(s3_bucket):
    base = f"s3://{s3_bucket}/p"
    storage.write_text(f"{base}/a/x.txt", "hi")
    storage.write_bytes(f"{base}/b.bin", b"\x00" * 10)
    assert storage.read_text(f"{base}/a/x.txt") == "hi"
    assert storage.exists(f"{base}/a/x.txt") and storage.exists(f"{base}/a") and storage.exists(base)
    assert not storage.exists(f"{base}/nope") and storage.exists(f"s3://{s3_bucket}")
    assert not storage.exists("s3://no-such-bucket-xyz")
    assert storage.list(base) == ["a", "b.bin"]
    assert storage.list(base, recursive=True) == ["a/x.txt", "b.bin"]
    assert storage.list(f"{base}/nope") == []
    with pytest.raises(StorageError, match=rf"s3://{s3_bucket}/p/nope: read failed: no such object"):
        storage.read_text(f"{base}/nope")
    with pytest.raises(StorageError, match="no such bucket"):
        storage.read_text("s3://no-such-bucket-xyz/k")


def test_s3_list_paginates(s3_bucket):
    c = storage.client()
    for i in range(1005):
        c.put_object(Bucket=s3_bucket, Key=f"many/f{i:04d}", Body=b"")
    assert len(storage.list(f"s3://{s3_bucket}/many", recursive=True)) == 1005
    assert len(storage.list(f"s3://{s3_bucket}/many")) == 1005


def test_s3_dirs_and_publish(s3_bucket, tmp_path):
    src = make_run(tmp_path / "run")
    uri = storage.run_uri(f"s3://{s3_bucket}/results", "exp", "r1")
    assert storage.publish_run(src, uri) == 10
    assert storage.list(uri, recursive=True) == storage.list(src, recursive=True)
    n = storage.download_dir(uri, tmp_path / "back")
    assert n == 10 and (tmp_path / "back" / "heatmaps" / "h005.png").read_bytes() == bytes([5]) * 1000
    with pytest.raises(StorageError, match="nothing there"):
        storage.download_dir(f"s3://{s3_bucket}/results/none", tmp_path / "none")


def test_publish_failure_never_writes_summary(s3_bucket, tmp_path, monkeypatch):
    src = make_run(tmp_path / "run")
    uri = f"s3://{s3_bucket}/results/exp/r1"
    storage.write_text(f"{uri}/summary.json", "{}")  # stale marker from an earlier attempt
    real, calls = storage.upload_file, []

    def flaky(local, dest):
        calls.append(str(dest))
        if len(calls) == 4:
            raise StorageError(f"{dest}: upload failed: injected")
        return real(local, dest)

    monkeypatch.setattr(storage, "upload_file", flaky)
    with pytest.raises(StorageError, match="injected"):
        storage.publish_run(src, uri)
    left = storage.list(uri, recursive=True)
    assert "summary.json" not in left and len(left) == 3  # nothing deleted, nothing marked complete
    monkeypatch.setattr(storage, "upload_file", real)
    storage.publish_run(src, uri)
    assert storage.read_text(f"{uri}/summary.json").startswith('{"winner"')


def test_summary_is_written_last(s3_bucket, tmp_path, monkeypatch):
    src = make_run(tmp_path / "run")
    order = []
    real = storage.upload_file
    monkeypatch.setattr(storage, "upload_file", lambda a, b: (order.append(str(b)), real(a, b))[1])
    storage.publish_run(src, f"s3://{s3_bucket}/r")
    assert order[-1].endswith("/summary.json") and len(order) == 10


def test_tune_storage_s3(s3_bucket):
    path, fs = tunefs.tune_storage(f"s3://{s3_bucket}/results/exp/r1/checkpoints/")
    assert path == f"{s3_bucket}/results/exp/r1/checkpoints"
    with fs.open_output_stream(f"{path}/ckpt/state.json") as f:
        f.write(b'{"step": 3}')
    assert storage.read_text(f"s3://{s3_bucket}/results/exp/r1/checkpoints/ckpt/state.json") == '{"step": 3}'


def _store_down(monkeypatch, secret):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def test_store_down_fails_cleanly_and_secret_free(monkeypatch, caplog, fast_retries):
    """A store that stays down: retried for the whole budget (REFLECTOPT_S3_RETRY_S), then one line; one
    warning when the outage starts, the retries themselves at debug level."""
    secret = "SuperSecretKey0123456789"
    _store_down(monkeypatch, secret)
    caplog.set_level(logging.DEBUG, logger="optimizer.store.storage")
    t0 = time.monotonic()
    with pytest.raises(StoreUnreachable) as err:
        storage.write_text("s3://bkt/x.txt", "x")
    took = time.monotonic() - t0
    msg = str(err.value)
    assert "s3://bkt/x.txt: write failed at http://127.0.0.1:" in msg and "still failing after" in msg
    assert "\n" not in msg and secret not in msg and secret not in caplog.text
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "retrying for up to 3 s" in warnings[0].getMessage()
    assert caplog.text.count("retry ") >= 4  # several tries (debug), not one
    assert 3.0 <= took < 5.0  # the budget, no more


def test_outage_notes_go_to_the_reporter_and_merge_into_one_console_line_each_way(monkeypatch, fast_retries):
    """A process's outage notes go to its reporter (the driver's console, or a world's forwarder to it), not to
    the logger; the console prints the first "down" of an outage and the first "up" after it, timed from the
    earliest "down", and drops the other processes' notes of that same outage (tests/test_s3_run.py runs it
    end to end)."""
    from optimizer.search.outage import Console

    _store_down(monkeypatch, "x")
    notes = []
    storage.report_outages_to(lambda kind, line, since: notes.append((kind, line, since)))
    try:
        with pytest.raises(StoreUnreachable):
            storage.write_text("s3://bkt/x.txt", "x")
    finally:
        storage.report_outages_to(None)
        storage._outage["since"] = None
    assert len(notes) == 1 and notes[0][0] == "down" and "unreachable" in notes[0][1], notes
    assert abs(notes[0][2] - time.time()) < 10  # when it began, as Unix time (comparable across processes)

    lines = []
    con = Console(lines.append)
    con.note("down", "object store at E unreachable (write a: refused); retrying for up to 180 s", 100.0, 100.0)
    con.note("down", "object store at E unreachable (save b: refused); retrying for up to 180 s", 101.0, 101.0)
    con.note("up", "object store answers again (after 18 s)", 101.0, 119.0)  # world A: the first back
    con.note("down", "object store at E unreachable (save c: refused); retrying for up to 180 s", 102.0, 120.0)
    con.note("up", "object store answers again (after 19 s)", 102.0, 121.0)  # world B, late
    con.note("up", "object store answers again (after 21 s)", 100.0, 121.0)  # the driver
    assert lines == ["warning: object store at E unreachable (write a: refused); retrying for up to 180 s",
                     "object store answers again (after 19 s)"]
    con.note("down", "object store at E unreachable (read d: refused); retrying for up to 180 s", 200.0, 200.0)
    assert len(lines) == 3 and "read d" in lines[2]  # a later outage is told again


def test_a_request_in_flight_when_the_store_went_down_does_not_close_the_outage():
    """A call sent before the store stopped answering and answered after its first failure (one of several
    uploads in flight) proves nothing: seen in CI as "answers again (after 0 s)" between two warnings of one
    outage. Only a call sent after the outage began closes it."""
    notes = []
    storage.report_outages_to(lambda kind, line, since: notes.append(kind))
    try:
        sent_before = time.monotonic()
        storage._note_outage(True, "write", "s3://bkt/a", "refused", 180.0)
        storage._note_outage(False, "write", "s3://bkt/b", "", 180.0, tried_at=sent_before)
        assert notes == ["down"] and storage._outage["since"] is not None
        storage._note_outage(False, "write", "s3://bkt/c", "", 180.0, tried_at=time.monotonic())
        assert notes == ["down", "up"] and storage._outage["since"] is None
    finally:
        storage.report_outages_to(None)
        storage._outage["since"] = None


def test_attempts_cap_and_refusals_fail_fast(monkeypatch, fast_retries, s3_bucket):
    monkeypatch.setenv("REFLECTOPT_S3_ATTEMPTS", "3")
    monkeypatch.setenv("REFLECTOPT_S3_RETRY_S", "60")
    monkeypatch.setenv("REFLECTOPT_S3_BACKOFF_S", "0.01")
    t0 = time.monotonic()
    with pytest.raises(StorageError, match="no such object") as err:  # not transient: no retry at all
        storage.read_text(f"s3://{s3_bucket}/nope")
    assert not isinstance(err.value, StoreUnreachable) and time.monotonic() - t0 < 2
    _store_down(monkeypatch, "x")
    with pytest.raises(StoreUnreachable, match=r"still failing after 3 tries"):
        storage.write_text("s3://bkt/x.txt", "x")
    assert time.monotonic() - t0 < 10


# --- the store goes away mid-upload ----------------------------------------------------------------
def _publish_with_outage(src, uri, when_objects: int, outage, direct, bucket):
    """Publish in a thread; once `when_objects` objects exist (seen through `direct`), call outage()."""
    result = {}

    def work():
        try:
            result["n"] = storage.publish_run(src, uri)
        except StorageError as err:
            result["err"] = err

    t = threading.Thread(target=work)
    t.start()
    while t.is_alive():
        if direct.list_objects_v2(Bucket=bucket).get("KeyCount", 0) >= when_objects:
            outage()
            break
        time.sleep(0.005)
    t.join(60)
    assert not t.is_alive()
    return result


@pytest.mark.parametrize("comes_back", [True, False])
def test_store_down_mid_upload(s3_bucket, s3_env, tmp_path, monkeypatch, fast_retries, comes_back, caplog):
    caplog.set_level(logging.WARNING, logger="optimizer.store.storage")
    src = make_run(tmp_path / "run", n_files=40, size=50_000)
    proxy = FlakyProxy(s3_env.port)
    direct = s3_env.boto3_client()  # on the real endpoint: to watch and to check the outcome
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
    uri = f"s3://{s3_bucket}/results/exp/r1"

    def outage():
        proxy.down()
        if comes_back:
            threading.Timer(0.4, proxy.up).start()

    try:
        result = _publish_with_outage(src, uri, 5, outage, direct, s3_bucket)
    finally:
        if proxy.srv is not None:
            proxy.down()
    keys = [o["Key"] for o in direct.list_objects_v2(Bucket=s3_bucket).get("Contents", [])]
    assert "retrying for up to 3 s" in caplog.text  # the outage really hit an upload
    if comes_back:
        assert result.get("n") == 44, result
        assert len(keys) == 44 and f"{uri[len('s3://' + s3_bucket) + 1:]}/summary.json" in keys
    else:
        assert "err" in result and "still failing after" in str(result["err"])
        assert 5 <= len(keys) < 44 and not any(k.endswith("summary.json") for k in keys)


def test_server_killed_mid_upload_then_restarted(tmp_path, monkeypatch, fast_retries):
    """A real moto_server killed mid-publish and restarted on the same port (moto keeps data in memory, so
    the bucket is gone after the restart): the publish must fail cleanly, never write summary.json."""
    srv = S3Server().start()
    try:
        for k, v in srv.env.items():
            monkeypatch.setenv(k, v)
        srv.boto3_client().create_bucket(Bucket="killme")
        src = make_run(tmp_path / "run", n_files=40, size=50_000)

        timer = threading.Timer(0.3, srv.start)

        def outage():
            srv.stop()
            timer.start()

        result = _publish_with_outage(src, "s3://killme/results/exp/r1", 5, outage, srv.boto3_client(), "killme")
        timer.join()
        srv.start()
        assert "err" in result, result
        msg = str(result["err"])
        assert msg.startswith("s3://killme/results/exp/r1/") and "\n" not in msg
        assert not storage.exists("s3://killme/results/exp/r1/summary.json")
    finally:
        srv.stop()


@pytest.mark.parametrize("where", ["local", "s3"])
def test_run_folders_are_claimed_exclusively(where, tmp_path, monkeypatch, request):
    """Two runs that draw the same run id never share a folder: the second draws again (local: mkdir without
    exist_ok; S3: a conditional put of run.json)."""
    from optimizer.records import Overrides, RunMeta
    from optimizer.store.runstore import RunStore

    output = str(tmp_path / "out") if where == "local" else f"s3://{request.getfixturevalue('s3_bucket')}/out"
    ids = iter(["20260101T000000Z-aaaa", "20260101T000000Z-aaaa", "20260101T000000Z-bbbb"])
    monkeypatch.setattr(storage, "new_run_id", lambda: next(ids))

    def meta_for(store):
        return RunMeta(name="exp", run_id=store.run_id, run_uri=store.uri, status="running",
                       created_utc="2026-01-01T00:00:00Z", experiment_sha256="0" * 64,
                       overrides=Overrides(output=output, device="cpu", worlds=1, scene="x"))

    first, _ = RunStore.create(output, "exp", meta_for)
    second, meta = RunStore.create(output, "exp", meta_for)
    assert first.run_id.endswith("aaaa") and second.run_id.endswith("bbbb") and meta.run_id == second.run_id
    assert storage.list(storage.join(output, "exp")) == ["20260101T000000Z-aaaa", "20260101T000000Z-bbbb"]
    for s in (first, second):
        s.discard_staging()
