"""RayJob/RayCluster building and validation: CRD schema (with defaults), KubeRay's own rules, core kinds."""

from __future__ import annotations

import copy
import filecmp

import pytest
from kube_helpers import REPO

from optimizer.kube import objects as kube
from optimizer.errors import ConfigError

SHARED_CRDS = REPO.parent / "shared" / "kuberay" / "v1.7.0" / "crds"


def _job(**kw):
    kw.setdefault("cluster", "reflectopt")
    return kube.build_rayjob("exp-abc123", "rf", kube.entrypoint("s3://b/p/jobs/x/experiment.yaml", "s3://b/p/r/x"),
                             **kw)


def _ephemeral(**kw):
    spec = kube.raycluster_spec(kube.chart_values(), "reflectopt")
    return _job(cluster=None, cluster_spec=spec, **kw)


def test_vendored_crds_equal_shared_copy():
    vendored = kube.crd_dir()
    for name in ("ray.io_rayclusters.yaml", "ray.io_rayjobs.yaml"):
        assert (vendored / name).stat().st_size > 100_000
    assert (vendored / "LICENSE").read_text().startswith(("Apache License", "\n", " "))
    if not SHARED_CRDS.is_dir():
        pytest.skip(f"{SHARED_CRDS} not present")
    for name in ("ray.io_rayclusters.yaml", "ray.io_rayjobs.yaml"):
        assert filecmp.cmp(vendored / name, SHARED_CRDS / name, shallow=False), name


def test_valid_jobs_pass():
    assert kube.validate(_job(active_deadline_seconds=3600)) == []
    assert kube.validate(_ephemeral(ttl_seconds=60, backoff_limit=2, env={"RAY_DEDUP_LOGS": "0"})) == []


