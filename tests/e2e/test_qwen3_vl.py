"""Qwen3-VL end to end: the tiny checkpoint in the real vLLM CPU engine, then served.

First the engine alone (one `vllm.LLM`, float32, compared with transformers as in
test_tiny_vllm.py): prompt tokens equal the HF processor's for images and for videos (whose
prompt carries Qwen3-VL's frame timestamps, computed from the metadata the ingress sends),
and greedy tokens equal transformers'. Then a one-model application of its own (real Ray
Serve, the `openai` client over loopback): an image and a video answered, the prompt's size
equal to what qwen-vl-utils' factor-32 resize gives.

The served tests start a Ray of their own (`own_ray`), so they run first; the engine tests
then run with that Ray gone.
"""

from __future__ import annotations

import base64
import gc
import io
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import openai
import pytest
from PIL import Image

from deployments.checkpoints.tiny import resolve_tiny
from tests.e2e.side_apps import side_app_args, side_model
from tests.e2e.offline_engine import chat_prompt, greedy
from tests.helpers import random_image

pytestmark = pytest.mark.e2e

MAX_TOKENS = 8
MODEL = "tiny-qwen3-vl"


@pytest.fixture(scope="class")
def engine(tiny_cache) -> Iterator[tuple[Any, Any]]:
    """(vllm.LLM, transformers processor) on tiny://qwen3-vl, shut down after its class."""
    for key, value in {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1"}.items():
        os.environ.setdefault(key, value)
    from transformers import AutoProcessor
    from vllm import LLM

    path = str(resolve_tiny("tiny://qwen3-vl"))
    llm = LLM(model=path, enforce_eager=True, max_model_len=4096, dtype="float32", seed=0,
              limit_mm_per_prompt={"image": 1, "video": 1})
    try:
        yield llm, AutoProcessor.from_pretrained(path)
    finally:
        llm.llm_engine.engine_core.shutdown()
        del llm
        gc.collect()


class TestEngine:
    """The engine alone; its fixture is shut down before the served app starts."""

    def test_image_tokens_and_greedy_answer_equal_transformers(self, engine):
        import torch
        from transformers import AutoModelForImageTextToText

        llm, processor = engine
        image = random_image(96, 64, seed=1)  # multiples of 32: resized only by the processor's min_pixels
        text = chat_prompt(processor, "image", "What is in the picture?")
        output = greedy(llm, {"prompt": text, "multi_modal_data": {"image": [image]}}, MAX_TOKENS)

        inputs = processor(text=[text], images=[image], return_tensors="pt")
        assert list(output.prompt_token_ids) == inputs["input_ids"][0].tolist()
        model = AutoModelForImageTextToText.from_pretrained(llm.llm_engine.model_config.model,
                                                            dtype=torch.float32).eval()
        with torch.no_grad():
            generated = model.generate(**inputs, max_new_tokens=MAX_TOKENS, do_sample=False)
        hf_tokens = generated[0, inputs["input_ids"].shape[1]:].tolist()
        assert hf_tokens and list(output.outputs[0].token_ids)[: len(hf_tokens)] == hf_tokens

    def test_video_prompt_carries_the_timestamps_of_the_sampled_frames(self, engine):
        """The metadata the ingress sends (video.py): frames 0, 10, 20, 30 of a 10 fps video
        are at 0, 1, 2, 3 s; Qwen3-VL writes one timestamp per temporal patch (0.5 s, 2.5 s)."""
        llm, processor = engine
        frames = np.random.default_rng(2).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
        metadata = {"fps": 10.0, "frames_indices": [0, 10, 20, 30], "total_num_frames": 40,
                    "duration": 4.0, "video_backend": "pyav"}
        text = chat_prompt(processor, "video", "What happens?")
        output = greedy(llm, {"prompt": text,
                               "multi_modal_data": {"video": [(frames, dict(metadata, do_sample_frames=False))]},
                               "mm_processor_kwargs": {"do_sample_frames": False}}, MAX_TOKENS)

        inputs = processor(text=[text], videos=[frames], video_metadata=[metadata], do_sample_frames=False,
                           return_tensors="np")
        expected = inputs["input_ids"][0].tolist()
        assert inputs["video_grid_thw"].tolist() == [[2, 4, 4]]
        tokenizer = processor.tokenizer
        assert "<0.5 seconds>" in tokenizer.decode(expected) and "<2.5 seconds>" in tokenizer.decode(expected)
        assert list(output.prompt_token_ids) == expected
        assert len(output.outputs[0].token_ids) == MAX_TOKENS


@pytest.fixture(scope="class")
def qwen3_url(tiny_cache) -> Iterator[str]:
    """A one-model application of tiny://qwen3-vl in a Ray of its own, torn down after its
    class (marked `own_ray`: it runs before the shared app of tests/e2e/conftest.py starts)."""
    import ray

    from tests.e2e.conftest import served_on_own_ray

    assert not ray.is_initialized(), "an own_ray test must run before the shared app starts"
    model = side_model(MODEL, family="qwen3-vl", source="tiny://qwen3-vl")
    with served_on_own_ray(side_app_args(model), "qwen3") as url:
        yield url


@pytest.fixture(scope="class")
def qwen3_client(qwen3_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{qwen3_url}/v1", api_key="unused", max_retries=0, timeout=120)


def _data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.own_ray
class TestServed:
    """Served by Ray Serve behind the ingress, reached with the `openai` client."""

    def test_image_prompt_is_sized_by_the_factor_32_resize(self, qwen3_client):
        """300x200 becomes 288x192 with factor 32 (308x196 with Qwen2's 28): 54 image tokens,
        what qwen-vl-utils' fetch_image(image_patch_size=16) gives; vLLM keeps that size."""
        from qwen_vl_utils.vision_process import fetch_image

        def prompt_tokens(content: list[dict[str, Any]]) -> int:
            response = qwen3_client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": content}], max_tokens=4, temperature=0,
            )
            assert response.choices[0].message.content is not None
            return response.usage.prompt_tokens

        image = random_image(300, 200)
        resized = fetch_image({"image": image}, image_patch_size=16)
        assert resized.size == (288, 192)
        text = {"type": "text", "text": "Describe."}
        with_image = prompt_tokens([{"type": "image_url", "image_url": {"url": _data_url(image)}}, text])
        vision_markers = 2  # <|vision_start|>, <|vision_end|>
        assert with_image - prompt_tokens([text]) == 288 * 192 // (32 * 32) + vision_markers

    def test_video_answer_streams_the_same_text(self, qwen3_client):
        """A video given as four frame images: the frames' timestamps come from the metadata
        the ingress sends; the streamed text equals the whole answer's."""
        urls = [_data_url(random_image(64, 64, seed=i)) for i in range(4)]
        content = [{"type": "video", "video": urls}, {"type": "text", "text": "What happens?"}]
        kwargs: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": content}],
                                  "max_tokens": 6, "temperature": 0}
        response = qwen3_client.chat.completions.create(**kwargs)
        chunks = qwen3_client.chat.completions.create(**kwargs, stream=True)
        streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        assert response.choices[0].message.content == streamed
        assert response.usage.completion_tokens == 6 or response.choices[0].finish_reason == "stop"
        # Listed frames of 64x64 become 384x384 (qwen-vl-utils' minimum per frame, factor 32):
        # 2 temporal patches x 12 x 12 tokens, plus the text and the timestamps.
        assert response.usage.prompt_tokens > 2 * 12 * 12
