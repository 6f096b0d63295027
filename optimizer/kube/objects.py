"""Kubernetes objects for reflectopt: the RayCluster spec from the Helm chart's values, RayJobs, and their checks.

* `chart_values(files)` merges helm/reflectopt/values.yaml with the user's values files (Helm's rules) and checks the
  result against the chart's values.schema.json.
* `raycluster_spec(values, fullname)` builds the same `spec` as the chart's templates/raycluster.yaml (tests compare
  the two), so `reflectopt submit --ephemeral` and `helm install` cannot disagree on world sizing.
* `build_rayjob(...)` makes a RayJob (ray.io/v1) that runs `reflectopt run` on an uploaded experiment.
* `validate(obj)` returns one line per problem: the KubeRay v1.7.0 CRD schema (defaults applied first, unknown fields
  rejected like `kubectl --validate=strict`), the operator's own rules (ray-operator/controllers/ray/utils/
  validation.go), and, for core kinds, the Kubernetes Python client's models (unknown fields and wrong types fail).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import re
import shlex
from pathlib import Path

import yaml

from optimizer.constants import (ENV_CACHE_DIR, ENV_CHART_DIR, ENV_CPU_PER_WORLD, ENV_CRD_DIR, ENV_DEVICE,
                                 ENV_GPU_PER_WORLD, ENV_S3_ENDPOINT)
from optimizer.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBERAY_VERSION = "1.7.0"

RAY_GROUP, RAY_VERSION = "ray.io", "v1"
CLUSTER_SELECTOR_KEY = "ray.io/cluster"  # KubeRay's RayJobClusterSelectorKey
MAX_RAYCLUSTER_NAME = 53  # KubeRay MaxRayClusterNameLength
MAX_RAYJOB_NAME = MAX_RAYCLUSTER_NAME - 6  # KubeRay MaxRayJobNameLength (47)
DNS1035_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
CHART_NAME = "reflectopt"
CACHE_DIR_IN_POD = "/home/ray/.cache/reflectopt"
DEFAULT_TTL_S = 600
SUBMISSION_MODES = ("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode")


def chart_dir() -> Path:
    return Path(os.environ.get(ENV_CHART_DIR) or REPO_ROOT / "helm" / CHART_NAME)


def crd_dir() -> Path:
    return Path(os.environ.get(ENV_CRD_DIR) or REPO_ROOT / "k8s" / "crds" / f"kuberay-v{KUBERAY_VERSION}")


# --- chart values --------------------------------------------------------------------------------------------


def _merge(base: dict, over: dict) -> dict:
    """Helm's value coalescing: maps merge deeply, anything else (lists too) replaces, null deletes."""
    out = dict(base)
    for key, val in over.items():
        if val is None:
            out.pop(key, None)
        elif isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], val)
        else:
            out[key] = copy.deepcopy(val)
    return out


def _load_yaml_file(path: Path, what: str):
    try:
        return yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        raise ConfigError(f"{path}: cannot read {what} ({err.strerror}); give an existing file") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({getattr(err, 'problem', err)})") from None


