"""`engine_args` keys are vLLM's AsyncEngineArgs fields; a typo is refused before start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deployments.config import ModelConfig
from deployments.engine_args import check_engine_args, engine_arg_names


def _model(engine_args: dict) -> ModelConfig:
    return ModelConfig.model_validate({"name": "m", "source": "tiny://qwen2-vl", "engine_args": engine_args})


def test_a_typo_names_the_key_and_the_close_match():
    with pytest.raises(ValidationError) as caught:
        _model({"max_modle_len": 4096})
    assert "engine_args.max_modle_len" in str(caught.value)
    assert "did you mean 'max_model_len'" in str(caught.value)


def test_vllm_keys_pass():
    args = {"max_model_len": 4096, "gpu_memory_utilization": 0.5, "limit_mm_per_prompt": {"image": 2},
            "enable_prefix_caching": True, "tensor_parallel_size": 1, "structured_outputs_config": {}}
    assert _model(args).engine_args == args


def test_model_is_refused_since_source_names_the_checkpoint():
    with pytest.raises(ValueError, match="engine_args.model"):
        check_engine_args({"model": "/elsewhere"})


def test_names_follow_the_installed_vllm():
    import dataclasses

    from vllm.engine.arg_utils import AsyncEngineArgs

    assert engine_arg_names() == {f.name for f in dataclasses.fields(AsyncEngineArgs)}
    assert {"max_model_len", "tensor_parallel_size", "limit_mm_per_prompt"} <= engine_arg_names()
