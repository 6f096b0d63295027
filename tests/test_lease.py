"""A run folder's owner (optimizer.store.lease) and what `resume` refuses before it touches a run: a run whose
driver is alive, an experiment.yaml edited since the run started. Local folders and s3:// (the test S3 server)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time

import pytest

from optimizer.cli.main import main as cli_main
from optimizer.constants import EXIT_USAGE, LEASE_FILE
from optimizer.errors import ConfigError
from optimizer.experiment.loading import changed_keys, check_run_experiment_unchanged, load_run_experiment
from optimizer.records import Overrides, RunLease, RunMeta
from optimizer.store import lease, storage
from optimizer.store.runstore import RunStore
from worlds_helpers import street, write_yaml


@pytest.fixture
def sleeper():
    """A live process that is not this one (a driver holding a lease)."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield p
    finally:
        p.kill()
        p.wait()


def _write_lease(run_uri: str, **changes) -> RunLease:
    now = time.time()
    rec = RunLease(pid=1, host=socket.gethostname(), command="run", token="someone-else",
                   started_utc="2026-01-01T00:00:00Z", heartbeat_utc="2026-01-01T00:00:00Z", heartbeat_unix=now,
                   ttl_s=lease.LEASE_TTL_S)
    rec = rec.model_copy(update=changes)
    # another driver's acquire: under the run folder's lock where the folder is local, as the product's is
    with contextlib.nullcontext() if storage.is_remote(run_uri) else lease._folder_lock(run_uri):
        storage.write_text(storage.join(run_uri, LEASE_FILE), rec.to_json())
    return rec


def _holder(run_uri: str) -> str:
    return lease.read(run_uri).token


def test_a_live_driver_on_this_host_holds_the_run_and_resume_names_it(tmp_path, sleeper):
    run = tmp_path / "run"
    run.mkdir()
    _write_lease(str(run), pid=sleeper.pid, process_start=lease._process_start(sleeper.pid),
                 heartbeat_unix=time.time() - 10 * lease.LEASE_TTL_S)  # its renewals stalled: the PID decides
    with pytest.raises(ConfigError) as err:
        lease.Lease(str(run), "resume").acquire()
    line = str(err.value)
    assert "\n" not in line and err.value.exit_code == EXIT_USAGE
    assert f"pid {sleeper.pid} on host {socket.gethostname()}" in line and f"kill {sleeper.pid}" in line
    assert _holder(str(run)) == "someone-else"  # untouched


@pytest.mark.parametrize("how", ["dead pid", "reused pid"])
def test_a_dead_drivers_lease_is_taken_over(tmp_path, sleeper, how):
    run = tmp_path / "run"
    run.mkdir()
    if how == "dead pid":
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        _write_lease(str(run), pid=gone.pid, process_start=time.time())
    else:  # the PID lives, but it is another process than the one that took the lease
        _write_lease(str(run), pid=sleeper.pid, process_start=lease._process_start(sleeper.pid) - 3600)
    mine = lease.Lease(str(run), "resume").acquire()
    try:
        assert _holder(str(run)) == mine.record.token
    finally:
        mine.release()
    assert not (run / LEASE_FILE).exists()  # given up when the run ends


