"""ingress/routes/dispatch.py: the body read once, bounded in size, time, nesting and Unicode;
every refusal an OpenAI 4xx, and the next request served."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

from deployments.errors import RequestTimeoutError
from ingress.routes.dispatch import read_json_body

OK = {"model": "tiny-qwen2-vl", "messages": [{"role": "user", "content": "hi"}]}


async def _post_raw(http, body: bytes):  # noqa: ANN001, ANN202 - the unit tests' httpx client
    return await http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})


async def test_deeply_nested_json_is_400_not_500(http):
    response = await _post_raw(http, b"[" * 100_000)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "nesting_too_deep"
    assert (await http.post("/v1/chat/completions", json=OK)).status_code == 200


@pytest.mark.parametrize(("body", "param"), [
    (b'{"model": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}', "model"),
    (b'{"model": "tiny-qwen2-vl", "messages": [{"role": "user", "content": "a\\udfffb"}]}', "messages"),
])
async def test_a_lone_surrogate_is_400_naming_the_field(http, body, param):
    response = await _post_raw(http, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["code"] == "invalid_unicode"
    assert (await http.post("/v1/chat/completions", json=OK)).status_code == 200


async def test_a_surrogate_pair_is_one_character_and_served(http, servers):
    body = b'{"model": "tiny-qwen2-vl", "messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}'
    assert (await _post_raw(http, body)).status_code == 200
    assert "\U0001F600" in servers["tiny-qwen2-vl"]._engine.prompts[-1]["prompt"]


async def test_a_body_that_stops_arriving_is_a_timeout():
    async def trickle() -> dict:  # one piece, then nothing (a slow-loris upload)
        if not sent:
            sent.append(True)
            return {"type": "http.request", "body": b'{"model"', "more_body": True}
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    sent: list[bool] = []
    request = Request({"type": "http", "method": "POST", "headers": []}, trickle)
    with pytest.raises(RequestTimeoutError) as error:
        await read_json_body(request, max_bytes=1024, timeout_s=0.05)
    assert error.value.status_code == 408 and error.value.code == "request_timeout"
