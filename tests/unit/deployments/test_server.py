"""deployments/server.py over fake engines, through the HTTP API: everything that refuses a
request inside the model deployment (sampling limits, the chat template, a cut engine stream)
is an OpenAI error with its status, never a 500, and the next request is served."""

from __future__ import annotations

import asyncio

import pytest
from jinja2 import TemplateError

from deployments.calls import Delta
from tests.helpers import sse_payloads

OK = {"model": "tiny-qwen2-vl", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
async def test_max_tokens_beyond_the_context_is_vllms_400(http, field):
    response = await http.post("/v1/chat/completions", json={**OK, field: 1_000_000_000})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == field
    assert error["message"] == (
        f"{field}=1000000000 cannot be greater than max_model_len=4096. Please request fewer output tokens."
    )
    assert (await http.post("/v1/chat/completions", json={**OK, field: 4096})).status_code == 200


async def test_completions_max_tokens_beyond_the_context_is_400(http):
    response = await http.post("/v1/completions", json={"model": "tiny-qwen2", "prompt": "hi", "max_tokens": 10**9})
    assert response.status_code == 400 and response.json()["error"]["param"] == "max_tokens"


async def test_a_chat_template_refusal_is_400_naming_messages(http, servers):
    def refusing(messages, **kwargs):  # noqa: ANN001, ANN003, ANN202 - what Qwen templates raise
        raise TemplateError("Conversation roles must alternate user/assistant/user/assistant/...")

    servers["tiny-qwen2-vl"]._renderer.render = refusing
    response = await http.post("/v1/chat/completions", json=OK)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"
    assert "roles must alternate" in response.json()["error"]["message"]


def _cut_after(batches: int):  # noqa: ANN202 - an engine generate whose stream is cut, not cancelled by us
    async def generate(prompt, params, request_id):  # noqa: ANN001, ANN202
        for step in range(batches):
            yield [Delta(index=0, text=f"t{step}", completion_tokens=step + 1, prompt_tokens=3)]
        raise asyncio.CancelledError

    return generate


async def test_an_engine_stream_cut_before_output_is_503_not_a_dropped_request(http, servers):
    servers["tiny-qwen2-vl"]._engine.generate = _cut_after(0)
    async with asyncio.timeout(30):  # before: the request hung, its stream waiting forever
        response = await http.post("/v1/chat/completions", json=OK)
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "aborted"


async def test_an_engine_stream_cut_mid_way_is_an_error_event_then_done(http, servers):
    servers["tiny-qwen2-vl"]._engine.generate = _cut_after(2)
    async with asyncio.timeout(30):
        response = await http.post("/v1/chat/completions", json={**OK, "stream": True})
    payloads = sse_payloads(response.text)
    assert payloads[-2]["error"]["code"] == "aborted" and payloads[-1] == "[DONE]"
