"""`reflectopt submit|status|logs|cancel` against recorded Kubernetes API responses (no API server can run here).

The fake sits at the Kubernetes client's REST layer, so the request bodies checked are exactly what the client would
send; they are validated with the CRD schema + KubeRay's rules. Uploads go to a real S3 server (moto, conftest.py).
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
import yaml
from kube_helpers import CHART

from optimizer import cli
from optimizer.kube import objects as kube
from optimizer.kube import submit
from optimizer.experiment import load_experiment

EXPERIMENT = """\
name: tiny-canyon
scene: {scene}
frequency_hz: 3.5e9
transmitters:
  - {{name: tx, position: [0, 0, 10]}}
reflector:
  size_m: [1, 1]
  bounds: {{min: [-5, -5, 2], max: [5, 5, 8]}}
targets:
  points: [[10, 10, 1.5], [20, 5, 1.5]]
solver: {{samples_per_src: 10000, max_depth: 1}}
search: {{worlds: 2, steps: 2}}
"""

# Status blocks as KubeRay v1.7.0 reports them (recorded from `kubectl get rayjob -o json`, trimmed).
RECORDED = {
    "initializing": {"jobDeploymentStatus": "Initializing", "rayClusterName": "reflectopt",
                     "startTime": "2026-11-26T10:00:00Z"},
    "running": {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING", "rayClusterName": "reflectopt",
                "jobId": "tiny-canyon-abc123-x7k2p", "dashboardURL": "reflectopt-head-svc.rf.svc.cluster.local:8265",
                "startTime": "2026-11-26T10:00:00Z", "rayJobInfo": {"startTime": "2026-11-26T10:00:07Z"}},
    "complete": {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED", "rayClusterName": "reflectopt",
                 "jobId": "tiny-canyon-abc123-x7k2p", "startTime": "2026-11-26T10:00:00Z",
                 "endTime": "2026-11-26T10:04:10Z", "succeeded": 1, "failed": 0,
                 "message": "Job finished successfully."},
    "failed": {"jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "reason": "AppFailed",
               "message": "Job failed with exit code 2", "rayClusterName": "reflectopt", "failed": 1},
    # the driver ended by SIGTERM (a deleted or evicted pod) or Ctrl-C: Ray's message names its exit status
    "sigterm": {"jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "reason": "AppFailed", "failed": 1,
                "message": "Job entrypoint command failed with exit code 143, last available logs (truncated to "
                           "20,000 chars):\n[reflectopt] interrupted by SIGTERM: 2 worlds unfinished; ...",
                "rayClusterName": "reflectopt"},
    "ctrl-c": {"jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "reason": "AppFailed", "failed": 1,
               "message": "Job entrypoint command failed with exit code 130. No logs available."},
    "stopped": {"jobDeploymentStatus": "Complete", "jobStatus": "STOPPED", "rayClusterName": "reflectopt"},
    "deadline": {"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded",
                 "message": "The RayJob has passed the activeDeadlineSeconds. DeadlineSeconds: 60"},
    "validation": {"jobDeploymentStatus": "ValidationFailed", "reason": "ValidationFailed",
                   "message": "The RayJob spec is invalid: one of RayClusterSpec or ClusterSelector must be set"},
}

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: test-token}}]
contexts: [{name: ctx, context: {cluster: c, user: u, namespace: rf}}]
current-context: ctx
"""


def rayjob(name: str, status: dict | None, annotations: dict | None = None) -> dict:
    return {"apiVersion": "ray.io/v1", "kind": "RayJob",
            "metadata": {"name": name, "namespace": "rf", "uid": "0f6c-uid",
                         "annotations": annotations or {submit.ANN_RESULTS: "s3://b/rf/results/" + name + "/"}},
            "spec": {"entrypoint": "reflectopt run ..."}, **({"status": status} if status else {})}


def status_error(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason,
            "code": code}


