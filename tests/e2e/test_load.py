"""Under load the app neither collapses nor drops tokens: many concurrent streams, each with
its own image, all finish with every token they were promised.

No timing is asserted here (bench/load_bench.py measures speed); what is asserted is what a
queue collapse, a capped ingress or a lost stream chunk would break: every request answers
200, every stream ends with `[DONE]`-terminated usage, and the tokens streamed (one logprob
entry per token) are exactly the tokens counted.
"""

from __future__ import annotations

import asyncio

import openai
import pytest

from tests.helpers import image_data_url, image_part

pytestmark = pytest.mark.e2e

CONCURRENT_STREAMS = 32
OUTPUT_TOKENS = 16


async def _one_stream(client: openai.AsyncOpenAI, seed: int) -> tuple[int, int, str | None]:
    """(tokens streamed, tokens counted in usage, finish reason) of one streamed answer."""
    stream = await client.chat.completions.create(
        model="tiny-qwen2-vl",
        messages=[{"role": "user", "content": [
            image_part(image_data_url(64 + seed % 7 * 8, 48, seed=seed)), {"type": "text", "text": "Describe it."},
        ]}],
        max_tokens=OUTPUT_TOKENS, temperature=0, logprobs=True, stream=True,
        stream_options={"include_usage": True}, extra_body={"ignore_eos": True},
    )
    streamed, counted, finish = 0, -1, None
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.logprobs and choice.logprobs.content:
                streamed += len(choice.logprobs.content)
            finish = choice.finish_reason or finish
        if chunk.usage is not None:
            counted = chunk.usage.completion_tokens
    return streamed, counted, finish


async def test_concurrent_streams_all_complete_with_every_token(async_client: openai.AsyncOpenAI):
    results = await asyncio.gather(*(_one_stream(async_client, seed) for seed in range(CONCURRENT_STREAMS)))
    assert results == [(OUTPUT_TOKENS, OUTPUT_TOKENS, "length")] * CONCURRENT_STREAMS


async def test_the_app_answers_normally_after_the_burst(async_client: openai.AsyncOpenAI):
    answer = await async_client.chat.completions.create(
        model="tiny-qwen2-vl", messages=[{"role": "user", "content": "hi"}], max_tokens=4,
    )
    assert answer.choices[0].message.role == "assistant"