def _schema_problems(schema: dict, instance, source: str) -> list[str]:
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    lines = []
    for err in sorted(cls(schema).iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        msg = err.message
        if err.validator == "additionalProperties":
            msg = f"{msg}; check the spelling"
        lines.append(f"{source}: {where}: {msg}")
    return lines


def chart_values(files: list[str | os.PathLike] = (), overrides: dict | None = None) -> dict:
    """The chart's defaults merged with `files` (in order) and `overrides`, checked against values.schema.json."""
    cdir = chart_dir()
    if not (cdir / "values.yaml").is_file():
        raise ConfigError(f"helm chart not found at {cdir}; set {ENV_CHART_DIR} to the helm/reflectopt folder")
    values = _load_yaml_file(cdir / "values.yaml", "chart values")
    sources = []
    for f in files:
        data = _load_yaml_file(Path(f), "values file")
        if not isinstance(data, dict):
            raise ConfigError(f"{f}: expected a mapping of chart values, got {type(data).__name__}")
        values = _merge(values, data)
        sources.append(str(f))
    if overrides:
        values = _merge(values, overrides)
    schema = json.loads((cdir / "values.schema.json").read_text())
    problems = _schema_problems(schema, values, "chart values" + (f" ({', '.join(sources)})" if sources else ""))
    if problems:
        raise ConfigError(problems)
    return values


def fullname(values: dict, release: str) -> str:
    """The chart's `reflectopt.fullname` (the RayCluster's name)."""
    if values.get("fullnameOverride"):
        return values["fullnameOverride"][:MAX_RAYCLUSTER_NAME].rstrip("-")
    name = values.get("nameOverride") or CHART_NAME
    if name in release:
        return release[:MAX_RAYCLUSTER_NAME].rstrip("-")
    return f"{release}-{name}"[:MAX_RAYCLUSTER_NAME].rstrip("-")


def _go_g(x: float) -> str:
    """Go's %g for the small numbers used here (shortest round-trip form, no trailing .0)."""
    s = repr(float(x))
    return s.removesuffix(".0")


def gpu_per_world(values: dict) -> str:
    """REFLECTOPT_GPU_PER_WORLD as the chart sets it: 1/perGpu rounded down to 4 decimals, "0" with no GPU group."""
    if not values.get("gpuWorkerGroups"):
        return "0"
    return _go_g((10000 // int(values["worlds"]["perGpu"])) / 10000)


def _quantity(q) -> str:
    return q if isinstance(q, str) else _go_g(q)


def _gpu_group_cpu(values: dict, group: dict) -> str:
    if group.get("cpu"):
        return _quantity(group["cpu"])
    w = values["worlds"]
    milli = math.ceil(float(group["gpus"]) * int(w["perGpu"]) * float(w["cpuPerWorld"]) * 1000) + 1000
    return f"{milli}m"


def _service_account(values: dict, full: str) -> str:
    sa = values["serviceAccount"]
    if sa["create"]:
        return sa["name"] or full
    return sa["name"] or "default"


def _container_security(values: dict) -> dict:
    return {"allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": bool(values["podSecurity"]["readOnlyRootFilesystem"]),
            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}


def _env(values: dict, group: dict) -> list[dict]:
    s3 = values["s3"]
    env = [
        {"name": ENV_GPU_PER_WORLD, "value": gpu_per_world(values)},
        {"name": ENV_CPU_PER_WORLD, "value": _go_g(values["worlds"]["cpuPerWorld"])},
        {"name": ENV_DEVICE, "value": values["device"]},
        {"name": ENV_CACHE_DIR, "value": CACHE_DIR_IN_POD},
        {"name": "AWS_REGION", "value": s3["region"]},
        {"name": "AWS_DEFAULT_REGION", "value": s3["region"]},
    ]
    if s3["endpoint"]:
        env.append({"name": ENV_S3_ENDPOINT, "value": s3["endpoint"]})
    cred = s3["credentials"]
    if cred["existingSecret"]:
        for name, key in (("AWS_ACCESS_KEY_ID", cred["accessKeyIdKey"]),
                          ("AWS_SECRET_ACCESS_KEY", cred["secretAccessKeyKey"])):
            env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": cred["existingSecret"], "key": key}}})
    env += copy.deepcopy(values.get("extraEnv") or [])
    env += copy.deepcopy(group.get("env") or [])
    return env


def _pod_template(values: dict, full: str, group: dict, component: str, container: str, gpus: int,
                  cpu: str) -> dict:
    """The chart's `reflectopt.podTemplate`."""
    sec = values["podSecurity"]
    name = (values.get("nameOverride") or CHART_NAME)[:MAX_RAYCLUSTER_NAME].rstrip("-")
    labels = dict(group.get("labels") or {})
    labels.update({"app.kubernetes.io/name": name, "app.kubernetes.io/component": component})
    meta = {"labels": labels}
    if group.get("annotations"):
        meta["annotations"] = dict(group["annotations"])
    res = {"cpu": cpu, "memory": _quantity(group["memory"])}
    if int(gpus) > 0:
        res["nvidia.com/gpu"] = str(gpus)
    spec = {"serviceAccountName": _service_account(values, full)}
    if values.get("imagePullSecrets"):
        spec["imagePullSecrets"] = copy.deepcopy(values["imagePullSecrets"])
    spec["securityContext"] = {"runAsNonRoot": True, "runAsUser": sec["runAsUser"], "runAsGroup": sec["runAsGroup"],
                               "fsGroup": sec["fsGroup"], "seccompProfile": {"type": "RuntimeDefault"}}
    for key in ("nodeSelector", "tolerations", "affinity"):
        if group.get(key):
            spec[key] = copy.deepcopy(group[key])
    img = values["image"]
    spec["containers"] = [{
        "name": container,
        "image": f"{img['repository']}:{img['tag']}",
        "imagePullPolicy": img["pullPolicy"],
        "env": _env(values, group),
        "resources": {"requests": dict(res), "limits": dict(res)},
        "securityContext": _container_security(values),
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]
        + [{"name": f"writable-{i}", "mountPath": p} for i, p in enumerate(sec["writablePaths"])],
    }]
    spec["volumes"] = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}] + [
        {"name": f"writable-{i}", "emptyDir": {}} for i in range(len(sec["writablePaths"]))]
    return {"metadata": meta, "spec": spec}