class FakeApi:
    """Replaces the client's RESTClientObject.request: records requests, answers from a script."""

    def __init__(self):
        self.requests: list[dict] = []
        self.script: list[tuple[str, str, int, object]] = []  # (method, url regex, status, body)

    def add(self, method, url_re, status, body):
        self.script.append((method, url_re, status, body))

    def __call__(self, rest_self, method, url, headers=None, body=None, post_params=None, _request_timeout=None):
        from kubernetes.client.rest import RESTResponse

        self.requests.append({"method": method, "url": url, "body": body, "headers": dict(headers or {})})
        for i, (m, pattern, status, payload) in enumerate(self.script):
            if m == method and re.search(pattern, url):
                # the last matching answer repeats (a job that stays in one state)
                if sum(1 for s in self.script if s[0] == method and re.search(s[1], url)) > 1:
                    self.script.pop(i)
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                ctype = "text/plain" if isinstance(payload, str) else "application/json"
                raw = SimpleNamespace(status=status, reason={200: "OK", 201: "Created"}.get(status, "Error"),
                                      data=data, headers={"content-type": ctype})
                return RESTResponse(raw)
        raise AssertionError(f"unexpected request {method} {url}")


@pytest.fixture
def api(monkeypatch, tmp_path):
    fake = FakeApi()
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(cfg))
    monkeypatch.setattr("kubernetes.client.rest.RESTClientObject.request",
                        lambda rest_self, *a, **kw: fake(rest_self, *a, **kw))
    return fake


