"""Local equivalence of a RayJob: the entrypoint `reflectopt submit` puts in the RayJob, submitted through Ray's Job
Submission API to a Ray head on 127.0.0.1 (what KubeRay's submitter pod does), runs to completion with S3 results.

The head gets the environment the chart gives a head pod (REFLECTOPT_*, AWS_* from the S3 test server), so the job
inherits it exactly as a job on KubeRay inherits the head container's environment.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optimizer.kube import objects as kube
from optimizer.kube import submit
from optimizer.store import storage

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

EXPERIMENT = """\
name: tiny-canyon
scene: builtin:simple_street_canyon
frequency_hz: 3.5e9
transmitters:
  - {name: tx, position: [0, 0, 10]}
reflector:
  size_m: [1, 1]
  bounds: {min: [-5, -5, 2], max: [5, 5, 8]}
targets:
  points: [[10, 10, 1.5], [20, 5, 1.5]]
solver: {samples_per_src: 10000, max_depth: 1}
search: {worlds: 2, steps: 2, prune: "off"}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(s3_env, tmp_path):
    """`ray start --head` on loopback with a head pod's environment; its own processes are killed afterwards."""
    values = kube.chart_values([REPO / "helm" / "reflectopt" / "ci" / "values.cpu-only.yaml"])
    env = dict(os.environ)
    # what the chart puts on the head container (cpu-only values: no GPU groups, device cpu)
    for item in kube.raycluster_spec(values, "local")["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]:
        if "value" in item and item["name"] not in ("AWS_REGION", "AWS_DEFAULT_REGION", "REFLECTOPT_CACHE_DIR"):
            env[item["name"]] = item["value"]
    env.update(s3_env.env)  # endpoint + keys: on a pod these come from the Secret
    env.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
                "REFLECTOPT_CACHE_DIR": str(tmp_path / "cache"), "RAY_USAGE_STATS_ENABLED": "0",
                "RAY_AUTH_MODE": "disabled"})
    env.pop("RAY_ADDRESS", None)
    # every port explicit: other Ray heads on this machine (parallel test runs) hold Ray's default agent ports
    port, dash, agent, agent_grpc, metrics, rt_env = (_free_port() for _ in range(6))
    temp = Path(os.environ.get("RAY_TMPDIR") or "/tmp") / f"rj{os.getpid()}"  # short: socket paths have a length limit
    cmd = [str(VENV_BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--num-cpus=2", "--num-gpus=0",
           f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
           f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={rt_env}",
           f"--temp-dir={temp}", "--disable-usage-stats"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        yield f"http://127.0.0.1:{dash}"
    finally:
        _stop_head(temp)


def _stop_head(temp: Path) -> None:
    """SIGKILL this head's processes only (found by its private temp dir). `ray stop --force` would also kill
    Ray clusters that other test runs on this machine started."""
    import shutil

    import psutil

    for _ in range(3):
        mine = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                if proc.pid != os.getpid() and str(temp) in " ".join(proc.info["cmdline"] or []):
                    mine.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        if not mine:
            break
        for proc in mine:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(mine, timeout=10)
    shutil.rmtree(temp, ignore_errors=True)


def _submit(ray_head: str, s3_bucket: str, tmp_path: Path, text: str, name: str):
    """What `reflectopt submit` uploads, and its RayJob's entrypoint submitted to the local head as KubeRay's
    submitter does: (client, job id, RayJob)."""
    from ray.job_submission import JobSubmissionClient

    exp = tmp_path / "exp.yaml"
    exp.write_text(text)
    args = argparse.Namespace(
        experiment=str(exp), cluster="local", namespace="rf", values=[], scene=None,
        s3_prefix=f"s3://{s3_bucket}/rf", name=name, ephemeral=False, ttl=None, active_deadline=600,
        retries=None, env=None)
    plan = submit.plan_submission(args)
    submit.upload(plan)  # exactly what `reflectopt submit` uploads before creating the RayJob
    job = plan["job"]
    assert kube.validate(job) == []
    entrypoint = job["spec"]["entrypoint"]

    # the head's job agent answers a few seconds after `ray start` returns: retry the submission until then
    deadline = time.monotonic() + 90
    while True:
        try:
            client = JobSubmissionClient(ray_head)
            job_id = client.submit_job(entrypoint=entrypoint, submission_id=job["metadata"]["name"])
            break
        except (RuntimeError, ConnectionError) as err:
            if time.monotonic() > deadline:
                raise AssertionError(f"Ray head never accepted the job: {err}") from None
            time.sleep(2)
    return client, job_id, job


def _wait_until_done(client, job_id, limit_s: float):
    from ray.job_submission import JobStatus

    deadline = time.monotonic() + limit_s
    status = client.get_job_status(job_id)
    while status not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        assert time.monotonic() < deadline, f"job still {status}:\n{client.get_job_logs(job_id)[-3000:]}"
        time.sleep(2)
        status = client.get_job_status(job_id)
    return status


def test_rayjob_entrypoint_runs_to_completion_via_job_submission_api(ray_head, s3_bucket, tmp_path, capsys):
    from ray.job_submission import JobStatus

    client, job_id, job = _submit(ray_head, s3_bucket, tmp_path, EXPERIMENT, "tiny-local")
    status = _wait_until_done(client, job_id, 420)
    logs = client.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    # results where the RayJob's annotation says they are
    results = job["metadata"]["annotations"][submit.ANN_RESULTS]
    base = storage.join(results, "tiny-canyon")
    runs = [u for u in storage.list(base, recursive=True) if u.endswith("summary.json")]
    assert len(runs) == 1, runs
    summary = json.loads(storage.read_text(runs[0] if runs[0].startswith("s3://") else storage.join(base, runs[0])))
    assert summary  # a finished run's summary
    # it ran on the head it was submitted to (RAY_ADDRESS, set by Ray for job entrypoints), not a private Ray,
    # with the world size the chart's environment gives (cpu-only values: 0 GPU per world)
    assert f"Ray dashboard: {ray_head}" in logs
    assert "1 CPU / 0 GPU each" in logs
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    assert secret not in logs


def _driver_process(experiment_uri: str):
    """The job's `reflectopt run` process (the entrypoint; Ray's job supervisor started it)."""
    import psutil

    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if experiment_uri in cmd and "run" in cmd and any(c.endswith("reflectopt") for c in cmd[:2]):
            return proc
    return None


def test_sigterm_to_the_job_driver_is_an_interrupt_status_tells_it_from_a_failure(ray_head, s3_bucket, tmp_path):
    """The driver of a RayJob gets SIGTERM (its pod deleted or evicted): run.json in S3 says interrupted, the
    lease is given up, and `reflectopt status` of the RayJob (as KubeRay reports Ray's job) says interrupted,
    exit 143, not failed."""
    from ray.job_submission import JobStatus

    from optimizer.errors import ConfigError
    from optimizer.store import lease

    long_run = EXPERIMENT.replace('search: {worlds: 2, steps: 2, prune: "off"}',
                                  'search: {worlds: 2, steps: 40, prune: "off", concurrency: 1, checkpoint_every: 1}')
    assert long_run != EXPERIMENT
    client, job_id, job = _submit(ray_head, s3_bucket, tmp_path, long_run, "tiny-term")
    base = storage.join(job["metadata"]["annotations"][submit.ANN_RESULTS], "tiny-canyon")
    deadline = time.monotonic() + 300
    while True:  # world 0 checkpointed: the run is under way
        files = storage.list(base, recursive=True)
        if any("/world-000/checkpoint_" in f for f in files):
            break
        assert time.monotonic() < deadline and client.get_job_status(job_id) in (JobStatus.PENDING,
                                                                                  JobStatus.RUNNING), \
            client.get_job_logs(job_id)[-3000:]
        time.sleep(1)
    run_uri = storage.join(base, files[0].split("/")[0])
    with pytest.raises(ConfigError, match="still being run by pid"):
        lease.check_free(run_uri)  # `resume` of it now is refused
    driver = _driver_process(job["metadata"]["annotations"][submit.ANN_EXPERIMENT])
    assert driver is not None
    driver.terminate()  # SIGTERM to the driver alone, as the kubelet sends a pod's main process
    status = _wait_until_done(client, job_id, 300)
    logs = client.get_job_logs(job_id)
    assert status == JobStatus.FAILED, logs[-3000:]
    assert "interrupted by SIGTERM" in logs and f"reflectopt resume {run_uri}" in logs
    assert "Tuner.restore" not in logs
    assert json.loads(storage.read_text(storage.join(run_uri, "run.json")))["status"] == "interrupted"
    lease.check_free(run_uri)  # given up: `resume` may take it
    # what KubeRay makes of it: Ray's job message in the RayJob's status
    message = client.get_job_info(job_id).message
    state = submit.job_state({"metadata": {"name": "tiny-term"}, "status": {
        "jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "reason": "AppFailed", "message": message}})
    assert state["interrupted"] and state["exit_code"] == 143 and submit.state_exit_code(state) == 143
    assert "interrupted, not failed" in submit.format_state(state)