def _worker_group(values: dict, full: str, group: dict, gpus: int, cpu: str) -> dict:
    return {"groupName": group["name"], "replicas": group["replicas"], "minReplicas": group["minReplicas"],
            "maxReplicas": group["maxReplicas"], "rayStartParams": dict(group.get("rayStartParams") or {}),
            "template": _pod_template(values, full, group, "worker", "ray-worker", gpus, cpu)}


def check_values(values: dict) -> None:
    """The chart's `fail` checks (templates/raycluster.yaml), as one ConfigError."""
    groups = list(values["gpuWorkerGroups"]) + ([values["cpuWorkers"]] if values["cpuWorkers"]["enabled"] else [])
    names = [g["name"] for g in groups]
    problems = []
    if len(set(names)) != len(names):
        problems.append(f"chart values: worker group names must be unique, got {names}")
    for g in groups:
        if g["minReplicas"] > g["maxReplicas"]:
            problems.append(f"chart values: worker group {g['name']}: minReplicas {g['minReplicas']} is above "
                            f"maxReplicas {g['maxReplicas']}")
        if not g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]:
            problems.append(f"chart values: worker group {g['name']}: replicas {g['replicas']} is outside "
                            f"[minReplicas {g['minReplicas']}, maxReplicas {g['maxReplicas']}]")
    if not groups and not values["head"]["runWorlds"]:
        problems.append("chart values: no worker groups and head.runWorlds is false: nothing could host a world")
    if problems:
        raise ConfigError(problems)


def raycluster_spec(values: dict, full: str) -> dict:
    """The RayCluster `spec` that `helm template` renders from `values` for a release whose fullname is `full`."""
    check_values(values)
    auto = values["autoscaling"]
    spec: dict = {"rayVersion": values["rayVersion"], "enableInTreeAutoscaling": bool(auto["enabled"])}
    if auto["enabled"]:
        res = {"cpu": _quantity(auto["cpu"]), "memory": _quantity(auto["memory"])}
        spec["autoscalerOptions"] = {
            "version": auto["version"], "upscalingMode": auto["upscalingMode"],
            "idleTimeoutSeconds": auto["idleTimeoutSeconds"], "imagePullPolicy": values["image"]["pullPolicy"],
            "resources": {"requests": dict(res), "limits": dict(res)},
            "securityContext": _container_security(values)}
    head = values["head"]
    head_params = dict(head.get("rayStartParams") or {})
    if not head["runWorlds"]:
        for key in ("num-cpus", "num-gpus"):
            head_params.setdefault(key, "0")
    spec["headGroupSpec"] = {
        "serviceType": "ClusterIP", "rayStartParams": head_params,
        "template": _pod_template(values, full, head, "head", "ray-head", head["gpus"], _quantity(head["cpu"]))}
    workers = [_worker_group(values, full, g, g["gpus"], _gpu_group_cpu(values, g))
               for g in values["gpuWorkerGroups"]]
    if values["cpuWorkers"]["enabled"]:
        c = values["cpuWorkers"]
        workers.append(_worker_group(values, full, c, 0, _quantity(c["cpu"])))
    spec["workerGroupSpecs"] = workers
    return spec


