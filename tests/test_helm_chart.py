"""The Helm chart: lint, render, validate against KubeRay v1.7.0's CRD, world sizing, security, schema, docs."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml
from kube_helpers import CHART, CI_VALUES, by_kind, helm, helm_template, pod_templates, run

from optimizer.kube import objects as kube
from optimizer.errors import ConfigError

MULTI = CHART / "ci" / "values.multi-gpu-groups.yaml"
CPU_ONLY = CHART / "ci" / "values.cpu-only.yaml"


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.name if v else "defaults")
def test_helm_lint_strict(values):
    args = [helm(), "lint", "--strict", str(CHART)] + (["-f", str(values)] if values else [])
    out = run(args).stdout
    assert "0 chart(s) failed" in out


def test_ci_values_cover_multi_group_and_cpu_only():
    names = {p.name for p in CI_VALUES}
    assert {"values.multi-gpu-groups.yaml", "values.cpu-only.yaml"} <= names
    multi = yaml.safe_load(MULTI.read_text())
    assert len(multi["gpuWorkerGroups"]) >= 2 and multi["autoscaling"]["enabled"]


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.name if v else "defaults")
def test_rendered_objects_validate_and_match_python_builder(values):
    files = [values] if values else []
    objs = helm_template(*files)
    assert sorted(o["kind"] for o in objs) == ["RayCluster", "ServiceAccount"]
    for obj in objs:
        assert kube.validate(obj) == [], obj["kind"]
    rc = by_kind(objs, "RayCluster")[0]
    vals = kube.chart_values(files)
    # the one source of truth for --ephemeral: the Python builder gives the very spec helm renders
    assert kube.raycluster_spec(vals, rc["metadata"]["name"]) == rc["spec"]
    assert rc["metadata"]["name"] == kube.fullname(vals, "demo")


@pytest.mark.parametrize("values,fraction,cpu", [(None, "0.25", "1"), (MULTI, "0.3333", "2"), (CPU_ONLY, "0", "1")],
                         ids=["defaults", "multi", "cpu-only"])
def test_world_sizing_env_on_every_container(values, fraction, cpu):
    rc = by_kind(helm_template(*([values] if values else [])), "RayCluster")[0]
    groups = pod_templates(rc)
    assert len(groups) >= 2
    for group, tpl in groups:
        env = {e["name"]: e.get("value") for e in tpl["spec"]["containers"][0]["env"]}
        assert env["REFLECTOPT_GPU_PER_WORLD"] == fraction, group
        assert env["REFLECTOPT_CPU_PER_WORLD"] == cpu, group


def test_multi_gpu_groups_resources_selectors_and_autoscaling():
    rc = by_kind(helm_template(MULTI), "RayCluster")[0]
    spec = rc["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["autoscalerOptions"]["idleTimeoutSeconds"] == 120
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert list(groups) == ["h100", "l4", "cpu"]
    h100, l4, cpu = groups["h100"], groups["l4"], groups["cpu"]
    assert (h100["minReplicas"], h100["maxReplicas"], h100["replicas"]) == (1, 8, 1)
    res = h100["template"]["spec"]["containers"][0]["resources"]
    assert res["limits"]["nvidia.com/gpu"] == "8" == res["requests"]["nvidia.com/gpu"]
    # 8 GPUs x 3 worlds x 2 CPUs + 1 for Ray, sized by the chart because cpu was left empty
    assert res["limits"]["cpu"] == "49000m"
    assert l4["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "8"
    assert l4["rayStartParams"] == {"object-store-memory": "4000000000"}
    assert h100["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {t["key"] for t in l4["template"]["spec"]["tolerations"]} == {"nvidia.com/gpu", "spot"}
    assert "nvidia.com/gpu" not in cpu["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert h100["template"]["metadata"]["labels"]["reflectopt.io/pool"] == "h100"
    head = spec["headGroupSpec"]
    assert head["rayStartParams"] == {"num-cpus": "0", "num-gpus": "0"}  # worlds only on workers
    assert head["template"]["spec"]["nodeSelector"] == {"node-pool": "system"}
    assert head["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]


def test_s3_settings_and_credentials_only_by_reference():
    rc = by_kind(helm_template(MULTI), "RayCluster")[0]
    for group, tpl in pod_templates(rc):
        env = {e["name"]: e for e in tpl["spec"]["containers"][0]["env"]}
        assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio.storage.svc:9000"
        assert env["AWS_REGION"]["value"] == env["AWS_DEFAULT_REGION"]["value"] == "eu-west-1"
        for name, key in (("AWS_ACCESS_KEY_ID", "access-key-id"), ("AWS_SECRET_ACCESS_KEY", "secret-access-key")):
            assert "value" not in env[name], group
            assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "reflectopt-s3", "key": key}
    # with no Secret named, no key variables at all (cloud identity through the service account)
    rc, sa = by_kind(helm_template(CPU_ONLY), "RayCluster")[0], by_kind(helm_template(CPU_ONLY), "ServiceAccount")[0]
    for _, tpl in pod_templates(rc):
        names = {e["name"] for e in tpl["spec"]["containers"][0]["env"]}
        assert not names & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"}
        assert tpl["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.name if v else "defaults")
def test_pod_security(values):
    rc = by_kind(helm_template(*([values] if values else [])), "RayCluster")[0]
    contexts = []
    for _, tpl in pod_templates(rc):
        pod = tpl["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (c,) = pod["containers"]
        contexts.append(c["securityContext"])
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert {"/tmp", "/dev/shm"} <= mounts  # Ray's writable places under a read-only root
        assert {v["name"] for v in pod["volumes"]} == {m["name"] for m in c["volumeMounts"]}
    if rc["spec"].get("autoscalerOptions"):
        contexts.append(rc["spec"]["autoscalerOptions"]["securityContext"])
    for sc in contexts:
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}


BAD_VALUES = [
    ({"worlds": {"perGpu": 0}}, "perGpu"),
    ({"worlds": {"perGpu": "4"}}, "perGpu"),
    ({"worlds": {"perGpu": 4, "cpuPerWorld": 1, "perGPU": 2}}, "perGPU"),
    ({"workers": {}}, "workers"),
    ({"image": {"tag": 2}}, "tag"),
    ({"device": "gpu"}, "device"),
    ({"s3": {"credentials": {"secretAccessKey": "AKIA-literal"}}}, "secretAccessKey"),
    ({"extraEnv": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "literal"}]}, "extraEnv"),
    ({"gpuWorkerGroups": [{"name": "gpu", "replicas": 1, "minReplicas": 0, "maxReplicas": 2, "memory": "8Gi"}]},
     "gpus"),
    ({"gpuWorkerGroups": [{"name": "GPU_A", "replicas": 1, "minReplicas": 0, "maxReplicas": 2, "memory": "8Gi",
                           "gpus": 1}]}, "name"),
    ({"head": {"rayStartParams": {"num-cpus": 0}}}, "num-cpus"),
    ({"autoscaling": {"enabled": "yes"}}, "enabled"),
    ({"podSecurity": {"runAsUser": 0}}, "runAsUser"),
]


@pytest.mark.parametrize("override,field", BAD_VALUES, ids=[f for _, f in BAD_VALUES])
def test_schema_rejects_bad_values(tmp_path, override, field):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(override))
    proc = run([helm(), "template", "x", str(CHART), "-f", str(f)], check=False)
    assert proc.returncode != 0
    assert field in proc.stderr and "schema" in proc.stderr
    with pytest.raises(ConfigError) as err:
        kube.chart_values([f])
    assert field in str(err.value)


@pytest.mark.parametrize("override,message", [
    ({"gpuWorkerGroups": [{"name": "gpu", "replicas": 5, "minReplicas": 0, "maxReplicas": 2, "memory": "8Gi",
                           "gpus": 1}]}, "replicas 5 is outside"),
    ({"gpuWorkerGroups": [{"name": "gpu", "replicas": 1, "minReplicas": 3, "maxReplicas": 2, "memory": "8Gi",
                           "gpus": 1}]}, "minReplicas 3 is above maxReplicas 2"),
    ({"cpuWorkers": {"enabled": True, "name": "gpu"}}, "must be unique"),
    ({"gpuWorkerGroups": []}, "nothing could host a world"),
])
def test_chart_fails_on_inconsistent_groups(tmp_path, override, message):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(override))
    proc = run([helm(), "template", "x", str(CHART), "-f", str(f)], check=False)
    assert proc.returncode != 0 and message in proc.stderr
    with pytest.raises(ConfigError, match=re.escape(message)):
        kube.raycluster_spec(kube.chart_values([f]), "x")


@pytest.mark.parametrize("per_gpu,expected", [(1, "1"), (2, "0.5"), (3, "0.3333"), (4, "0.25"), (7, "0.1428"),
                                              (8, "0.125")])
def test_gpu_fraction_matches_calibrate_snippet(tmp_path, per_gpu, expected):
    # the snippet `reflectopt calibrate` prints, pasted as a values file
    f = tmp_path / "calibrated.yaml"
    f.write_text(f"worlds:\n  perGpu: {per_gpu}\n  cpuPerWorld: 1\n")
    rc = by_kind(helm_template(f), "RayCluster")[0]
    env = {e["name"]: e["value"] for e in rc["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["env"]
           if "value" in e}
    assert env["REFLECTOPT_GPU_PER_WORLD"] == expected == kube.gpu_per_world(kube.chart_values([f]))
    assert per_gpu * float(expected) <= 1.0  # per_gpu worlds always fit on one GPU


def test_notes_tell_how_to_submit(tmp_path):
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    (chart / "notes.tpl").write_text((chart / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "zz-notes.yaml").write_text('notes: |\n{{ tpl (.Files.Get "notes.tpl") . | indent 2 }}\n')
    out = run([helm(), "template", "demo", str(chart), "-n", "rf", "-f", str(MULTI),
               "--show-only", "templates/zz-notes.yaml"]).stdout
    notes = yaml.safe_load(out)["notes"]
    assert "reflectopt submit" in notes and "--cluster rf-prod --namespace rf" in notes
    assert "REFLECTOPT_GPU_PER_WORLD=0.3333" in notes
    assert "24 worlds per pod" in notes  # 8 GPUs x 3 worlds


DOCUMENTED_LISTS = {"gpuWorkerGroups"}  # lists whose items' keys are chart values (tolerations etc. are data)


def _leaf_paths(schema: dict, values, root: dict, path=()):
    """(path, key) of every value the chart reads: keys whose schema is not a nested object of named properties."""
    def resolve(s):
        while "$ref" in s:
            s = root["$defs"][s["$ref"].split("/")[-1]]
        return s
    s = resolve(schema)
    if isinstance(values, dict) and "properties" in s:
        for key, val in values.items():
            sub = resolve(s["properties"].get(key, {}))
            if "properties" in sub and isinstance(val, dict):
                yield from _leaf_paths(sub, val, root, path + (key,))
            elif key in DOCUMENTED_LISTS and val:
                yield path + (key,), key
                yield from _leaf_paths(sub["items"], val[0], root, path + (key, 0))
            else:
                yield path + (key,), key


def test_every_value_documented():
    text = (CHART / "values.yaml").read_text()
    lines = text.splitlines()
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load(text)
    cursor = 0
    undocumented = []
    for path, key in _leaf_paths(schema, values, schema):
        pat = re.compile(rf"^\s*(- )?(# -- .*)?{re.escape(key)}:")
        for i in range(cursor, len(lines)):
            if pat.match(lines[i]):
                cursor = i + 1
                j = i - 1
                while j >= 0 and lines[j].strip().startswith("#") and not lines[j].strip().startswith("# --"):
                    j -= 1
                doc = lines[j].strip() if j >= 0 else ""
                if not (doc.startswith(("# --", "- # --"))):
                    undocumented.append(".".join(map(str, path)))
                break
        else:
            undocumented.append(".".join(map(str, path)) + " (not found)")
    assert undocumented == []
    assert len(list(_leaf_paths(schema, values, schema))) > 40
