"""GitOps: kustomize overlays build and validate; Argo CD Applications survive the autoscaler; least privilege."""

from __future__ import annotations

import pytest
import yaml
from kube_helpers import REPO, by_kind, docs, helm_template, need, run

from optimizer.kube import objects as kube

K8S = REPO / "k8s"
OVERLAYS = {"cpu-dev": "reflectopt-dev", "gpu-prod": "reflectopt"}


def kustomize(path) -> list[dict]:
    kubectl = need("kubectl", "kubectl with kustomize is needed to build k8s/ overlays")
    return docs(run([kubectl, "kustomize", str(path)]).stdout)


@pytest.mark.parametrize("overlay", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_kustomize_builds_and_every_object_validates(overlay):
    objs = kustomize(K8S / overlay)
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == ["Namespace", "RayJob", "Role", "RoleBinding", "ServiceAccount"]
    for obj in objs:
        assert kube.validate(obj) == [], (obj["kind"], kube.validate(obj))


@pytest.mark.parametrize("overlay,namespace", OVERLAYS.items())
def test_overlay_namespaces_are_consistent(overlay, namespace):
    objs = kustomize(K8S / "overlays" / overlay)
    assert by_kind(objs, "Namespace")[0]["metadata"]["name"] == namespace
    for obj in objs:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace, obj["kind"]
    (binding,) = by_kind(objs, "RoleBinding")
    assert binding["subjects"][0]["namespace"] == namespace
    (job,) = by_kind(objs, "RayJob")
    # the overlay's RayJob targets the cluster its Helm values create
    values = yaml.safe_load((K8S / "overlays" / overlay / f"values.{overlay}.yaml").read_text())
    assert job["spec"]["clusterSelector"]["ray.io/cluster"] == values["fullnameOverride"]


def test_role_is_least_privilege():
    (role,) = by_kind(kustomize(K8S / "base"), "Role")
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    assert ("ray.io", "rayjobs", "create") in granted and ("", "pods/log", "get") in granted
    assert not any("*" in item for item in granted)
    assert not any(r in ("secrets", "pods/exec", "rayclusters/status") for _, r, _ in granted)
    assert not any(r == "rayclusters" and v in ("create", "update", "patch", "delete") for _, r, v in granted)
    # exactly what `reflectopt submit|status|logs|cancel` calls
    assert {v for g, r, v in granted if r == "rayjobs"} == {"create", "get", "list", "watch", "delete"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_helm_values_render_valid_clusters(overlay):
    values = K8S / "overlays" / overlay / f"values.{overlay}.yaml"
    objs = helm_template(values, release="reflectopt", namespace=OVERLAYS[overlay])
    (rc,) = by_kind(objs, "RayCluster")
    assert kube.validate(rc) == []
    assert rc["metadata"]["name"] == yaml.safe_load(values.read_text())["fullnameOverride"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_argocd_applications_survive_autoscaler(overlay):
    apps = docs((K8S / "argocd" / f"application.{overlay}.yaml").read_text())
    assert [a["kind"] for a in apps] == ["Application", "Application"]
    cluster_app, jobs_app = apps
    for app in apps:
        assert app["apiVersion"] == "argoproj.io/v1alpha1"
        opts = app["spec"]["syncPolicy"]["syncOptions"]
        assert "ServerSideApply=true" in opts and "RespectIgnoreDifferences=true" in opts
        assert app["spec"]["destination"]["namespace"] == OVERLAYS[overlay]
    ignored = cluster_app["spec"]["ignoreDifferences"]
    assert {"group": "ray.io", "kind": "RayCluster",
            "jqPathExpressions": [".spec.workerGroupSpecs[].replicas"]} in ignored
    chart_src, values_src = cluster_app["spec"]["sources"]
    assert chart_src["path"] == "helm/reflectopt"
    for f in chart_src["helm"]["valueFiles"]:
        assert (REPO / f.replace("$values/", "")).is_file(), f
    assert values_src["ref"] == "values"
    assert (REPO / jobs_app["spec"]["source"]["path"] / "kustomization.yaml").is_file()


def test_example_rayjob_matches_what_submit_prints():
    (job,) = by_kind(kustomize(K8S / "base"), "RayJob")
    ann = job["metadata"]["annotations"]
    assert job["spec"]["entrypoint"] == kube.entrypoint(ann["reflectopt.io/experiment"],
                                                        ann["reflectopt.io/results"].rstrip("/"))
