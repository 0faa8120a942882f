"""`/v1/completions` over fake engines: whole and streamed, several prompts, logprobs, refusals."""

from __future__ import annotations

import asyncio

import pytest

from deployments.calls import Delta
from ingress.routes.completions import MergedStream
from tests.fakes import FAKE_WORDS_PER_ANSWER

EXPECTED_TEXT = "".join(f"word{i} " for i in range(FAKE_WORDS_PER_ANSWER))


async def test_text_completion_whole_and_streamed(client, servers):
    whole = await client.completions.create(model="tiny-qwen2", prompt="Once upon a time", max_tokens=50)
    assert whole.object == "text_completion" and whole.id.startswith("cmpl-")
    assert whole.choices[0].text == EXPECTED_TEXT and whole.choices[0].finish_reason == "stop"
    assert servers["tiny-qwen2"]._engine.prompts[-1]["prompt"] == "Once upon a time"  # no chat template
    assert whole.usage.prompt_tokens == 4
    stream = await client.completions.create(
        model="tiny-qwen2", prompt="Once upon a time", max_tokens=50, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].usage == whole.usage


async def test_text_completion_of_several_prompts_numbers_choices_by_prompt(client):
    answer = await client.completions.create(model="tiny-qwen2", prompt=["one two", "three four five"], n=2, max_tokens=3)
    assert [c.index for c in answer.choices] == [0, 1, 2, 3]
    assert all(c.finish_reason == "length" for c in answer.choices)
    assert answer.usage.prompt_tokens == 2 + 3
    assert answer.usage.completion_tokens == 4 * 3


async def test_text_completion_logprobs_in_the_legacy_shape(client):
    answer = await client.completions.create(model="tiny-qwen2", prompt="hi", logprobs=2, max_tokens=2)
    logprobs = answer.choices[0].logprobs
    assert logprobs.tokens == ["word0 ", "word1 "]
    assert logprobs.text_offset == [0, len("word0 ")]
    assert all(len(top) == 2 for top in logprobs.top_logprobs)


async def test_text_completion_of_token_ids_is_400(http):
    response = await http.post("/v1/completions", json={"model": "tiny-qwen2", "prompt": [1, 2, 3]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "prompt"


async def test_merged_prompts_report_a_source_cut_by_a_cancellation_not_ours():
    async def fine():
        yield [Delta(index=0, text="a", completion_tokens=1, prompt_tokens=1, finish_reason="stop")]

    async def cut():
        yield [Delta(index=0, text="b", completion_tokens=1, prompt_tokens=1)]
        raise asyncio.CancelledError

    seen = []
    with pytest.raises(asyncio.CancelledError):  # before: swallowed, the answer silently short
        async for batch in MergedStream([fine(), cut()], choices_per_prompt=1):
            seen.extend(batch)
    assert {d.index for d in seen} <= {0, 1}
