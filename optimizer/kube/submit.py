"""`reflectopt submit|status|logs|cancel`: run experiments on Kubernetes as KubeRay RayJobs.

submit: load the experiment, upload it (and a local scene folder) to S3, build a RayJob whose entrypoint is
`reflectopt run s3://.../experiment.yaml --output s3://.../results/JOB`, validate it (CRD schema + KubeRay's own rules)
and create it, or print it with --dry-run. The RayJob targets the Helm-deployed RayCluster (clusterSelector) or, with
--ephemeral, brings its own rayClusterSpec built from the same chart values (optimizer/kube/objects.py).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from optimizer.constants import (BUILTIN_SCENE_PREFIX, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED,
                                 EXPERIMENT_FILE, S3_SCHEME)
from optimizer.errors import ConfigError, ReflectoptError
from optimizer.kube import objects as kube

ANN_RESULTS = "reflectopt.io/results"
ANN_EXPERIMENT = "reflectopt.io/experiment"
ANN_EXPERIMENT_SHA = "reflectopt.io/experiment-sha256"
LABEL_EXPERIMENT = "reflectopt.io/experiment"
TERMINAL_DEPLOYMENT = {"Complete", "Failed", "ValidationFailed", "Suspended"}
# Ray's message of a job whose entrypoint exited non-zero ("Job entrypoint command failed with exit code 143, ..."),
# which KubeRay copies into the RayJob's status.message
EXIT_CODE_RE = re.compile(r"exit code (\d+)")
SECRET_NAME_RE = re.compile(r"(SECRET|PASSWORD|TOKEN|ACCESS_KEY|CREDENTIAL)", re.IGNORECASE)


# --- names, uploads ------------------------------------------------------------------------------------------

if TYPE_CHECKING:
    from optimizer.experiment import Experiment


def job_name(experiment_name: str, suffix: str | None = None) -> str:
    """`<experiment>-<6 hex>`: a DNS-1035 label of at most 47 characters (KubeRay's RayJob limit)."""
    suffix = suffix or secrets.token_hex(3)
    base = experiment_name if experiment_name[:1].isalpha() else f"x-{experiment_name}"
    base = base[: kube.MAX_RAYJOB_NAME - len(suffix) - 1].rstrip("-")
    return f"{base}-{suffix}"


def _gpu_consistency(exp: Experiment, values: dict, values_label: str) -> None:
    """An experiment that states resources.gpu_per_world must agree with the chart's worlds.perGpu."""
    res = exp.resources
    if "resources" not in exp.model_fields_set or "gpu_per_world" not in res.model_fields_set:
        return
    chart = float(kube.gpu_per_world(values))
    if abs(res.gpu_per_world - chart) > 1e-4:
        per = values["worlds"]["perGpu"]
        raise ConfigError(
            f"resources.gpu_per_world: {res.gpu_per_world} disagrees with the cluster's worlds.perGpu={per} "
            f"({values_label}: REFLECTOPT_GPU_PER_WORLD={chart}); remove resources.gpu_per_world from the experiment "
            f"so the cluster's value applies, or pass the release's --values file")


def _experiment_document(exp: Experiment, results_uri: str) -> str:
    """The experiment as uploaded: its meaning, output pointing at the job's results, resources only if stated."""
    data = exp.model_dump(mode="json", exclude={"resources"})
    if "resources" in exp.model_fields_set:
        data["resources"] = exp.resources.model_dump(mode="json", include=exp.resources.model_fields_set)
    data["output"] = results_uri
    return yaml.safe_dump(data, sort_keys=False)


def _local_scene(exp: Experiment, experiment_path: Path, scene_arg: str | None) -> Path | None:
    """The local scene folder to upload: --scene, or the experiment's own scene when it is a local folder."""
    if scene_arg:
        p = Path(scene_arg).expanduser()
        if not p.is_dir():
            raise ConfigError(f"--scene: {scene_arg} is not a folder; give a folder holding scene.xml")
        return p
    scene = exp.scene  # relative paths were resolved against the experiment's folder when it was loaded
    if scene.startswith((BUILTIN_SCENE_PREFIX, S3_SCHEME)):
        return None
    p = Path(scene)
    if not p.exists():
        raise ConfigError(f"{experiment_path}: scene: {scene} not found; a cluster cannot read local files, so give "
                          f"an existing folder (it is uploaded), builtin:NAME or s3://...")
    return p


def _parse_env(pairs: list[str] | None) -> dict[str, str]:
    env = {}
    for pair in pairs or []:
        key, sep, val = pair.partition("=")
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise ConfigError(f"--env: {pair!r} is not KEY=VALUE; e.g. --env RAY_DEDUP_LOGS=0")
        if SECRET_NAME_RE.search(key):
            raise ConfigError(f"--env: {key} looks like a secret; RayJob specs are not secret, so put it in a Secret "
                              f"and reference it from the chart (s3.credentials.existingSecret or extraEnv valueFrom)")
        env[key] = val
    return env


def _s3_prefix(args, values: dict) -> str:
    prefix = args.s3_prefix or f"s3://{values['s3']['bucket']}/{values['s3']['prefix']}"
    if not prefix.startswith("s3://") or len(prefix) <= len("s3://"):
        raise ConfigError(f"--s3-prefix: {prefix!r} is not an s3:// URI; give s3://BUCKET/PREFIX")
    return prefix.rstrip("/")


def plan_submission(args) -> dict:
    """Everything submit needs, without side effects: the RayJob and the uploads it refers to."""
    from optimizer.experiment import load_experiment, load_experiment_text

    exp_path = Path(args.experiment)
    if str(args.experiment).startswith("s3://"):
        raise ConfigError("EXPERIMENT: give a local experiment file; submit uploads it for you")
    exp = load_experiment(exp_path)
    values = kube.chart_values(args.values or [])
    values_label = ", ".join(args.values) if args.values else "chart defaults"
    _gpu_consistency(exp, values, values_label)
    if args.retries is not None and not args.ephemeral:
        raise ConfigError("--retries: KubeRay retries (backoffLimit) only with --ephemeral; a shared cluster cannot "
                          "be retried into")
    if args.ttl is not None and not args.ephemeral:
        raise ConfigError("--ttl: only with --ephemeral (the shared cluster is not deleted after the job)")
    for opt, val in (("--active-deadline", args.active_deadline), ("--ttl", args.ttl), ("--retries", args.retries)):
        if val is not None and (val < 0 or (opt == "--active-deadline" and val == 0)):
            raise ConfigError(f"{opt}: {val} must be {'positive' if opt == '--active-deadline' else 'zero or more'}")
    name = args.name or job_name(exp.name)
    problems = kube._dns1035_problems(name, kube.MAX_RAYJOB_NAME, "--name")
    if problems:
        raise ConfigError(problems)
    if not kube.DNS1035_RE.match(args.cluster) or len(args.cluster) > kube.MAX_RAYCLUSTER_NAME:
        raise ConfigError(f"--cluster: {args.cluster!r} is not a RayCluster name (DNS-1035 label, at most 53 "
                          f"characters); give the Helm release's cluster name (`kubectl get rayclusters`)")
    prefix = _s3_prefix(args, values)
    from optimizer.store import storage

    job_uri = storage.join(prefix, "jobs", name)
    experiment_uri = storage.join(job_uri, EXPERIMENT_FILE)
    results_uri = storage.join(prefix, "results", name)
    scene_dir = _local_scene(exp, exp_path, args.scene)
    scene_uri = None
    if scene_dir is not None:
        from optimizer.store import assets

        sha = assets.bundle_hash(scene_dir)
        scene_uri = storage.join(prefix, "scenes", sha[:16])
        exp = exp.model_copy(update={"scene": scene_uri, "scene_sha256": sha})
    document = _experiment_document(exp, results_uri)
    uploaded = load_experiment_text(document, experiment_uri)  # what the cluster will read must load
    cluster_spec = kube.raycluster_spec(values, args.cluster) if args.ephemeral else None
    job = kube.build_rayjob(
        name, args.namespace, kube.entrypoint(experiment_uri, results_uri),
        cluster=None if args.ephemeral else args.cluster, cluster_spec=cluster_spec, ttl_seconds=args.ttl,
        active_deadline_seconds=args.active_deadline, backoff_limit=args.retries, env=_parse_env(args.env),
        labels={LABEL_EXPERIMENT: exp.name},
        annotations={ANN_RESULTS: results_uri + "/", ANN_EXPERIMENT: experiment_uri,
                     ANN_EXPERIMENT_SHA: uploaded.sha256()})
    kube.check(job)
    prefix_from = ("--s3-prefix" if args.s3_prefix else
                   f"s3.bucket/s3.prefix of {values_label} (--s3-prefix or --values changes it)")
    return {"job": job, "name": name, "experiment_uri": experiment_uri, "experiment_text": document,
            "results_uri": results_uri + "/", "scene_dir": scene_dir, "scene_uri": scene_uri, "prefix": prefix,
            "prefix_from": prefix_from}


def describe_uploads(plan: dict) -> None:
    """On stderr: the S3 prefix a dry run assumed, and what a real submit would upload there."""
    _say(f"dry run: S3 prefix {plan['prefix']} (from {plan['prefix_from']})")
    if plan["scene_dir"] is not None:
        from optimizer.store import storage

        n = len(storage.list(plan["scene_dir"], recursive=True))
        _say(f"dry run: a real submit would upload the scene {plan['scene_dir']} ({n} files) -> {plan['scene_uri']}")
    _say(f"dry run: a real submit would upload the experiment -> {plan['experiment_uri']}; nothing was uploaded "
         "(--upload does it)")


def upload(plan: dict) -> None:
    from optimizer.store import assets, storage

    if plan["scene_dir"] is not None:
        assets.push_bundle(plan["scene_dir"], plan["scene_uri"])
        _say(f"scene: {plan['scene_dir']} -> {plan['scene_uri']}")
    storage.write_text(plan["experiment_uri"], plan["experiment_text"])
    _say(f"experiment: {plan['experiment_uri']}")


# --- Kubernetes API ------------------------------------------------------------------------------------------


def _say(msg: str) -> None:
    sys.stderr.write(f"reflectopt: {msg}\n")


class Kube:
    """The few API calls reflectopt makes (CustomObjectsApi for RayJobs, CoreV1Api for the submitter's logs)."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None):
        from kubernetes import client, config

        # the client reads $KUBECONFIG once, at import; read it per call instead
        kubeconfig = kubeconfig or os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
        try:
            try:
                config.load_kube_config(config_file=kubeconfig, context=context)
                _, active = config.list_kube_config_contexts(config_file=kubeconfig)
                if context:
                    active = next(c for c in config.list_kube_config_contexts(config_file=kubeconfig)[0]
                                  if c["name"] == context)
                self.default_namespace = (active or {}).get("context", {}).get("namespace") or "default"
            except config.ConfigException:
                if context or not os.environ.get("KUBERNETES_SERVICE_HOST"):
                    raise
                config.load_incluster_config()
                ns_file = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                self.default_namespace = ns_file.read_text().strip() if ns_file.is_file() else "default"
        except (config.ConfigException, OSError, StopIteration) as err:
            raise ReflectoptError(f"kubeconfig: cannot load it ({str(err).splitlines()[0] if str(err) else err}); "
                                  f"set --kubeconfig/--context or KUBECONFIG") from None
        self.custom = client.CustomObjectsApi()
        self.core = client.CoreV1Api()

    def _call(self, what: str, fn, *a, **kw):
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*a, **kw)
        except ApiException as err:
            raise ReflectoptError(_api_error(what, err)) from None
        except Exception as err:  # urllib3 connection errors and the like
            if type(err).__module__.startswith(("urllib3", "kubernetes")):
                raise ReflectoptError(f"{what}: cannot reach the Kubernetes API ({type(err).__name__}: "
                                      f"{str(err).splitlines()[0][:200]})") from None
            raise

    def create_rayjob(self, namespace: str, body: dict) -> dict:
        return self._call(f"create RayJob {body['metadata']['name']}", self.custom.create_namespaced_custom_object,
                          kube.RAY_GROUP, kube.RAY_VERSION, namespace, "rayjobs", body)

    def get_rayjob(self, namespace: str, name: str) -> dict:
        return self._call(f"RayJob {name}", self.custom.get_namespaced_custom_object,
                          kube.RAY_GROUP, kube.RAY_VERSION, namespace, "rayjobs", name)

    def delete_rayjob(self, namespace: str, name: str) -> dict:
        return self._call(f"delete RayJob {name}", self.custom.delete_namespaced_custom_object,
                          kube.RAY_GROUP, kube.RAY_VERSION, namespace, "rayjobs", name,
                          propagation_policy="Foreground")

    def submitter_pods(self, namespace: str, name: str) -> list:
        # K8sJobMode: KubeRay runs `ray job submit --tail` in a batch Job named like the RayJob.
        pods = self._call(f"pods of RayJob {name}", self.core.list_namespaced_pod, namespace,
                          label_selector=f"job-name={name}")
        return sorted(pods.items, key=lambda p: p.metadata.creation_timestamp or 0)

    def pod_log(self, namespace: str, pod: str, follow: bool = False):
        return self._call(f"logs of pod {pod}", self.core.read_namespaced_pod_log, pod, namespace,
                          follow=follow, _preload_content=not follow)


def _api_error(what: str, err) -> str:
    message = ""
    try:
        message = json.loads(err.body or "{}").get("message", "")
    except (ValueError, AttributeError):
        pass
    hint = {
        401: "check your kubeconfig credentials",
        403: "your account lacks RBAC for rayjobs.ray.io; bind k8s/base's rayjob-submitter Role",
        404: "not found; check the name and --namespace (and that the KubeRay operator's CRDs are installed)",
        409: "it already exists; pick another --name",
        422: "the API server rejected the object",
    }.get(err.status, "")
    text = f"{what}: HTTP {err.status} {err.reason or ''}".rstrip()
    if message:
        text += f": {message}"
    return f"{text}; {hint}" if hint else text


# --- status --------------------------------------------------------------------------------------------------


def job_state(obj: dict) -> dict:
    """The parts of a RayJob's status reflectopt reports; `done`/`ok` decide --wait's exit code."""
    st = obj.get("status") or {}
    deployment = st.get("jobDeploymentStatus") or "Pending"
    job_status = st.get("jobStatus") or ""
    done = deployment in TERMINAL_DEPLOYMENT
    ok = done and deployment == "Complete" and job_status == "SUCCEEDED"
    found = EXIT_CODE_RE.search(st.get("message") or "")
    exit_code = int(found.group(1)) if found else None
    # the driver stopped early and kept its checkpoints (Ctrl-C: 130, SIGTERM: 143), or Ray stopped the job
    # (`ray job stop` sends SIGTERM): resumable, not failed
    interrupted = done and not ok and (job_status == "STOPPED" or exit_code in (EXIT_INTERRUPTED, EXIT_TERMINATED))
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    return {"name": (obj.get("metadata") or {}).get("name"), "deployment": deployment, "job": job_status,
            "done": done, "ok": ok, "interrupted": interrupted, "exit_code": exit_code,
            "reason": st.get("reason", ""), "message": st.get("message", ""),
            "cluster": st.get("rayClusterName", ""), "job_id": st.get("jobId", ""),
            "start": st.get("startTime", ""), "end": st.get("endTime", ""), "failed": st.get("failed"),
            "succeeded": st.get("succeeded"), "results": ann.get(ANN_RESULTS, "")}


def state_exit_code(s: dict) -> int:
    """`status`'s (and `submit --wait`'s) exit status for a job state: 0 running or succeeded, the driver's
    own 130 (Ctrl-C) or 143 (SIGTERM, or the job stopped) when it was interrupted, 1 when it failed."""
    if not s["done"] or s["ok"]:
        return EXIT_OK
    if s["interrupted"]:
        return s["exit_code"] if s["exit_code"] in (EXIT_INTERRUPTED, EXIT_TERMINATED) else EXIT_TERMINATED
    return EXIT_FAILURE


def format_state(s: dict) -> str:
    lines = [f"{s['name']}: {s['deployment']}" + (f" (Ray job {s['job']})" if s["job"] else "")]
    if s["interrupted"]:
        how = {EXIT_INTERRUPTED: "exit 130, Ctrl-C", EXIT_TERMINATED: "exit 143, SIGTERM"}.get(s["exit_code"],
                                                                                          "the Ray job was stopped")
        where = f" `reflectopt results ls {s['results']}` names it," if s["results"] else ""
        lines.append(f"  interrupted, not failed ({how}): its checkpoints are kept;{where} `reflectopt resume RUN` "
                     "continues it")
    for key, label in (("cluster", "cluster"), ("job_id", "ray job id"), ("start", "started"), ("end", "ended"),
                       ("reason", "reason"), ("message", "message"), ("results", "results")):
        if s[key]:
            lines.append(f"  {label}: {s[key]}")
    return "\n".join(lines)


def wait_for(api, namespace: str, name: str, timeout_s: float, poll_s: float = 5.0, clock=time.monotonic,
             sleep=time.sleep) -> dict:
    """Poll a RayJob until it is finished or `timeout_s` passes; report each change on stderr."""
    deadline = clock() + timeout_s
    last = None
    while True:
        state = job_state(api.get_rayjob(namespace, name))
        key = (state["deployment"], state["job"])
        if key != last:
            _say(f"{name}: {state['deployment']}" + (f" / {state['job']}" if state["job"] else ""))
            last = key
        if state["done"] or clock() >= deadline:
            return state
        sleep(poll_s)
