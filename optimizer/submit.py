"""`reflectopt submit|status|logs|cancel`: run experiments on Kubernetes as KubeRay RayJobs.

submit: load the experiment, upload it (and a local scene folder) to S3, build a RayJob whose entrypoint is
`reflectopt run s3://.../experiment.yaml --output s3://.../results/JOB`, validate it (CRD schema + KubeRay's own rules)
and create it, or print it with --dry-run. The RayJob targets the Helm-deployed RayCluster (clusterSelector) or, with
--ephemeral, brings its own rayClusterSpec built from the same chart values (optimizer/kube.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
import time
from pathlib import Path

import yaml

from optimizer import kube
from optimizer.constants import EXIT_FAILURE, EXIT_OK, EXPERIMENT_FILE
from optimizer.errors import ConfigError, ReflectoptError

ANN_RESULTS = "reflectopt.io/results"
ANN_EXPERIMENT = "reflectopt.io/experiment"
ANN_EXPERIMENT_SHA = "reflectopt.io/experiment-sha256"
LABEL_EXPERIMENT = "reflectopt.io/experiment"
TERMINAL_DEPLOYMENT = {"Complete", "Failed", "ValidationFailed", "Suspended"}
SECRET_NAME_RE = re.compile(r"(SECRET|PASSWORD|TOKEN|ACCESS_KEY|CREDENTIAL)", re.IGNORECASE)


# --- names, uploads ------------------------------------------------------------------------------------------


def job_name(experiment_name: str, suffix: str | None = None) -> str:
    """`<experiment>-<6 hex>`: a DNS-1035 label of at most 47 characters (KubeRay's RayJob limit)."""
    suffix = suffix or secrets.token_hex(3)
    base = experiment_name if experiment_name[:1].isalpha() else f"x-{experiment_name}"
    base = base[: kube.MAX_RAYJOB_NAME - len(suffix) - 1].rstrip("-")
    return f"{base}-{suffix}"


def _gpu_consistency(exp, values: dict, values_label: str) -> None:
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


def _experiment_document(exp, results_uri: str) -> str:
    """The experiment as uploaded: its meaning, output pointing at the job's results, resources only if stated."""
    data = exp.model_dump(mode="json", exclude={"resources"})
    if "resources" in exp.model_fields_set:
        data["resources"] = exp.resources.model_dump(mode="json", include=exp.resources.model_fields_set)
    data["output"] = results_uri
    return yaml.safe_dump(data, sort_keys=False)


def _local_scene(exp, experiment_path: Path, scene_arg: str | None) -> Path | None:
    """The local scene folder to upload: --scene, or the experiment's own scene when it is a local folder."""
    if scene_arg:
        p = Path(scene_arg).expanduser()
        if not p.is_dir():
            raise ConfigError(f"--scene: {scene_arg} is not a folder; give a folder holding scene.xml")
        return p
    scene = exp.scene
    if scene.startswith(("builtin:", "s3://")):
        return None
    p = Path(scene).expanduser()
    if not p.is_absolute():
        p = experiment_path.parent / p
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
    from optimizer.config import load_experiment, load_experiment_text

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
    from optimizer import storage

    job_uri = storage.join(prefix, "jobs", name)
    experiment_uri = storage.join(job_uri, EXPERIMENT_FILE)
    results_uri = storage.join(prefix, "results", name)
    scene_dir = _local_scene(exp, exp_path, args.scene)
    scene_uri = None
    if scene_dir is not None:
        from optimizer import assets

        sha = assets.bundle_hash(scene_dir)
        scene_uri = storage.join(prefix, "scenes", sha[:16])
        exp.scene, exp.scene_sha256 = scene_uri, sha
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
    return {"job": job, "name": name, "experiment_uri": experiment_uri, "experiment_text": document,
            "results_uri": results_uri + "/", "scene_dir": scene_dir, "scene_uri": scene_uri}


def upload(plan: dict) -> None:
    from optimizer import assets, storage

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
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    return {"name": (obj.get("metadata") or {}).get("name"), "deployment": deployment, "job": job_status,
            "done": done, "ok": ok, "reason": st.get("reason", ""), "message": st.get("message", ""),
            "cluster": st.get("rayClusterName", ""), "job_id": st.get("jobId", ""),
            "start": st.get("startTime", ""), "end": st.get("endTime", ""), "failed": st.get("failed"),
            "succeeded": st.get("succeeded"), "results": ann.get(ANN_RESULTS, "")}


def format_state(s: dict) -> str:
    lines = [f"{s['name']}: {s['deployment']}" + (f" (Ray job {s['job']})" if s["job"] else "")]
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


# --- commands ------------------------------------------------------------------------------------------------


def cmd_submit(args) -> int:
    plan = plan_submission(args)
    job = plan["job"]
    if args.dry_run:
        if args.upload:
            upload(plan)
        sys.stdout.write(kube.to_yaml(job))
        return EXIT_OK
    if args.upload is False:
        raise ConfigError("--no-upload: only with --dry-run (a sent RayJob needs its experiment in S3)")
    api = Kube(args.kubeconfig, args.context)
    namespace = args.namespace or api.default_namespace
    job["metadata"]["namespace"] = namespace
    upload(plan)
    api.create_rayjob(namespace, job)
    _say(f"RayJob {plan['name']} created in namespace {namespace}; results will be under {plan['results_uri']}")
    if not args.wait:
        sys.stdout.write(f"{plan['name']}\n")
        return EXIT_OK
    state = wait_for(api, namespace, plan["name"], args.timeout, args.poll)
    sys.stdout.write(format_state(state) + "\n")
    if state["ok"]:
        sys.stdout.write(f"results: {plan['results_uri']}\n")
        return EXIT_OK
    if not state["done"]:
        _say(f"{plan['name']} is still {state['deployment']} after {args.timeout:g} s; follow it with "
             f"`reflectopt status {plan['name']} -n {namespace}`")
    return EXIT_FAILURE


def cmd_status(args) -> int:
    api = Kube(args.kubeconfig, args.context)
    ns = args.namespace or api.default_namespace
    state = job_state(api.get_rayjob(ns, args.job))
    if args.json:
        sys.stdout.write(json.dumps(state, indent=1, sort_keys=True) + "\n")
    else:
        sys.stdout.write(format_state(state) + "\n")
    return EXIT_OK if not state["done"] or state["ok"] else EXIT_FAILURE


def cmd_logs(args) -> int:
    api = Kube(args.kubeconfig, args.context)
    ns = args.namespace or api.default_namespace
    api.get_rayjob(ns, args.job)  # a clear "not found" first
    pods = api.submitter_pods(ns, args.job)
    if not pods:
        raise ReflectoptError(f"RayJob {args.job}: no submitter pod yet (the cluster may still be starting); "
                              f"see `reflectopt status {args.job}`")
    pod = pods[-1].metadata.name
    if args.follow:
        stream = api.pod_log(ns, pod, follow=True)
        for chunk in stream.stream():
            sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()
    else:
        sys.stdout.write(api.pod_log(ns, pod))
    return EXIT_OK


def cmd_cancel(args) -> int:
    api = Kube(args.kubeconfig, args.context)
    ns = args.namespace or api.default_namespace
    api.delete_rayjob(ns, args.job)
    _say(f"RayJob {args.job} deleted in namespace {ns} (KubeRay stops the Ray job; an ephemeral cluster goes too)")
    return EXIT_OK


def _kube_options(p) -> None:
    p.add_argument("-n", "--namespace", help="Kubernetes namespace (default: the kubeconfig context's)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config; in a pod, "
                                        "its service account)")
    p.add_argument("--context", help="kubeconfig context")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def register_commands(subparsers) -> None:
    p = subparsers.add_parser("submit", help="upload an experiment and run it on Kubernetes as a RayJob",
                              description=__doc__.split("\n\n")[1])
    p.add_argument("experiment", metavar="EXPERIMENT", help="local experiment YAML")
    p.add_argument("--cluster", required=True, metavar="NAME",
                   help="RayCluster of the Helm release (with --ephemeral: the release whose settings to reuse)")
    _kube_options(p)
    p.add_argument("--values", action="append", metavar="FILE",
                   help="the release's Helm values file(s), for the S3 prefix, world sizing and --ephemeral")
    p.add_argument("--scene", metavar="DIR", help="local scene folder to upload (default: the experiment's scene "
                                                  "when it is a local folder)")
    p.add_argument("--s3-prefix", metavar="URI", help="s3://BUCKET/PREFIX for inputs and results "
                                                      "(default: the values' s3.bucket/s3.prefix)")
    p.add_argument("--name", help="RayJob name (default: EXPERIMENT-NAME-<6 hex>; at most 47 characters)")
    p.add_argument("--ephemeral", action="store_true",
                   help="bring a cluster built from the chart values; deleted after the job")
    p.add_argument("--ttl", type=_int, metavar="S",
                   help="--ephemeral: seconds the finished cluster is kept (default 600)")
    p.add_argument("--active-deadline", type=_int, metavar="S",
                   help="fail the job after this many seconds (activeDeadlineSeconds)")
    p.add_argument("--retries", type=_int, metavar="N", help="--ephemeral: retries on a fresh cluster "
                                                                      "(backoffLimit)")
    p.add_argument("--env", action="append", metavar="KEY=VALUE", help="plain environment variable for the job")
    p.add_argument("--dry-run", action="store_true", help="print the RayJob YAML; send nothing")
    p.add_argument("--upload", action=argparse.BooleanOptionalAction, default=None,
                   help="with --dry-run: upload the experiment and scene anyway (for GitOps); default no")
    p.add_argument("--wait", action="store_true", help="wait; exit 0 only if the job succeeded")
    p.add_argument("--timeout", type=float, default=24 * 3600, metavar="S", help="--wait limit (default 1 day)")
    p.add_argument("--poll", type=float, default=10.0, metavar="S", help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_submit)

    p = subparsers.add_parser("status", help="state of a submitted RayJob (exit 1 if it failed)")
    p.add_argument("job", metavar="JOB")
    _kube_options(p)
    p.add_argument("--json", action="store_true", help="machine-readable")
    p.set_defaults(handler=cmd_status)

    p = subparsers.add_parser("logs", help="the job's output (its KubeRay submitter pod's log)")
    p.add_argument("job", metavar="JOB")
    _kube_options(p)
    p.add_argument("-f", "--follow", action="store_true", help="keep streaming")
    p.set_defaults(handler=cmd_logs)

    p = subparsers.add_parser("cancel", help="stop a RayJob and delete it")
    p.add_argument("job", metavar="JOB")
    _kube_options(p)
    p.set_defaults(handler=cmd_cancel)