def test_defaults_are_applied_before_validation():
    raw, _ = kube._crd("RayJob")
    job = _job()
    del job["spec"]["submissionMode"]
    filled = kube.apply_defaults(raw, job)
    assert filled["spec"]["submissionMode"] == "K8sJobMode" and filled["spec"]["backoffLimit"] == 0
    assert "submissionMode" not in job["spec"]  # the input is not changed
    eph = kube.apply_defaults(raw, _ephemeral())
    group = eph["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    assert group["numOfHosts"] == 1


def test_entrypoint_is_reflectopt_run_with_s3_output():
    job = _job()
    assert job["spec"]["entrypoint"] == "reflectopt run s3://b/p/jobs/x/experiment.yaml --output s3://b/p/r/x"
    assert kube.entrypoint("s3://b/a b.yaml", "s3://b/o") == "reflectopt run 's3://b/a b.yaml' --output s3://b/o"


def test_ephemeral_cleans_up_after_itself():
    spec = _ephemeral()["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] == kube.DEFAULT_TTL_S
    assert "clusterSelector" not in spec
    env = spec["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "REFLECTOPT_GPU_PER_WORLD", "value": "0.25"} in env


def _mutate(fn):
    job = copy.deepcopy(_job())
    fn(job)
    return job


def _set(path, value):
    def fn(job):
        node = job
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
    return fn


RULES = [
    ("both cluster modes", lambda j: j["spec"].update(rayClusterSpec=_ephemeral()["spec"]["rayClusterSpec"]),
     "exactly one of rayClusterSpec"),
    ("neither cluster mode", lambda j: j["spec"].pop("clusterSelector"), "exactly one of rayClusterSpec"),
    ("empty selector", _set(("spec", "clusterSelector"), {"ray.io/cluster": ""}), "non-empty ray.io/cluster"),
    ("ttl without shutdown", _set(("spec", "ttlSecondsAfterFinished"), 60), "needs shutdownAfterJobFinishes"),
    ("negative ttl", _set(("spec", "ttlSecondsAfterFinished"), -1), "non-negative"),
    ("backoff with selector", _set(("spec", "backoffLimit"), 2), "incompatible with clusterSelector"),
    ("zero deadline", _set(("spec", "activeDeadlineSeconds"), 0), "activeDeadlineSeconds must be a positive"),
    ("negative deadline", _set(("spec", "activeDeadlineSeconds"), -5), "activeDeadlineSeconds must be a positive"),
    ("bad runtimeEnvYAML", _set(("spec", "runtimeEnvYAML"), "env_vars: [a"), "runtimeEnvYAML is not valid YAML"),
    ("runtimeEnvYAML not a map", _set(("spec", "runtimeEnvYAML"), "- a\n- b\n"), "runtimeEnvYAML must be"),
    ("name too long", _set(("metadata", "name"), "a" * 48), "at most 47"),
    ("name not DNS-1035", _set(("metadata", "name"), "1-job"), "DNS-1035"),
    ("name upper case", _set(("metadata", "name"), "Job"), "DNS-1035"),
    ("suspend without shutdown", _set(("spec", "suspend"), True), "suspend needs shutdownAfterJobFinishes"),
    ("sidecar with selector", _set(("spec", "submissionMode"), "SidecarMode"), "not supported in SidecarMode"),
    ("typo in spec", _set(("spec", "activeDeadline"), 5), "'activeDeadline' was unexpected"),
    ("wrong type", _set(("spec", "activeDeadlineSeconds"), "10"), "is not of type 'integer'"),
    ("bad submission mode", _set(("spec", "submissionMode"), "Batch"), "is not one of"),
]


@pytest.mark.parametrize("mutate,message", [(m, msg) for _, m, msg in RULES], ids=[r[0] for r in RULES])
def test_rules_reject(mutate, message):
    problems = kube.validate(_mutate(mutate))
    assert any(message in p for p in problems), problems
    with pytest.raises(ConfigError):
        kube.check(_mutate(mutate))


def test_name_of_47_characters_is_allowed():
    assert kube.validate(_mutate(_set(("metadata", "name"), "a" * 47))) == []


@pytest.mark.parametrize("path,value,message", [
    (("workerGroupSpecs", 0, "minReplicas"), 9, "greater than maxReplicas"),
    (("workerGroupSpecs", 0, "template", "spec", "containers"), [], "at least one container"),
    (("workerGroupSpecs", 0, "rayStartParams"), {"labels": "a=b"}, "rayStartParams['labels']"),
    (("headGroupSpec", "resources"), {"CPU": "1"}, "both rayStartParams and resources"),
    (("workerGroupSpecs", 0, "replicas"), "2", "is not of type 'integer'"),
    (("workerGroupSpecs", 0, "template", "spec", "containers", 0, "resources", "limits", "cpu"), "lots",
     "does not match"),
])
def test_embedded_cluster_spec_rules(path, value, message):
    job = _ephemeral()
    node = job["spec"]["rayClusterSpec"]
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    problems = kube.validate(job)
    assert any(message in p for p in problems), problems


def test_autoscaler_spec_drops_replica_requirement():
    spec = kube.raycluster_spec(kube.chart_values(overrides={"autoscaling": {"enabled": True}}), "rc")
    del spec["workerGroupSpecs"][0]["minReplicas"]
    assert kube.raycluster_spec_rules(spec, "x") == []
    spec["enableInTreeAutoscaling"] = False
    assert kube.raycluster_spec_rules(spec, "x")


def test_core_kinds_checked_by_client_models():
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "a"}}
    assert kube.validate(sa) == []
    assert "automount" in kube.validate({**sa, "automount": False})[0]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"},
            "rules": [{"apiGroups": ["ray.io"], "resources": ["rayjobs"], "verbs": ["get"]}]}
    assert kube.validate(role) == []
    role["rules"][0]["verbs"] = "get"
    assert "verbs" in kube.validate(role)[0]
    assert "unknown kind" in kube.validate({"apiVersion": "v1", "kind": "Widget", "metadata": {}})[0]


def test_helm_values_merge_like_helm():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert kube._merge(base, {"a": {"c": [3]}, "d": None}) == {"a": {"b": 1, "c": [3]}}
    assert base["a"]["c"] == [1, 2]
