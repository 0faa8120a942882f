"""The whole stack: Ray Serve ingress -> vLLM CPU engines on both tiny models -> openai client."""

from __future__ import annotations

import httpx
import openai
import pytest
from PIL import Image

from deployments.checkpoints.tiny import resolve_tiny
from tests.helpers import image_data_url, image_part

pytestmark = pytest.mark.e2e

MODELS = {"tiny-qwen2-vl": "tiny://qwen2-vl", "tiny-qwen2.5-vl": "tiny://qwen2.5-vl"}


def expected_prompt_tokens(model: str, messages: list[dict], images: list[Image.Image]) -> int:
    """Prompt length the HF processor computes for the same conversation and images."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(resolve_tiny(MODELS[model])))
    qwen_messages = [
        {
            "role": m["role"],
            "content": m["content"]
            if isinstance(m["content"], str)
            else [{"type": "image"} if p["type"] == "image_url" else p for p in m["content"]],
        }
        for m in messages
    ]
    text = processor.apply_chat_template(qwen_messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], images=images or None, return_tensors="np")
    return int(inputs["input_ids"].shape[1])


def _decode(url: str) -> Image.Image:
    import base64
    import io

    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")


@pytest.mark.parametrize("model", sorted(MODELS))
def test_image_stream_equals_non_stream_with_real_usage(client: openai.OpenAI, model: str):
    url = image_data_url(96, 64, seed=3)
    messages = [{"role": "user", "content": [image_part(url), {"type": "text", "text": "Describe the image."}]}]
    whole = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=12)
    assert whole.choices[0].finish_reason in {"stop", "length"}
    assert whole.usage.completion_tokens > 0
    assert whole.usage.prompt_tokens == expected_prompt_tokens(model, messages, [_decode(url)])

    stream = client.chat.completions.create(
        model=model, messages=messages, temperature=0, max_tokens=12, stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == whole.usage.total_tokens


def test_two_images_in_one_message_count_both(client: openai.OpenAI):
    urls = [image_data_url(64, 64, seed=4), image_data_url(112, 56, seed=5)]
    messages = [{"role": "user", "content": [image_part(urls[0]), image_part(urls[1]), {"type": "text", "text": "Compare."}]}]
    both = client.chat.completions.create(model="tiny-qwen2-vl", messages=messages, max_tokens=4)
    assert both.usage.prompt_tokens == expected_prompt_tokens("tiny-qwen2-vl", messages, [_decode(u) for u in urls])
    one = client.chat.completions.create(
        model="tiny-qwen2-vl", messages=[{"role": "user", "content": [image_part(urls[0]), {"type": "text", "text": "Compare."}]}], max_tokens=4
    )
    assert both.usage.prompt_tokens > one.usage.prompt_tokens


async def test_multi_turn_conversation_with_async_client(async_client: openai.AsyncOpenAI):
    url = image_data_url(56, 56, seed=6)
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [image_part(url), {"type": "text", "text": "What is this?"}]},
        {"role": "assistant", "content": "Noise."},
        {"role": "user", "content": "Are you sure?"},
    ]
    completion = await async_client.chat.completions.create(model="tiny-qwen2.5-vl", messages=messages, max_tokens=6)
    assert completion.choices[0].message.role == "assistant"
    assert completion.usage.prompt_tokens == expected_prompt_tokens("tiny-qwen2.5-vl", messages, [_decode(url)])


def test_unknown_model_is_not_found_and_default_model_serves(client: openai.OpenAI, serve_url: str):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    response = httpx.post(
        f"{serve_url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
        timeout=60,
    )
    assert response.status_code == 200 and response.json()["model"] == "tiny-qwen2-vl"


def test_health_and_model_list(client: openai.OpenAI, serve_url: str):
    assert httpx.get(f"{serve_url}/health", timeout=30).status_code == 200
    assert sorted(m.id for m in client.models.list()) == sorted(MODELS)


def test_bad_image_is_4xx_and_server_keeps_serving(client: openai.OpenAI):
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(
            model="tiny-qwen2-vl",
            messages=[{"role": "user", "content": [image_part("data:image/png;base64,aGVsbG8=")]}],
        )
    ok = client.chat.completions.create(model="tiny-qwen2-vl", messages=[{"role": "user", "content": "hi"}], max_tokens=2, temperature=0)
    assert ok.choices[0].finish_reason == "length"
