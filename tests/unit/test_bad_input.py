"""Bad input anywhere in a request is a 4xx naming the field, never a 500, and the server
keeps answering (the ingress over fake engines)."""

from __future__ import annotations

import pytest

OK = {"model": "tiny-qwen2.5-vl", "messages": [{"role": "user", "content": "hi"}]}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}

CHAT_CASES = [
    ({"messages": "hello"}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 5}}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "audio", "audio": "x"}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0]"),
    ({"temperature": "hot"}, "temperature"),
    ({"max_tokens": -1}, "max_tokens"),
    ({"n": 0}, "n"),
    ({"n": 99}, "n"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"response_format": {"type": "json_schema"}}, "response_format"),
    ({"tools": [{"type": "function"}]}, "tools"),
    ({"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice"),
    ({"stop": 5}, "stop"),
    ({"model": 7}, "model"),
    ({"mm_processor_kwargs": {"max_pixels": "big"}}, "mm_processor_kwargs"),
]


@pytest.mark.parametrize("change,param", CHAT_CASES, ids=[c[1] + "-" + str(i) for i, c in enumerate(CHAT_CASES)])
async def test_bad_chat_fields_are_4xx_naming_the_field(http, change, param):
    response = await http.post("/v1/chat/completions", json={**OK, **change})
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert error["param"] and error["param"].startswith(param), error
    assert (await http.post("/v1/chat/completions", json=OK)).status_code == 200


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'"text"', b"null"])
async def test_a_body_that_is_not_a_json_object_is_400(http, body):
    response = await http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


COMPLETION_CASES = [({"prompt": 5}, "prompt"), ({"prompt": ""}, "prompt"), ({"max_tokens": "x"}, "max_tokens"),
                    ({"logprobs": -2}, "logprobs")]


@pytest.mark.parametrize("change,param", COMPLETION_CASES)
async def test_bad_completion_fields_are_4xx_naming_the_field(http, change, param):
    response = await http.post("/v1/completions", json={"model": "tiny-qwen2", "prompt": "hi", **change})
    assert 400 <= response.status_code < 500, response.text
    assert (response.json()["error"]["param"] or "").startswith(param), response.text


async def test_more_images_than_the_engine_takes_is_refused_at_the_part(router, http):
    from tests.helpers import image_data_url, image_part

    router.routes["tiny-qwen2.5-vl"].config.engine_args["limit_mm_per_prompt"] = {"image": 2}
    parts = [image_part(image_data_url(32, 32, seed=i)) for i in range(3)]
    body = {"model": "tiny-qwen2.5-vl", "messages": [{"role": "user", "content": parts}]}
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[0].content[2]"
    assert response.json()["error"]["code"] == "too_many_images"
