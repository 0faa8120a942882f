"""Both shipped configs validate with one schema; mistakes name the field."""

from __future__ import annotations


import pytest
import yaml
from pydantic import ValidationError

from deployments.config import AppConfig

from tests.helpers import ROOT


@pytest.mark.parametrize("name", ["serve_config.yaml", "serve_config.gpu1.yaml", "serve_config.cpu.yaml"])
def test_shipped_configs_validate(name):
    document = yaml.safe_load((ROOT / name).read_text())
    (application,) = document["applications"]
    assert application["import_path"] == "ingress.app:build_app"
    config = AppConfig.model_validate(application["args"])
    assert {m.family for m in config.models} <= {"qwen2-vl", "qwen2.5-vl"}


def test_cpu_default_serves_the_two_tiny_models_on_loopback():
    document = yaml.safe_load((ROOT / "serve_config.cpu.yaml").read_text())
    assert document["http_options"] == {"host": "127.0.0.1", "port": 8000}
    config = AppConfig.model_validate(document["applications"][0]["args"])
    assert [m.name for m in config.models] == ["tiny-qwen2-vl", "tiny-qwen2.5-vl"]
    assert all(m.source.startswith("tiny://") for m in config.models)
    binds = {m.engine_env["VLLM_CPU_OMP_THREADS_BIND"] for m in config.models}
    assert binds == {"0", "1"}  # two engines, two cores


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda c: c["models"][0].update(family="llama"), "family"),
        (lambda c: c["models"][0].update(enigne_args={}), "enigne_args"),
        (lambda c: c["models"][0]["deployment"].update(max_ongoing_requests=0), "max_ongoing_requests"),
        (lambda c: c.update(default_model="nope"), "default_model"),
        (lambda c: c["models"].append(dict(c["models"][0])), "duplicate"),
    ],
)
def test_config_errors_name_the_field(change, field):
    args = yaml.safe_load((ROOT / "serve_config.cpu.yaml").read_text())["applications"][0]["args"]
    change(args)
    with pytest.raises(ValidationError) as caught:
        AppConfig.model_validate(args)
    assert field in str(caught.value)


def _gpu_args() -> dict:
    return yaml.safe_load((ROOT / "serve_config.yaml").read_text())["applications"][0]["args"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda m: m["deployment"].update(autoscaling_config={"max_replicas": 0}), "max_replicas"),
        (lambda m: m["deployment"].update(autoscaling_config={"min_replicas": 3, "max_replicas": 2}), "max_replicas"),
        (lambda m: m["deployment"].update(autoscaling_config={"target_ongoing": 2}), "target_ongoing"),
        (lambda m: m["deployment"].update(num_replicas=1), "num_replicas"),
        (lambda m: m["deployment"].update(max_queued_requests=-2), "max_queued_requests"),
        (lambda m: m["deployment"].update(placement_group_strategy="PACKED"), "placement_group_strategy"),
        (lambda m: m["engine_args"].update(tensor_parallel_size=0), "tensor_parallel_size"),
        (lambda m: m["engine_args"].update(tensor_parallel_size=2), "num_gpus"),
    ],
)
def test_deployment_errors_name_the_field(change, field):
    args = _gpu_args()
    change(args["models"][0])
    with pytest.raises(ValidationError) as caught:
        AppConfig.model_validate(args)
    assert field in str(caught.value)


def test_gpu_config_autoscales_bounds_queues_and_drains():
    config = AppConfig.model_validate(_gpu_args())
    by_name = {m.name: m.serve_options() for m in config.models}
    assert set(by_name) == {"Qwen/Qwen2-VL-2B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct"}
    for options in by_name.values():  # one autoscaled deployment per family
        assert options["autoscaling_config"]["max_replicas"] >= 2 and "num_replicas" not in options
        assert options["max_queued_requests"] > 0
        assert options["graceful_shutdown_timeout_s"] >= 60
    assert by_name["Qwen/Qwen2-VL-2B-Instruct"]["ray_actor_options"]["num_gpus"] == 1


def _commented_model(name: str) -> dict:
    """The commented-out model `name` of serve_config.yaml: its `# - name:` line and the
    indented `#   ...` lines under it (the prose comments around it are not YAML)."""
    lines = (ROOT / "serve_config.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"# - name: {name}")
    block = [lines[start].strip()[2:]]
    for line in lines[start + 1:]:
        if not line.strip().startswith("#   "):
            break
        block.append(line.strip()[2:])
    (model,) = yaml.safe_load("\n".join(block))
    return model


def test_commented_qwen3_vl_block_is_a_valid_model():
    model = _commented_model("Qwen/Qwen3-VL-4B-Instruct")
    args = _gpu_args()
    args["models"].append(model)
    config = AppConfig.model_validate(args).models[-1]
    assert config.family == "qwen3-vl" and config.accepts_images


def test_gpu_config_runs_the_7b_model_tensor_parallel_on_two_gpus():
    config = AppConfig.model_validate(_gpu_args())
    seven_b = next(m for m in config.models if m.name == "Qwen/Qwen2.5-VL-7B-Instruct")
    options = seven_b.serve_options()
    assert seven_b.engine_args["tensor_parallel_size"] == 2
    assert options["placement_group_bundles"] == [{"CPU": 4, "GPU": 1}, {"GPU": 1}]
    assert options["placement_group_strategy"] == "STRICT_PACK"
    assert "num_gpus" not in options["ray_actor_options"]


def test_single_gpu_config_holds_one_model_on_one_gpu():
    document = yaml.safe_load((ROOT / "serve_config.gpu1.yaml").read_text())
    config = AppConfig.model_validate(document["applications"][0]["args"])
    gpus = sum(m.deployment.ray_actor_options.get("num_gpus", 0) * m.engine_args.get("tensor_parallel_size", 1)
               for m in config.models)
    assert gpus == 1
