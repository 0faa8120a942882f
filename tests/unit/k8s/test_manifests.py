"""The Kubernetes manifests under k8s/: generated files in step, valid against their schemas.

Offline: Kubernetes' own schemas come from the `kubernetes-validate` package (core/v1
objects, pod templates included); the KubeRay RayService and Prometheus Operator PodMonitor
CRDs are checked against the subsets of their openAPIV3Schema kept in k8s/schemas/.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from deployments.config import AppConfig
from k8s import dashboard, rayservice

K8S = Path(dashboard.__file__).parent
KUBERNETES_VERSION = "1.32"
CRD_SCHEMAS = {
    "RayService": K8S / "schemas" / "rayservice.ray.io-v1.subset.json",
    "PodMonitor": K8S / "schemas" / "podmonitor.monitoring.coreos.com-v1.subset.json",
}


def documents(name: str) -> list[dict]:
    path = K8S / "base" / name if (K8S / "base" / name).is_file() else K8S / name
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def validate(obj: dict) -> None:
    """Against the CRD subset for our CRDs, else Kubernetes' strict schema for the kind."""
    if obj["kind"] in CRD_SCHEMAS:
        schema = json.loads(CRD_SCHEMAS[obj["kind"]].read_text())
        jsonschema.Draft202012Validator(schema).validate(obj)
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_rayservice_yaml_is_generated_from_serve_config():
    assert (K8S / "base" / "rayservice.yaml").read_text() == rayservice.render(rayservice.load_serve_config()), (
        "k8s/base/rayservice.yaml drifted from serve_config.yaml: run python -m k8s.rayservice"
    )


def test_dashboard_files_are_generated_from_dashboard_py():
    assert rayservice.main(["--check"]) == 0
    assert dashboard.main(["--check"]) == 0


def test_serve_config_v2_is_serve_config_yaml_and_a_valid_app_config():
    service = next(d for d in documents("rayservice.yaml") if d["kind"] == "RayService")
    served = yaml.safe_load(service["spec"]["serveConfigV2"])
    assert served == rayservice.load_serve_config()
    AppConfig.model_validate(served["applications"][0]["args"])


@pytest.mark.parametrize(
    "name", ["rayservice.yaml", "podmonitor.yaml", "grafana-dashboard-configmap.yaml"]
)
def test_manifests_validate_against_their_schemas(name: str):
    for obj in documents(name):
        validate(obj)


def test_rayservice_pod_templates_are_valid_kubernetes_pod_templates():
    service = next(d for d in documents("rayservice.yaml") if d["kind"] == "RayService")
    cluster = service["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for i, group in enumerate(groups):
        validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"group-{i}"},
                  "template": group["template"]})


def test_crd_subsets_refuse_a_misspelled_field():
    service = rayservice.rayservice(rayservice.load_serve_config())
    service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplica"] = 4
    with pytest.raises(jsonschema.ValidationError):
        validate(service)
    monitor = documents("podmonitor.yaml")[0]
    monitor["spec"]["podMetricsEndpoints"][0]["interval"] = "15 seconds"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor)


def _containers(group: dict) -> list[dict]:
    return group["template"]["spec"]["containers"]


def test_cluster_shape_ports_secrets_and_probes():
    cluster = rayservice.rayservice(rayservice.load_serve_config())["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == "2.60.0" and cluster["enableInTreeAutoscaling"] is True
    head, workers = cluster["headGroupSpec"], cluster["workerGroupSpecs"]
    assert head["rayStartParams"]["num-gpus"] == "0"
    assert "nvidia.com/gpu" not in _containers(head)[0]["resources"]["limits"]
    ports = {p["name"]: p["containerPort"] for p in _containers(head)[0]["ports"]}
    assert {"serve": 8000, "metrics": 8080, "dashboard": 8265}.items() <= ports.items()
    for group in workers:
        container = _containers(group)[0]
        assert container["resources"]["limits"] == container["resources"]["requests"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"  # the 7B model's two TP workers
        assert container["readinessProbe"]["httpGet"]["path"] == "/-/healthz"
        assert {p["name"] for p in container["ports"]} >= {"serve", "metrics"}
        secrets = [e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e]
        assert secrets and set(secrets) == {rayservice.HUB_TOKEN_SECRET}
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def _model(name: str, deployment: dict, **engine_args: int) -> dict:
    return {"name": name, "family": "qwen2.5-vl", "source": f"modelscope://Qwen/{name}",
            "engine_args": engine_args, "deployment": deployment}


def test_worker_group_fits_the_models_at_their_fewest_and_most_replicas():
    one_gpu = {"ray_actor_options": {"num_cpus": 4, "num_gpus": 1}}
    models = [
        _model("fixed", {"num_replicas": 1, **one_gpu}),
        _model("scaled", {"autoscaling_config": {"min_replicas": 0, "max_replicas": 3}, **one_gpu}),
        _model("tp2", {"autoscaling_config": {"min_replicas": 0, "max_replicas": 2},
                       "ray_actor_options": {"num_cpus": 4}}, tensor_parallel_size=2),
    ]
    config = {"applications": [{"args": {"default_model": "fixed", "models": models}}]}
    # GPUs: at least 1 (fixed), at most 1 + 3 + 2 * 2 = 8; a TP-2 replica needs 2 GPUs on one pod.
    assert rayservice.worker_shape(config) == rayservice.WorkerShape(gpus_per_pod=2, min_pods=1, max_pods=4)
    group = rayservice.rayservice(config)["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    assert (group["minReplicas"], group["maxReplicas"]) == (1, 4)
    assert _containers(group)[0]["resources"]["limits"]["nvidia.com/gpu"] == "2"


def test_podmonitors_scrape_the_named_metrics_port_of_head_and_workers():
    monitors = documents("podmonitor.yaml")
    node_types = {m["spec"]["selector"]["matchLabels"]["ray.io/node-type"] for m in monitors}
    assert node_types == {"head", "worker"}
    for monitor in monitors:
        assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["metrics"]
        assert monitor["spec"]["selector"]["matchLabels"]["ray.io/originated-from-cr-name"] == rayservice.NAME


_SERIES_WITHOUT_MODEL = ("media_fetch", "media_decode", "media_bytes", "media_refusals")


def test_dashboard_has_the_rows_variables_and_filters():
    rendered = json.loads((K8S / "grafana-dashboard.json").read_text())
    rows = [p["title"] for p in rendered["panels"] if p["type"] == "row"]
    assert rows == ["Traffic", "Latency", "Tokens", "Media", "Engine (vLLM)", "Serve replicas and autoscaling"]
    assert {v["name"] for v in rendered["templating"]["list"]} == {"datasource", "model"}
    panels = [p for p in rendered["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in rendered["panels"]}) == len(rendered["panels"])
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            expr = target["expr"]
            if "ray_qvs_" in expr and not any(m in expr for m in _SERIES_WITHOUT_MODEL):
                assert 'model=~"$model"' in expr, expr
            if "ray_vllm_" in expr:
                assert 'model_name=~"$model"' in expr, expr
    configmap = documents("grafana-dashboard-configmap.yaml")[0]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["qwen-vl-serve.json"]) == rendered
