"""The ingress over fake engines, driven by the official `openai` client (no Ray, no vLLM core)."""

from __future__ import annotations

import openai
import pytest

from tests.fakes import FAKE_TOKENS_PER_IMAGE, FAKE_WORDS_PER_ANSWER
from tests.helpers import image_data_url, image_part

EXPECTED_TEXT = "".join(f"word{i} " for i in range(FAKE_WORDS_PER_ANSWER))


async def test_non_streaming_answer_has_text_finish_reason_and_usage(client, servers):
    completion = await client.chat.completions.create(
        model="tiny-qwen2-vl", messages=[{"role": "user", "content": "Hello there"}]
    )
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "tiny-qwen2-vl"
    (choice,) = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == EXPECTED_TEXT
    assert choice.finish_reason == "stop"
    engine = servers["tiny-qwen2-vl"]._engine
    assert completion.usage.prompt_tokens == len(engine.prompts[-1]["prompt"].split())
    assert completion.usage.completion_tokens == FAKE_WORDS_PER_ANSWER
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + FAKE_WORDS_PER_ANSWER


async def test_images_reach_the_engine_in_order_with_placeholders(client, servers):
    urls = [image_data_url(32, 32, seed=1), image_data_url(40, 24, seed=2)]
    completion = await client.chat.completions.create(
        model="tiny-qwen2-vl",
        messages=[{"role": "user", "content": [image_part(urls[0]), {"type": "text", "text": "and"}, image_part(urls[1])]}],
    )
    prompt = servers["tiny-qwen2-vl"]._engine.prompts[-1]
    images = prompt["multi_modal_data"]["image"]
    # Resized on the ingress the Qwen way (smart_resize: multiples of 28, >= 4 tokens), handed
    # to vLLM as the RGB (height, width, 3) arrays that crossed the handle.
    assert [im.shape for im in images] == [(56, 56, 3), (56, 84, 3)]
    assert prompt["prompt"].count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    assert completion.usage.prompt_tokens == len(prompt["prompt"].split()) + 2 * FAKE_TOKENS_PER_IMAGE


async def test_multi_turn_history_is_rendered(client, servers):
    await client.chat.completions.create(
        model="tiny-qwen2.5-vl",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [image_part(image_data_url()), {"type": "text", "text": "What is it?"}]},
            {"role": "assistant", "content": "A square."},
            {"role": "user", "content": "Which colour?"},
        ],
    )
    prompt = servers["tiny-qwen2.5-vl"]._engine.prompts[-1]["prompt"]
    assert prompt.index("Be brief.") < prompt.index("What is it?") < prompt.index("A square.") < prompt.index("Which colour?")
    assert prompt.rstrip().endswith("<|im_start|>assistant")


async def test_missing_model_goes_to_the_default(http):
    response = await http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    assert response.json()["model"] == "tiny-qwen2-vl"


async def test_unknown_model_is_openai_not_found(client):
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}])
    error = caught.value.body
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert set(error) >= {"message", "type", "param", "code"}


async def test_max_tokens_gives_length_and_n_gives_choices(client):
    completion = await client.chat.completions.create(
        model="tiny-qwen2-vl", messages=[{"role": "user", "content": "hi"}], max_tokens=2, n=2
    )
    assert [c.index for c in completion.choices] == [0, 1]
    assert all(c.finish_reason == "length" and c.message.content == "word0 word1 " for c in completion.choices)
    assert completion.usage.completion_tokens == 4


async def test_request_id_is_honoured(http):
    response = await http.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}]},
        headers={"X-Request-Id": "abc-123"},
    )
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["id"] == "chatcmpl-abc-123"


async def test_logprobs_have_openai_shape_stream_and_whole(client):
    kwargs = dict(model="tiny-qwen2-vl", messages=[{"role": "user", "content": "hi"}], logprobs=True, top_logprobs=2)
    whole = await client.chat.completions.create(**kwargs)
    content = whole.choices[0].logprobs.content
    assert [c.token for c in content] == [f"word{i} " for i in range(5)]
    assert all(len(c.top_logprobs) == 2 for c in content)
    stream = await client.chat.completions.create(**kwargs, stream=True)
    streamed = [lp for chunk in [c async for c in stream] for choice in chunk.choices
                if choice.logprobs for lp in choice.logprobs.content]
    assert [lp.token for lp in streamed] == [c.token for c in content]


async def test_no_logprobs_unless_asked(client):
    whole = await client.chat.completions.create(model="tiny-qwen2-vl", messages=[{"role": "user", "content": "hi"}])
    assert whole.choices[0].logprobs is None