@pytest.fixture
def experiment(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text(EXPERIMENT.format(scene="builtin:simple_street_canyon"))
    return p


def main(capsys, *argv):
    rc = cli.main(list(map(str, argv)))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


JOBS = "/apis/ray.io/v1/namespaces/rf/rayjobs"


# --- dry run: the objects -------------------------------------------------------------------------------------


def test_dry_run_prints_a_valid_rayjob_for_the_helm_cluster(capsys, experiment):
    rc, out, err = main(capsys, "submit", experiment, "--cluster", "reflectopt", "-n", "rf", "--dry-run",
                        "--active-deadline", "3600", "--name", "tiny-1")
    assert rc == 0
    # stderr says which bucket it assumed and what a real submit would upload (it uploads nothing)
    assert "dry run: S3 prefix s3://reflectopt/reflectopt (from s3.bucket/s3.prefix of chart defaults" in err
    assert "would upload the experiment -> s3://reflectopt/reflectopt/jobs/tiny-1/experiment.yaml" in err
    job = yaml.safe_load(out)
    assert kube.validate(job) == []
    spec = job["spec"]
    assert spec["clusterSelector"] == {"ray.io/cluster": "reflectopt"} and "rayClusterSpec" not in spec
    assert spec["entrypoint"] == kube.entrypoint("s3://reflectopt/reflectopt/jobs/tiny-1/experiment.yaml",
                                                 "s3://reflectopt/reflectopt/results/tiny-1")
    assert spec["activeDeadlineSeconds"] == 3600 and "backoffLimit" not in spec
    assert job["metadata"]["namespace"] == "rf"


def test_dry_run_ephemeral_carries_the_chart_cluster(capsys, experiment):
    values = CHART / "ci" / "values.cpu-only.yaml"
    rc, out, _ = main(capsys, "submit", experiment, "--cluster", "reflectopt", "--dry-run", "--ephemeral",
                      "--values", values, "--retries", "2", "--ttl", "120", "--env", "RAY_DEDUP_LOGS=0")
    assert rc == 0
    job = yaml.safe_load(out)
    assert kube.validate(job) == []
    spec = job["spec"]
    assert spec["rayClusterSpec"] == kube.raycluster_spec(kube.chart_values([values]), "reflectopt")
    assert (spec["shutdownAfterJobFinishes"], spec["ttlSecondsAfterFinished"], spec["backoffLimit"]) == (True, 120, 2)
    assert "clusterSelector" not in spec and "namespace" not in job["metadata"]  # GitOps: kustomize sets it
    assert yaml.safe_load(spec["runtimeEnvYAML"]) == {"env_vars": {"RAY_DEDUP_LOGS": "0"}}
    name = job["metadata"]["name"]
    assert name.startswith("tiny-canyon-") and len(name) <= 47


def test_generated_names_are_rayjob_names():
    for exp_name in ("a" * 40, "9lives", "x"):
        name = submit.job_name(exp_name)
        assert kube._dns1035_problems(name, kube.MAX_RAYJOB_NAME, "n") == [], name
    assert submit.job_name("abc", "123456") == "abc-123456"


@pytest.mark.parametrize("extra,message", [
    (["--retries", "1"], "--retries: KubeRay retries (backoffLimit) only with --ephemeral"),
    (["--ttl", "60"], "--ttl: only with --ephemeral"),
    (["--active-deadline", "0"], "--active-deadline: 0 must be positive"),
    (["--env", "AWS_SECRET_ACCESS_KEY=abc"], "looks like a secret"),
    (["--env", "NOEQUALS"], "is not KEY=VALUE"),
    (["--name", "Bad_Name"], "not a DNS-1035 label"),
    (["--name", "a" * 48], "at most 47"),
    (["--s3-prefix", "/local/dir"], "--s3-prefix"),
    (["--values", "/no/such/values.yaml"], "cannot read values file"),
    (["--scene", "/no/such/scene"], "--scene"),
])
def test_bad_options_are_one_line_usage_errors(capsys, experiment, extra, message):
    rc, out, err = main(capsys, "submit", experiment, "--cluster", "reflectopt", "--dry-run", *extra)
    assert rc == 2 and out == ""
    assert message in err
    assert all(line.startswith("reflectopt: error: ") for line in err.strip().splitlines())


def test_experiment_disagreeing_with_chart_world_sizing_is_refused(capsys, tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text(EXPERIMENT.format(scene="builtin:simple_street_canyon") + "resources: {gpu_per_world: 0.5}\n")
    rc, _, err = main(capsys, "submit", p, "--cluster", "reflectopt", "--dry-run")
    assert rc == 2 and "worlds.perGpu=4" in err and "resources.gpu_per_world" in err
    p.write_text(EXPERIMENT.format(scene="builtin:simple_street_canyon") + "resources: {gpu_per_world: 0.25}\n")
    assert main(capsys, "submit", p, "--cluster", "reflectopt", "--dry-run")[0] == 0


def test_local_scene_that_is_missing_is_refused(capsys, tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text(EXPERIMENT.format(scene="./no-such-scene"))
    rc, _, err = main(capsys, "submit", p, "--cluster", "reflectopt", "--dry-run")
    assert rc == 2 and "cannot read local files" in err


# --- sending: uploads + request bodies ------------------------------------------------------------------------


def test_submit_uploads_then_creates_the_validated_rayjob(capsys, api, s3_bucket, s3_env, tmp_path):
    scene = tmp_path / "site"
    scene.mkdir()
    (scene / "scene.xml").write_text('<scene version="2.1.0"></scene>\n')
    p = tmp_path / "exp.yaml"
    p.write_text(EXPERIMENT.format(scene="./site"))
    api.add("POST", JOBS + "$", 201, {"kind": "RayJob", "metadata": {"name": "tiny-2", "uid": "u"}})
    prefix = f"s3://{s3_bucket}/rf"
    rc, out, err = main(capsys, "submit", p, "--cluster", "reflectopt", "--s3-prefix", prefix, "--name", "tiny-2")
    assert rc == 0, err
    assert out.strip() == "tiny-2"
    (req,) = api.requests
    assert req["method"] == "POST" and req["url"] == "https://127.0.0.1:6443" + JOBS
    assert req["headers"]["authorization"] == "Bearer test-token"
    body = req["body"]
    assert kube.validate(body) == []
    assert body["metadata"]["namespace"] == "rf"  # the kubeconfig context's namespace
    assert body["spec"]["entrypoint"] == kube.entrypoint(f"{prefix}/jobs/tiny-2/experiment.yaml",
                                                         f"{prefix}/results/tiny-2")
    # the uploaded experiment is loadable, points at the uploaded scene bundle and at the job's results
    exp = load_experiment(f"{prefix}/jobs/tiny-2/experiment.yaml")
    from optimizer.store import assets, storage
    assert exp.scene.startswith(f"{prefix}/scenes/") and exp.scene_sha256 == assets.bundle_hash(scene)
    assert storage.exists(storage.join(exp.scene, "bundle.json"))
    assert exp.output == f"{prefix}/results/tiny-2"
    assert body["metadata"]["annotations"][submit.ANN_EXPERIMENT_SHA] == exp.sha256()
    # no credential leaves the machine in the object or the output
    secret = s3_env.env["AWS_SECRET_ACCESS_KEY"]
    assert secret not in json.dumps(body) and secret not in out + err


def test_wait_succeeds_and_prints_where_results_are(capsys, api, s3_bucket, s3_env, experiment):
    api.add("POST", JOBS + "$", 201, rayjob("tiny-3", None))
    for state in ("initializing", "running", "running", "complete"):
        api.add("GET", JOBS + "/tiny-3$", 200, rayjob("tiny-3", RECORDED[state]))
    prefix = f"s3://{s3_bucket}/rf"
    rc, out, err = main(capsys, "submit", experiment, "--cluster", "reflectopt", "--s3-prefix", prefix,
                        "--name", "tiny-3", "--wait", "--poll", "0")
    assert rc == 0, err
    assert f"results: {prefix}/results/tiny-3/" in out
    assert "Complete (Ray job SUCCEEDED)" in out
    assert [r["method"] for r in api.requests] == ["POST", "GET", "GET", "GET", "GET"]
    assert "tiny-3: Running / RUNNING" in err  # transitions reported once each
    assert err.count("Running / RUNNING") == 1


@pytest.mark.parametrize("state,shown", [("failed", "AppFailed"), ("deadline", "DeadlineExceeded"),
                                         ("validation", "ValidationFailed")])
def test_wait_exits_1_when_the_job_did_not_succeed(capsys, api, s3_bucket, s3_env, experiment, state, shown):
    api.add("POST", JOBS + "$", 201, rayjob("tiny-4", None))
    api.add("GET", JOBS + "/tiny-4$", 200, rayjob("tiny-4", RECORDED[state]))
    rc, out, _ = main(capsys, "submit", experiment, "--cluster", "reflectopt", "--s3-prefix",
                      f"s3://{s3_bucket}/rf", "--name", "tiny-4", "--wait", "--poll", "0")
    assert rc == 1
    assert shown in out and "results:" not in out.replace("  results:", "")


def test_wait_timeout_exits_1_and_says_how_to_follow(capsys, api, s3_bucket, s3_env, experiment):
    api.add("POST", JOBS + "$", 201, rayjob("tiny-5", None))
    api.add("GET", JOBS + "/tiny-5$", 200, rayjob("tiny-5", RECORDED["running"]))
    rc, _, err = main(capsys, "submit", experiment, "--cluster", "reflectopt", "--s3-prefix",
                      f"s3://{s3_bucket}/rf", "--name", "tiny-5", "--wait", "--poll", "0", "--timeout", "0")
    assert rc == 1 and "still Running" in err and "reflectopt status tiny-5 -n rf" in err


@pytest.mark.parametrize("code,reason,message,expected", [
    (409, "AlreadyExists", 'rayjobs.ray.io "tiny-6" already exists', "already exists; pick another --name"),
    (403, "Forbidden", 'rayjobs.ray.io is forbidden: User "dev" cannot create resource', "RBAC"),
    (404, "NotFound", "the server could not find the requested resource", "CRDs are installed"),
])
def test_api_errors_are_one_line(capsys, api, s3_bucket, s3_env, experiment, code, reason, message, expected):
    api.add("POST", JOBS + "$", code, status_error(code, reason, message))
    rc, out, err = main(capsys, "submit", experiment, "--cluster", "reflectopt", "--s3-prefix",
                        f"s3://{s3_bucket}/rf", "--name", "tiny-6")
    assert rc == 1 and out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("reflectopt: error: create RayJob tiny-6: HTTP") and expected in last and message in last


def test_no_kubeconfig_is_a_clear_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    rc, _, err = main(capsys, "status", "x")
    assert rc == 1 and "kubeconfig" in err and len(err.strip().splitlines()) == 1


# --- status, logs, cancel -------------------------------------------------------------------------------------


@pytest.mark.parametrize("state,rc_expected", [("running", 0), ("complete", 0), ("failed", 1), ("deadline", 1)])
def test_status(capsys, api, state, rc_expected):
    api.add("GET", JOBS + "/tiny-7$", 200, rayjob("tiny-7", RECORDED[state]))
    rc, out, _ = main(capsys, "status", "tiny-7")
    assert rc == rc_expected
    assert out.startswith(f"tiny-7: {RECORDED[state]['jobDeploymentStatus']}")
    assert "results: s3://b/rf/results/tiny-7/" in out
    rc, out, _ = main(capsys, "status", "tiny-7", "--json")
    data = json.loads(out)
    assert data["deployment"] == RECORDED[state]["jobDeploymentStatus"] and data["ok"] == (state == "complete")


@pytest.mark.parametrize("state,rc_expected,how", [("sigterm", 143, "SIGTERM"), ("ctrl-c", 130, "Ctrl-C"),
                                                  ("stopped", 143, "stopped")])
def test_status_tells_an_interrupted_job_from_a_failed_one(capsys, api, state, rc_expected, how):
    """A driver that was interrupted (its checkpoints kept, resumable) is not reported as failed."""
    api.add("GET", JOBS + "/tiny-9$", 200, rayjob("tiny-9", RECORDED[state]))
    rc, out, _ = main(capsys, "status", "tiny-9")
    assert rc == rc_expected
    line = next(ln for ln in out.splitlines() if "interrupted" in ln)
    assert "not failed" in line and how in line and "reflectopt resume RUN" in line
    assert "reflectopt results ls s3://b/rf/results/tiny-9/" in line
    rc, out, _ = main(capsys, "status", "tiny-9", "--json")
    data = json.loads(out)
    assert data["interrupted"] is True and data["ok"] is False
    api.add("GET", JOBS + "/tiny-10$", 200, rayjob("tiny-10", RECORDED["failed"]))  # exit code 2: a failure
    rc, out, _ = main(capsys, "status", "tiny-10", "--json")
    assert rc == 1 and json.loads(out)["interrupted"] is False


def test_status_of_a_new_job_without_status_is_pending(capsys, api):
    api.add("GET", JOBS + "/tiny-8$", 200, rayjob("tiny-8", None))
    rc, out, _ = main(capsys, "status", "tiny-8", "-n", "rf")
    assert rc == 0 and out.startswith("tiny-8: Pending")


def test_logs_reads_the_submitter_pod(capsys, api):
    api.add("GET", JOBS + "/tiny-9$", 200, rayjob("tiny-9", RECORDED["running"]))
    pods = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [
        {"metadata": {"name": "tiny-9-abcde", "namespace": "rf", "creationTimestamp": "2026-11-26T10:00:01Z",
                      "labels": {"job-name": "tiny-9"}}}]}
    api.add("GET", r"/api/v1/namespaces/rf/pods\?labelSelector=job-name%3Dtiny-9", 200, pods)
    log = "2026-11-26 10:00:09 INFO -- Job 'tiny-9-x' submitted\nworld 0 step 2/2 ...\n"
    api.add("GET", r"/api/v1/namespaces/rf/pods/tiny-9-abcde/log", 200, log)
    rc, out, _ = main(capsys, "logs", "tiny-9")
    assert rc == 0 and out == log


def test_logs_before_the_submitter_exists(capsys, api):
    api.add("GET", JOBS + "/tiny-10$", 200, rayjob("tiny-10", RECORDED["initializing"]))
    api.add("GET", r"/api/v1/namespaces/rf/pods\?", 200, {"kind": "PodList", "metadata": {}, "items": []})
    rc, _, err = main(capsys, "logs", "tiny-10")
    assert rc == 1 and "no submitter pod yet" in err


def test_cancel_deletes_the_rayjob(capsys, api):
    api.add("DELETE", JOBS + r"/tiny-11(\?|$)", 200, status_error(200, "", "") | {"status": "Success"})
    rc, _, err = main(capsys, "cancel", "tiny-11", "-n", "rf")
    assert rc == 0 and "deleted" in err
    (req,) = api.requests
    assert req["method"] == "DELETE" and JOBS + "/tiny-11" in req["url"]
    assert req["body"] == {"propagationPolicy": "Foreground"} or "propagationPolicy=Foreground" in req["url"]


def test_cancel_of_unknown_job(capsys, api):
    api.add("DELETE", JOBS + r"/nope(\?|$)", 404, status_error(404, "NotFound", 'rayjobs.ray.io "nope" not found'))
    rc, _, err = main(capsys, "cancel", "nope")
    assert rc == 1 and 'rayjobs.ray.io "nope" not found' in err


def test_dry_run_upload_for_gitops(capsys, s3_bucket, s3_env, experiment):
    prefix = f"s3://{s3_bucket}/rf"
    rc, out, _ = main(capsys, "submit", experiment, "--cluster", "reflectopt", "--dry-run", "--upload",
                      "--s3-prefix", prefix, "--name", "tiny-12")
    assert rc == 0 and kube.validate(yaml.safe_load(out)) == []
    from optimizer.store import storage
    assert storage.exists(f"{prefix}/jobs/tiny-12/experiment.yaml")
    rc, _, _ = main(capsys, "submit", experiment, "--cluster", "reflectopt", "--dry-run", "--s3-prefix", prefix,
                    "--name", "tiny-13")
    assert rc == 0 and not storage.exists(f"{prefix}/jobs/tiny-13/experiment.yaml")  # plain dry run: no upload
