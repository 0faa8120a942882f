"""Hostile requests on the real stack (Ray Serve + vLLM CPU engine + tiny models, context 4096):
each is a 4xx naming the field, answered quickly, and the server keeps serving; one client's
disconnect never touches another's generation; the dashboard's counters exist at 0.

Driven by the official `openai` client where it can send the request, by httpx where the
body is one no client would build (broken JSON, a lone surrogate).
"""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import openai
import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.e2e

VL = "tiny-qwen2-vl"
TEXT = "tiny-qwen2.5-vl"  # /v1/completions: text prompts to a served model
ASK = [{"role": "user", "content": "Say something."}]
CONTEXT = 4096  # serve_config.cpu.yaml's max_model_len
REFUSED_QUICKLY_S = 10  # before: 9 MiB of text took 15 s of tokenizing on the replica's loop


def _still_serving(client: openai.OpenAI) -> None:
    assert client.chat.completions.create(model=VL, messages=ASK, max_tokens=2).choices


def test_megabytes_of_prompt_text_are_refused_quickly_naming_messages(client: openai.OpenAI):
    started = time.monotonic()
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model=VL, messages=[{"role": "user", "content": "hi " * 3_000_000}], max_tokens=2)
    assert time.monotonic() - started < REFUSED_QUICKLY_S
    assert error.value.body["param"] == "messages" and error.value.body["code"] == "context_length_exceeded"
    _still_serving(client)


def test_a_completions_fan_out_past_the_bound_is_400_naming_prompt(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as error:
        client.completions.create(model=TEXT, prompt=["hi"] * 65, max_tokens=1)
    assert error.value.body["param"] == "prompt"
    with pytest.raises(openai.BadRequestError) as error:
        client.completions.create(model=TEXT, prompt=["hi"] * 9, n=8, max_tokens=1)
    assert error.value.body["param"] == "n"
    _still_serving(client)


def test_max_tokens_beyond_the_context_is_vllms_400(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model=VL, messages=ASK, max_tokens=1_000_000_000)
    assert error.value.body["param"] == "max_tokens"
    assert error.value.body["message"] == (
        f"max_tokens=1000000000 cannot be greater than max_model_len={CONTEXT}. Please request fewer output tokens."
    )
    _still_serving(client)


def test_a_request_chat_template_is_refused(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model=VL, messages=ASK, extra_body={"chat_template": "{{ 'x' }}"})
    assert error.value.body["param"] == "chat_template"


@pytest.mark.parametrize(("body", "param", "code"), [
    (b"[" * 100_000, None, "nesting_too_deep"),
    (b'{"model": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}', "model", "invalid_unicode"),
])
def test_bodies_no_client_would_build_are_openai_400s(serve_url: str, client: openai.OpenAI, body, param, code):
    response = httpx.post(
        f"{serve_url}/v1/chat/completions", content=body, headers={"content-type": "application/json"}, timeout=60
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["code"] == code
    _still_serving(client)


async def test_a_client_leaving_does_not_abort_another_with_the_same_request_id(async_client: openai.AsyncOpenAI):
    shared = {"extra_headers": {"x-request-id": "same-id-for-both"}}
    long = dict(model=VL, messages=ASK, max_tokens=1500, temperature=0, stream=True,
                stream_options={"include_usage": True}, extra_body={"ignore_eos": True}, **shared)
    staying = await async_client.chat.completions.create(**long)
    first = await anext(aiter(staying))
    leaving = await async_client.chat.completions.create(**long)
    await anext(aiter(leaving))
    await leaving.close()  # this client disconnects: its engine request is aborted, only it
    chunks = [first] + [chunk async for chunk in staying]
    finished = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finished == ["length"] and chunks[-1].usage.completion_tokens == 1500


async def test_the_dashboards_counters_exist_at_zero_before_any_such_event(
    serve_url: str, metrics_export_port: int
):
    plotted = set(re.findall(r"ray_qvs_\w+_total", (ROOT / "k8s" / "dashboard.py").read_text()))
    deadline, missing = time.monotonic() + 60, plotted
    async with httpx.AsyncClient(timeout=10) as http:
        while missing and time.monotonic() < deadline:
            text = (await http.get(f"http://127.0.0.1:{metrics_export_port}/metrics")).text
            missing = {name for name in plotted if not re.search(rf"^{name}\{{", text, flags=re.M)}
            await asyncio.sleep(1)
    assert not missing
    # a series nothing in this app produces (serve_config.cpu.yaml bounds no queue), there at 0
    assert re.search(r'^ray_qvs_backpressure_rejections_total\{[^}]*model="tiny-qwen2-vl"[^}]*\} 0(\.0)?$', text, re.M)
