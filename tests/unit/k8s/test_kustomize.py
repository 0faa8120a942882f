"""Per-cluster settings without editing Python: the kustomize overlay renders valid manifests.

k8s/base is the generated base; k8s/overlays/example sets the image registry, the namespace,
the storage class and the model cache size. Rendered with `kubectl kustomize` (offline)
when kubectl is installed; the overlay's references to the base are checked either way.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from k8s import rayservice
from tests.unit.k8s.test_manifests import K8S, validate

OVERLAY = K8S / "overlays" / "example"


def _kustomization(path) -> dict:  # noqa: ANN001 - a pathlib.Path
    return yaml.safe_load((path / "kustomization.yaml").read_text())


def test_the_overlay_names_what_the_base_has():
    base, overlay = _kustomization(K8S / "base"), _kustomization(OVERLAY)
    assert all((K8S / "base" / name).is_file() for name in base["resources"] + base["configurations"])
    assert overlay["resources"] == ["../../base"]
    assert [image["name"] for image in overlay["images"]] == [rayservice.IMAGE_NAME]
    assert rayservice.IMAGE.startswith(rayservice.IMAGE_NAME + ":")
    (patch,) = overlay["patches"]
    assert patch["target"] == {"kind": "PersistentVolumeClaim", "name": rayservice.MODEL_CACHE_CLAIM}
    paths = {op["path"] for op in yaml.safe_load(patch["patch"])}
    assert paths == {"/spec/storageClassName", "/spec/resources/requests/storage"}


def test_kuberay_ignored_fields_are_not_set():
    spec = rayservice.rayservice(rayservice.load_serve_config())["spec"]
    assert not {"serviceUnhealthySecondThreshold", "deploymentUnhealthySecondThreshold"} & set(spec)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_renders_the_overlay_into_valid_manifests():
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(OVERLAY)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    overlay = _kustomization(OVERLAY)
    image = overlay["images"][0]
    assert {obj["kind"] for obj in objects} == {"PersistentVolumeClaim", "RayService", "PodMonitor"}
    for obj in objects:
        assert obj["metadata"]["namespace"] == overlay["namespace"]
        validate(obj)
    claim = next(obj for obj in objects if obj["kind"] == "PersistentVolumeClaim")
    assert claim["spec"]["storageClassName"] == "nfs-client"
    assert claim["spec"]["resources"]["requests"]["storage"] == "200Gi"
    cluster = next(obj for obj in objects if obj["kind"] == "RayService")["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    images = {c["image"] for group in groups for c in group["template"]["spec"]["containers"]}
    assert images == {f"{image['newName']}:{image['newTag']}"}