# --- RayJob --------------------------------------------------------------------------------------------------


def entrypoint(experiment_uri: str, output_uri: str) -> str:
    """The command every RayJob runs (and the local Job Submission test submits)."""
    return shlex.join(["reflectopt", "run", experiment_uri, "--output", output_uri])


def build_rayjob(name: str, namespace: str, entrypoint_cmd: str, *, cluster: str | None = None,
                 cluster_spec: dict | None = None, ttl_seconds: int | None = None,
                 active_deadline_seconds: int | None = None, backoff_limit: int | None = None,
                 env: dict[str, str] | None = None, labels: dict | None = None,
                 annotations: dict | None = None) -> dict:
    """A RayJob on an existing cluster (`cluster`, via clusterSelector) or with its own (`cluster_spec`)."""
    meta: dict = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {"app.kubernetes.io/name": CHART_NAME, "app.kubernetes.io/managed-by": "reflectopt",
                      **(labels or {})}
    if annotations:
        meta["annotations"] = dict(annotations)
    spec: dict = {"entrypoint": entrypoint_cmd, "submissionMode": "K8sJobMode"}
    if cluster_spec is not None:
        spec["rayClusterSpec"] = cluster_spec
        spec["shutdownAfterJobFinishes"] = True
        spec["ttlSecondsAfterFinished"] = DEFAULT_TTL_S if ttl_seconds is None else ttl_seconds
    if cluster is not None:
        spec["clusterSelector"] = {CLUSTER_SELECTOR_KEY: cluster}
    if env:
        spec["runtimeEnvYAML"] = yaml.safe_dump({"env_vars": dict(env)}, sort_keys=True)
    if active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = active_deadline_seconds
    if backoff_limit is not None:
        spec["backoffLimit"] = backoff_limit
    return {"apiVersion": f"{RAY_GROUP}/{RAY_VERSION}", "kind": "RayJob", "metadata": meta, "spec": spec}


# --- validation ----------------------------------------------------------------------------------------------


