"""Tensor parallelism: the operator writes one number, the replica gets its placement group."""

from __future__ import annotations

import json

import pytest

from deployments.config import ModelConfig
from deployments.placement import (
    TensorParallelError,
    check_checkpoint_tensor_parallel,
    check_tensor_parallel,
    engine_executor_backend,
    placement_options,
)

QWEN25_VL_7B = {  # the heads of Qwen/Qwen2.5-VL-7B-Instruct's config.json
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vision_config": {"num_heads": 16},
}


def test_one_device_needs_no_placement_group():
    assert placement_options({}, {"num_cpus": 4, "num_gpus": 1}) == {}
    assert placement_options({"tensor_parallel_size": 1}, {"num_gpus": 1}) == {}
    assert engine_executor_backend({"tensor_parallel_size": 1}) is None


@pytest.mark.parametrize("size", [2, 4])
def test_tensor_parallel_gets_one_gpu_bundle_per_worker(size):
    options = placement_options({"tensor_parallel_size": size}, {"num_cpus": 4})
    assert options["placement_group_strategy"] == "STRICT_PACK"
    bundles = options["placement_group_bundles"]
    assert bundles == [{"CPU": 4, "GPU": 1}] + [{"GPU": 1}] * (size - 1)
    assert sum(b.get("GPU", 0) for b in bundles) == size
    assert engine_executor_backend({"tensor_parallel_size": size}) == "ray"


def test_bundle_zero_carries_the_replica_actor_resources():
    options = placement_options(
        {"tensor_parallel_size": 2},
        {"num_cpus": 2, "memory": 1024, "resources": {"node-a": 0.01}},
        strategy="PACK",
    )
    assert options == {
        "placement_group_bundles": [{"CPU": 2, "memory": 1024, "node-a": 0.01, "GPU": 1}, {"GPU": 1}],
        "placement_group_strategy": "PACK",
    }


def test_pipeline_parallel_multiplies_the_world_size():
    options = placement_options({"tensor_parallel_size": 2, "pipeline_parallel_size": 2}, {})
    assert len(options["placement_group_bundles"]) == 4


def test_cpu_workers_reserve_cores_and_run_as_processes():
    options = placement_options({"tensor_parallel_size": 2}, {"num_cpus": 0.5}, {"CPU": 1})
    assert options["placement_group_bundles"] == [{"CPU": 1.5}, {"CPU": 1}]
    assert engine_executor_backend({"tensor_parallel_size": 2}, {"CPU": 1}) == "mp"
    explicit = {"tensor_parallel_size": 2, "distributed_executor_backend": "mp"}
    assert engine_executor_backend(explicit, {"GPU": 1}) == "mp"


def test_replica_gpus_with_tensor_parallel_is_refused():
    with pytest.raises(TensorParallelError, match="ray_actor_options.num_gpus"):
        placement_options({"tensor_parallel_size": 2}, {"num_gpus": 1})


@pytest.mark.parametrize("size", [1, 2, 4])
def test_qwen25_vl_7b_splits_two_and_four_ways(size):
    check_tensor_parallel(QWEN25_VL_7B, size)


@pytest.mark.parametrize(("size", "problem"), [(3, "28 attention heads"), (8, "28 attention heads")])
def test_heads_not_divisible_are_rejected_early(size, problem):
    with pytest.raises(TensorParallelError, match=problem) as caught:
        check_tensor_parallel(QWEN25_VL_7B, size)
    assert "tensor_parallel_size" in str(caught.value)


def test_kv_heads_and_vision_heads_are_checked():
    with pytest.raises(TensorParallelError, match="KV heads"):
        check_tensor_parallel({"num_attention_heads": 12, "num_key_value_heads": 3}, 2)
    with pytest.raises(TensorParallelError, match="vision tower"):
        check_tensor_parallel({"num_attention_heads": 4, "vision_config": {"num_heads": 3}}, 2)
    # KV heads fewer than the size are replicated, as vLLM does
    check_tensor_parallel({"num_attention_heads": 4, "num_key_value_heads": 1}, 4)


def _model(**changes) -> dict:
    model = {"name": "m", "family": "qwen2.5-vl", "source": "modelscope://Qwen/Qwen2.5-VL-7B-Instruct"}
    return {**model, **changes}


def test_model_config_derives_the_serve_options():
    config = ModelConfig.model_validate(
        _model(engine_args={"tensor_parallel_size": 2}, deployment={"ray_actor_options": {"num_cpus": 4}})
    )
    options = config.serve_options()
    assert options["placement_group_bundles"] == [{"CPU": 4, "GPU": 1}, {"GPU": 1}]
    assert options["placement_group_strategy"] == "STRICT_PACK"
    assert options["ray_actor_options"] == {"num_cpus": 4}
    assert options["graceful_shutdown_timeout_s"] > 20  # longer than Ray's default


def test_local_checkpoint_is_checked_at_build_time(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(QWEN25_VL_7B))
    with pytest.raises(ValueError, match="28 attention heads are not divisible by 3"):
        ModelConfig.model_validate(_model(source=str(tmp_path), engine_args={"tensor_parallel_size": 3}))
    ModelConfig.model_validate(_model(source=str(tmp_path), engine_args={"tensor_parallel_size": 2}))
    check_checkpoint_tensor_parallel(tmp_path / "missing", {"tensor_parallel_size": 3})  # no config: later


@pytest.mark.parametrize("bad", [0, -1, "2", 1.5, True])
def test_tensor_parallel_size_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="engine_args.tensor_parallel_size"):
        ModelConfig.model_validate(_model(engine_args={"tensor_parallel_size": bad}))
