"""`reflectopt submit | status | logs | cancel`: experiments as KubeRay RayJobs (see optimizer.kube.submit)."""

from __future__ import annotations

import argparse
import json
import sys

from optimizer.constants import EXIT_FAILURE, EXIT_OK
from optimizer.errors import ConfigError, ReflectoptError
from optimizer.kube import objects as kube
from optimizer.kube import submit
from optimizer.kube.submit import (Kube, describe_uploads, format_state, job_state, plan_submission, state_exit_code,
                                   upload, wait_for)

_say = submit._say


# --- commands ------------------------------------------------------------------------------------------------


def cmd_submit(args) -> int:
    plan = plan_submission(args)
    job = plan["job"]
    if args.dry_run:
        if args.upload:
            upload(plan)
        else:
            describe_uploads(plan)
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
    return state_exit_code(state)


def cmd_status(args) -> int:
    api = Kube(args.kubeconfig, args.context)
    ns = args.namespace or api.default_namespace
    state = job_state(api.get_rayjob(ns, args.job))
    if args.json:
        sys.stdout.write(json.dumps(state, indent=1, sort_keys=True) + "\n")
    else:
        sys.stdout.write(format_state(state) + "\n")
    return state_exit_code(state)


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


def register(subparsers) -> None:
    p = subparsers.add_parser("submit", help="upload an experiment and run it on Kubernetes as a RayJob",
                              description=submit.__doc__.split("\n\n")[1])
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

    p = subparsers.add_parser("status", help="state of a submitted RayJob (exit 1 if it failed, 130/143 if its driver "
                                             "was interrupted: resumable)")
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