def _structural_to_jsonschema(node):
    """Kubernetes structural schema -> JSON Schema (int-or-string, nullable, strict unknown fields)."""
    if isinstance(node, list):
        return [_structural_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, val in node.items():
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: _structural_to_jsonschema(v) for k, v in val.items()}
        elif key in ("items", "additionalProperties", "allOf", "anyOf", "oneOf", "not"):
            out[key] = _structural_to_jsonschema(val)
        elif key.startswith("x-kubernetes-") or key in ("nullable", "format", "default", "description"):
            continue
        else:
            out[key] = val
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if ("properties" in out and "additionalProperties" not in out
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.cache
def _crd(kind: str) -> tuple[dict, dict]:
    """(raw openAPIV3Schema with defaults, JSON Schema) for a KubeRay kind."""
    path = crd_dir() / f"ray.io_{kind.lower()}s.yaml"
    if not path.is_file():
        raise ConfigError(f"KubeRay CRD not found at {path}; set {ENV_CRD_DIR} to the k8s/crds/kuberay-v"
                          f"{KUBERAY_VERSION} folder")
    crd = yaml.safe_load(path.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == RAY_VERSION)
    raw = version["schema"]["openAPIV3Schema"]
    return raw, _structural_to_jsonschema(raw)


def apply_defaults(schema: dict, obj):
    """A copy of `obj` with the structural schema's defaults filled in (what the API server does first)."""
    obj = copy.deepcopy(obj)

    def walk(s, o):
        if isinstance(o, dict):
            for key, sub in (s.get("properties") or {}).items():
                if key not in o and "default" in sub:
                    o[key] = copy.deepcopy(sub["default"])
                if key in o:
                    walk(sub, o[key])
            extra = s.get("additionalProperties")
            if isinstance(extra, dict):
                for key in o:
                    if key not in (s.get("properties") or {}):
                        walk(extra, o[key])
        elif isinstance(o, list) and isinstance(s.get("items"), dict):
            for item in o:
                walk(s["items"], item)

    walk(schema, obj)
    return obj


def validate_crd(obj: dict) -> list[str]:
    """Problems of a RayCluster/RayJob against the KubeRay v1.7.0 CRD schema (after defaulting)."""
    kind = obj.get("kind")
    raw, schema = _crd(kind)
    return _schema_problems(schema, apply_defaults(raw, obj), f"{kind} {obj.get('metadata', {}).get('name', '?')}")


def _dns1035_problems(name, max_len: int, what: str) -> list[str]:
    out = []
    if not isinstance(name, str) or not name:
        return [f"{what}: metadata.name is missing"]
    if len(name) > max_len:
        out.append(f"{what}: metadata.name {name!r} is {len(name)} characters (at most {max_len})")
    if not DNS1035_RE.match(name):
        out.append(f"{what}: metadata.name {name!r} is not a DNS-1035 label (lower-case letters, digits and '-', "
                   f"starting with a letter)")
    return out


def raycluster_spec_rules(spec: dict, where: str) -> list[str]:
    """The operator's ValidateRayClusterSpec checks that matter for the objects built here."""
    out = []
    head = spec.get("headGroupSpec") or {}
    if not ((head.get("template") or {}).get("spec") or {}).get("containers"):
        out.append(f"{where}: headGroupSpec should have at least one container")
    autoscaling = bool(spec.get("enableInTreeAutoscaling"))
    groups = [("Head", head)] + [(g.get("groupName", "?"), g) for g in spec.get("workerGroupSpecs") or []]
    for gname, g in groups:
        params = g.get("rayStartParams") or {}
        if any(params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")) and g.get("resources"):
            out.append(f"{where}: group {gname}: resources set in both rayStartParams and resources; use one")
        if "labels" in params:
            out.append(f"{where}: group {gname}: rayStartParams['labels'] is not supported; use labels")
    names = []
    for g in spec.get("workerGroupSpecs") or []:
        gname = g.get("groupName", "?")
        names.append(gname)
        if not ((g.get("template") or {}).get("spec") or {}).get("containers"):
            out.append(f"{where}: worker group {gname} should have at least one container")
        lo, hi = g.get("minReplicas"), g.get("maxReplicas")
        if not autoscaling and (lo is None or hi is None):
            out.append(f"{where}: worker group {gname} must set both minReplicas and maxReplicas when autoscaling "
                       f"is disabled")
        if lo is not None and hi is not None and lo > hi:
            out.append(f"{where}: worker group {gname} has minReplicas {lo} greater than maxReplicas {hi}")
        if autoscaling and g.get("suspend"):
            out.append(f"{where}: worker group {gname} cannot be suspended with the autoscaler enabled")
    if len(set(names)) != len(names):
        out.append(f"{where}: worker group names must be unique, got {names}")
    return out


def rayjob_rules(obj: dict) -> list[str]:
    """KubeRay's ValidateRayJobMetadata + ValidateRayJobSpec (validation.go, v1.7.0), one line per problem."""
    name = (obj.get("metadata") or {}).get("name")
    what = f"RayJob {name or '?'}"
    out = _dns1035_problems(name, MAX_RAYJOB_NAME, "RayJob")
    spec = obj.get("spec") or {}
    shutdown = bool(spec.get("shutdownAfterJobFinishes"))
    selector = spec.get("clusterSelector") or {}
    has_spec = spec.get("rayClusterSpec") is not None
    ttl = spec.get("ttlSecondsAfterFinished", 0)
    ttl = ttl if isinstance(ttl, int) else 0  # a wrong type is the schema's finding
    mode = spec.get("submissionMode", "K8sJobMode")
    if spec.get("suspend") and not shutdown:
        out.append(f"{what}: suspend needs shutdownAfterJobFinishes: true")
    if ttl < 0:
        out.append(f"{what}: ttlSecondsAfterFinished must be a non-negative integer")
    if ttl > 0 and not shutdown:
        out.append(f"{what}: ttlSecondsAfterFinished needs shutdownAfterJobFinishes: true")
    if has_spec == bool(selector):
        out.append(f"{what}: give exactly one of rayClusterSpec (own cluster) or clusterSelector (existing cluster)")
    if selector:
        if not selector.get(CLUSTER_SELECTOR_KEY):
            out.append(f"{what}: clusterSelector needs a non-empty {CLUSTER_SELECTOR_KEY}")
        if mode == "SidecarMode":
            out.append(f"{what}: clusterSelector is not supported in SidecarMode")
        if isinstance(spec.get("backoffLimit"), int) and spec["backoffLimit"] > 0:
            out.append(f"{what}: backoffLimit (retries) is incompatible with clusterSelector; use an ephemeral cluster")
        if spec.get("suspend"):
            out.append(f"{what}: clusterSelector mode does not support suspend")
    if mode == "InteractiveMode" and isinstance(spec.get("backoffLimit"), int) and spec["backoffLimit"] > 0:
        out.append(f"{what}: backoffLimit is incompatible with InteractiveMode")
    if has_spec:
        out += raycluster_spec_rules(spec["rayClusterSpec"], f"{what}: rayClusterSpec")
    rt = spec.get("runtimeEnvYAML")
    if rt:
        try:
            parsed = yaml.safe_load(rt)
            if parsed is not None and not isinstance(parsed, dict):
                out.append(f"{what}: runtimeEnvYAML must be a YAML mapping")
        except yaml.YAMLError as err:
            out.append(f"{what}: runtimeEnvYAML is not valid YAML ({getattr(err, 'problem', err)})")
    if mode not in SUBMISSION_MODES:
        out.append(f"{what}: submissionMode {mode!r} is not one of {', '.join(SUBMISSION_MODES)}")
    for key in ("activeDeadlineSeconds", "preRunningDeadlineSeconds"):
        if isinstance(spec.get(key), int) and spec[key] <= 0:
            out.append(f"{what}: {key} must be a positive integer")
    if isinstance(spec.get("backoffLimit"), int) and spec["backoffLimit"] < 0:
        out.append(f"{what}: backoffLimit must be a non-negative integer")
    return out


def raycluster_rules(obj: dict) -> list[str]:
    name = (obj.get("metadata") or {}).get("name")
    return (_dns1035_problems(name, MAX_RAYCLUSTER_NAME, "RayCluster")
            + raycluster_spec_rules(obj.get("spec") or {}, f"RayCluster {name or '?'}"))


def validate_core(obj: dict) -> list[str]:
    """A core kind checked by the Kubernetes client's models (pydantic, unknown fields forbidden)."""
    from kubernetes import client
    from pydantic import ValidationError

    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    version = api_version.rsplit("/", 1)[-1]
    model = getattr(client, f"{version[:1].upper()}{version[1:]}{kind}", None)
    what = f"{kind or '?'} {(obj.get('metadata') or {}).get('name', '?')}"
    if model is None or not hasattr(model, "model_validate"):
        return [f"{what}: unknown kind {api_version}/{kind}"]
    try:
        model.model_validate(obj)
    except ValidationError as err:
        return [f"{what}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()]
    return []


def validate(obj: dict) -> list[str]:
    """All problems of one object (empty: it would be accepted)."""
    if not isinstance(obj, dict) or "kind" not in obj:
        return ["object: not a Kubernetes object (no kind)"]
    if obj.get("apiVersion") == f"{RAY_GROUP}/{RAY_VERSION}" and obj["kind"] in ("RayJob", "RayCluster"):
        rules = rayjob_rules if obj["kind"] == "RayJob" else raycluster_rules
        return validate_crd(obj) + rules(obj)
    return validate_core(obj)


def check(obj: dict) -> dict:
    """Raise ConfigError with every problem of `obj`; return it unchanged when valid."""
    problems = validate(obj)
    if problems:
        raise ConfigError(problems)
    return obj


def to_yaml(obj) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=120)