def test_another_hosts_lease_holds_until_it_lapses(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _write_lease(str(run), host="pod-elsewhere-7", pid=4242, heartbeat_unix=time.time() - 5)
    with pytest.raises(ConfigError) as err:
        lease.check_free(str(run))
    assert "pid 4242 on host pod-elsewhere-7" in str(err.value) and "lapses at" in str(err.value)
    _write_lease(str(run), host="pod-elsewhere-7", pid=4242, heartbeat_unix=time.time() - lease.LEASE_TTL_S - 1)
    lease.check_free(str(run))  # lapsed: free
    mine = lease.Lease(str(run), "resume").acquire()
    mine.release()


def test_the_holder_renews_and_gives_up_only_its_own_lease(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    mine = lease.Lease(str(run), "run", renew_s=0.05).acquire()
    first = lease.read(str(run)).heartbeat_unix
    deadline = time.time() + 10
    while lease.read(str(run)).heartbeat_unix == first:
        assert time.time() < deadline, "never renewed"
        time.sleep(0.05)
    _write_lease(str(run), host="pod-elsewhere-7")  # taken over (this driver's renewals had stalled)
    mine.release()
    assert _holder(str(run)) == "someone-else"  # not removed: not ours


def test_s3_run_lease(s3_env, s3_bucket, sleeper):
    run = f"s3://{s3_bucket}/out/exp/20260101T000000Z-aaaa"
    mine = lease.Lease(run, "run").acquire()  # none there: a conditional put
    try:
        assert _holder(run) == mine.record.token
        with pytest.raises(ConfigError, match=f"pid {mine.record.pid} on host"):
            lease.Lease(run, "resume").acquire()  # this process is alive
    finally:
        mine.release()
    assert not storage.exists(storage.join(run, LEASE_FILE))
    _write_lease(run, host="pod-elsewhere-7", heartbeat_unix=time.time() - lease.LEASE_TTL_S - 1)
    taker = lease.Lease(run, "resume").acquire()  # lapsed: overwritten and read back
    assert _holder(run) == taker.record.token
    taker.release()


# --- an edited experiment.yaml ------------------------------------------------------------------------------


def _started_run(tmp_path, with_worlds: bool = True, output: str | None = None) -> RunStore:
    """A run folder (under `output`: a folder or s3://) as `reflectopt run` leaves it when interrupted:
    experiment.yaml, run.json, and (once the worlds started) each world's Tune config."""
    exp = street(**{"search.steps": 6})
    src = write_yaml(tmp_path / "e.yaml", exp)
    output = output or str(tmp_path / "out")
    store = RunStore(storage.run_uri(output, exp.name, "20260101T000000Z-aaaa"))
    store.write_experiment(src.read_text())
    store.write_meta(RunMeta(name=exp.name, run_id=store.run_id, run_uri=store.uri, status="interrupted",
                             created_utc="2026-01-01T00:00:00Z", experiment_sha256=exp.sha256(),
                             overrides=Overrides(output=output, device=exp.device, worlds=exp.search.worlds,
                                                 scene=exp.scene)))
    if with_worlds:
        ran = load_run_experiment(store)
        storage.write_text(storage.join(store.uri, "checkpoints/worlds/world-000/params.json"),
                           json.dumps({"__world__": {"world": 0, "experiment": ran.model_dump(mode="json")}}))
    store.discard_staging()
    return store


def _files(store: RunStore) -> dict:
    return {f: storage.read_bytes(storage.join(store.uri, f)) for f in storage.list(store.uri, recursive=True)}


def _edit(store: RunStore, old: str, new: str) -> None:
    text = store.read_experiment_text()
    assert old in text
    store.write_experiment(text.replace(old, new, 1))


def test_resume_refuses_an_edited_experiment_naming_the_keys(tmp_path, capsys):
    store = _started_run(tmp_path)
    _edit(store, "steps: 6", "steps: 8")
    _edit(store, "power_dbm: 30", "power_dbm: 33")
    before = _files(store)
    assert cli_main(["resume", store.uri]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "search.steps" in err[0] and "transmitters[0].power_dbm" in err[0] and "experiment.yaml" in err[0]
    assert _files(store) == before  # nothing written


def test_resume_of_an_s3_run_refuses_an_edited_experiment(tmp_path, capsys, s3_env, s3_bucket):
    store = _started_run(tmp_path, output=f"s3://{s3_bucket}/out")
    _edit(store, "steps: 6", "steps: 8")
    store.discard_staging()
    before = _files(store)
    assert cli_main(["resume", store.uri]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "search.steps changed since the run started" in err[0], err
    assert _files(store) == before


def test_an_edit_before_any_world_started_is_refused_too(tmp_path):
    store = _started_run(tmp_path, with_worlds=False)
    _edit(store, "steps: 6", "steps: 8")
    with pytest.raises(ConfigError, match="its content changed since the run started"):
        check_run_experiment_unchanged(store, store.read_meta(), load_run_experiment(store))


def test_resources_and_comments_may_change(tmp_path):
    store = _started_run(tmp_path)
    _edit(store, "name: street-test", "# moved to a bigger node pool\nname: street-test")
    _edit(store, "cpu_per_world: 1.0", "cpu_per_world: 2.0")
    check_run_experiment_unchanged(store, store.read_meta(), load_run_experiment(store))  # no error


def test_changed_keys_are_dotted_paths():
    before = {"search": {"steps": 6, "seed": 0}, "targets": {"points": [[1, 2], [3, 4]]}, "a": [1]}
    after = {"search": {"steps": 8, "seed": 0}, "targets": {"points": [[1, 2], [3, 5]]}, "a": [1, 2], "b": 1}
    assert changed_keys(before, after) == ["search.steps", "targets.points[1][1]", "a", "b"]
