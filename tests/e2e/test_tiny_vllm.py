"""The tiny checkpoints in the real vLLM CPU engine, compared with transformers.

One `vllm.LLM` per VL family, one at a time (about 20-30 s to start, 3 GB each on CPU). The
engines run in float32 so that vLLM's greedy tokens can be compared with transformers'
exactly; the served configuration (bfloat16, "auto") is covered by test_chat_vision.py.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from deployments.checkpoints.tiny import resolve_tiny
from tests.e2e.offline_engine import chat_prompt, greedy
from tests.helpers import random_image

pytestmark = pytest.mark.e2e

MAX_TOKENS = 12
# What vLLM 0.32 wants next to Qwen2.5-VL video frames (its own dummy inputs use this form);
# `fps` sets the video's time positions (second_per_grid_ts = temporal_patch_size / fps).
VIDEO_METADATA = {
    "total_num_frames": 4,
    "fps": 2.0,
    "duration": 2.0,
    "frames_indices": [0, 1, 2, 3],
    "video_backend": "opencv",
    "do_sample_frames": False,  # the frames given are the frames to use
}


@pytest.fixture(scope="module", params=["qwen2-vl", "qwen2.5-vl"])
def engine(request: pytest.FixtureRequest, tiny_cache) -> Iterator[tuple[str, Any, Any]]:
    """(family, vllm.LLM, transformers processor); the engine is shut down after use."""
    for key, value in {
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_HOST_IP": "127.0.0.1",
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
    }.items():
        os.environ.setdefault(key, value)
    from transformers import AutoProcessor
    from vllm import LLM

    family = request.param
    path = str(resolve_tiny(f"tiny://{family}"))
    llm = LLM(
        model=path,
        enforce_eager=True,
        max_model_len=4096,
        dtype="float32",
        seed=0,
        limit_mm_per_prompt={"image": 2, "video": 1},
    )
    try:
        yield family, llm, AutoProcessor.from_pretrained(path)
    finally:
        llm.llm_engine.engine_core.shutdown()
        del llm
        gc.collect()


@pytest.mark.parametrize("size", [(64, 64), (200, 150)])  # 150x200 spans several 112 px windows
def test_image_prompt_matches_hf_processor(engine, size):
    family, llm, processor = engine
    image = random_image(*size)
    text = chat_prompt(processor, "image", "Describe this image.")
    output = greedy(llm, {"prompt": text, "multi_modal_data": {"image": [image]}}, MAX_TOKENS)

    expected = processor(text=[text], images=[image], return_tensors="np")["input_ids"][0].tolist()
    assert len(output.prompt_token_ids) == len(expected)
    assert list(output.prompt_token_ids) == expected
    assert len(output.outputs[0].token_ids) == MAX_TOKENS


def test_greedy_tokens_equal_transformers(engine):
    """Same weights, same input, float32 on both sides: the same greedy continuation."""
    import torch
    from transformers import AutoModelForImageTextToText

    family, llm, processor = engine
    image = random_image(64, 64, seed=1)
    text = chat_prompt(processor, "image", "What is in the picture?")
    vllm_tokens = list(
        greedy(llm, {"prompt": text, "multi_modal_data": {"image": [image]}}, MAX_TOKENS).outputs[0].token_ids
    )

    path = llm.llm_engine.model_config.model
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval()
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=MAX_TOKENS, do_sample=False)
    hf_tokens = generated[0, inputs["input_ids"].shape[1] :].tolist()
    # transformers stops at an eos; vLLM ignored eos: compare the common prefix.
    assert hf_tokens and vllm_tokens[: len(hf_tokens)] == hf_tokens


def test_video_prompt_matches_hf_processor(engine):
    family, llm, processor = engine
    frames = np.random.default_rng(2).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    text = chat_prompt(processor, "video", "What happens?")
    hf_kwargs: dict[str, Any] = {}
    if family == "qwen2.5-vl":
        # Qwen2.5-VL needs each video's metadata: vLLM rejects bare frames for it.
        video: Any = (frames, VIDEO_METADATA)
        metadata = {k: v for k, v in VIDEO_METADATA.items() if k != "do_sample_frames"}
        hf_kwargs["video_metadata"] = [metadata]
    else:
        video = frames
    output = greedy(llm, {"prompt": text, "multi_modal_data": {"video": [video]}}, MAX_TOKENS)

    inputs = processor(text=[text], videos=[frames], return_tensors="np", **hf_kwargs)
    assert inputs["video_grid_thw"].tolist() == [[2, 4, 4]]  # 4 frames -> 2 temporal patches
    assert list(output.prompt_token_ids) == inputs["input_ids"][0].tolist()
    assert len(output.outputs[0].token_ids) == MAX_TOKENS



def test_image_arrays_give_what_transformers_gives_for_the_image(engine):
    """The model deployment hands vLLM the RGB (H, W, 3) uint8 arrays the ingress made (read
    only, as they arrive from the handle), min/max_pixels pinned to their area
    (deployments/server.py): the HF processor's prompt tokens, and transformers' greedy tokens."""
    import torch
    from transformers import AutoModelForImageTextToText

    family, llm, processor = engine
    image = random_image(112, 84, seed=3)  # a new image: nothing of it in vLLM's caches
    array = np.asarray(image)
    assert not array.flags.writeable
    text = chat_prompt(processor, "image", "Describe this image.")
    pinned = {"min_pixels": 112 * 84, "max_pixels": 112 * 84}
    output = greedy(
        llm, {"prompt": text, "multi_modal_data": {"image": [array]}, "mm_processor_kwargs": pinned}, MAX_TOKENS
    )
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    assert list(output.prompt_token_ids) == inputs["input_ids"][0].tolist()
    model = AutoModelForImageTextToText.from_pretrained(llm.llm_engine.model_config.model, dtype=torch.float32).eval()
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=MAX_TOKENS, do_sample=False)
    hf_tokens = generated[0, inputs["input_ids"].shape[1] :].tolist()
    assert hf_tokens and list(output.outputs[0].token_ids)[: len(hf_tokens)] == hf_tokens
