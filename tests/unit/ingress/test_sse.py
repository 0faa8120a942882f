"""SSE (ingress/sse.py) over fake engines: framing, [DONE] last, one in-band error after the
stream started (no internals in it), and the streamed text equal to the whole answer's."""

from __future__ import annotations

import asyncio

import pytest

from deployments.calls import Delta
from ingress.metrics import RequestObserver
from ingress.responses import ChunkFactory
from ingress.sse import completion_events

from tests.helpers import image_data_url, image_part, sse_payloads


@pytest.mark.parametrize("model", ["tiny-qwen2-vl", "tiny-qwen2.5-vl"])
async def test_stream_text_equals_non_stream_text(client, model):
    messages = [{"role": "user", "content": [{"type": "text", "text": "Describe"}, image_part(image_data_url())]}]
    whole = await client.chat.completions.create(model=model, messages=messages, temperature=0)
    stream = await client.chat.completions.create(
        model=model, messages=messages, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishing = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishing == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert all(c.usage is None for c in chunks[:-1])


async def test_sse_framing_ends_with_done(http):
    body = {"model": "tiny-qwen2-vl", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    payloads = sse_payloads(response.text)
    assert payloads[-1] == "[DONE]"
    assert all(p["object"] == "chat.completion.chunk" for p in payloads[:-1])
    assert "usage" not in payloads[0]  # only sent (as null) when include_usage is asked for


async def test_engine_failure_mid_stream_is_one_error_event_then_done(http, servers):
    engine = servers["tiny-qwen2-vl"]._engine

    async def failing(prompt, params, request_id):
        from deployments.calls import Delta

        yield [Delta(index=0, text="partial", completion_tokens=1, prompt_tokens=3)]
        raise RuntimeError("/secret/path exploded at 0xdeadbeef")

    engine.generate = failing
    body = {"model": "tiny-qwen2-vl", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    response = await http.post("/v1/chat/completions", json=body)
    payloads = sse_payloads(response.text)
    assert payloads[-1] == "[DONE]"
    error = payloads[-2]["error"]
    assert error["type"] == "internal_server_error"
    assert "/secret" not in error["message"] and "0x" not in error["message"]
    assert sum(1 for p in payloads if isinstance(p, dict) and "error" in p) == 1


async def test_a_token_without_text_still_streams_its_logprobs(http, servers):
    """Half of a multi-byte character decodes to no text, yet it is a token: its logprob
    entry goes out, so the stream carries every token that usage counts."""
    engine = servers["tiny-qwen2-vl"]._engine

    async def split_character(prompt, params, request_id):
        from deployments.calls import Delta

        def logprob(token: str) -> list[dict]:
            return [{"token": token, "logprob": -0.5, "bytes": None, "top_logprobs": []}]

        yield [Delta(index=0, text="", completion_tokens=1, prompt_tokens=3, logprobs=logprob("\\xe4"))]
        yield [Delta(index=0, text="中", completion_tokens=2, prompt_tokens=3, finish_reason="length",
                     logprobs=logprob("\\xb8\\xad"))]

    engine.generate = split_character
    body = {"model": "tiny-qwen2-vl", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "logprobs": True, "stream_options": {"include_usage": True}}
    payloads = sse_payloads((await http.post("/v1/chat/completions", json=body)).text)
    streamed = [entry for p in payloads if isinstance(p, dict) for c in p.get("choices", [])
                if c.get("logprobs") for entry in c["logprobs"]["content"]]
    assert len(streamed) == payloads[-2]["usage"]["completion_tokens"] == 2


async def test_a_source_cut_by_a_cancellation_not_the_clients_is_an_error_event_then_done():
    async def cut():
        yield [Delta(index=0, text="partial", completion_tokens=1, prompt_tokens=3)]
        raise asyncio.CancelledError  # e.g. the model replica died mid-stream

    chunks = ChunkFactory("chatcmpl-x", "m", 0, include_usage=False)
    events = [e async for e in completion_events(cut(), chunks, RequestObserver(frozenset({"m"}), "m"))]
    assert '"code":"aborted"' in events[-2] and events[-1] == "data: [DONE]\n\n"
