"""Bad input gets a clear OpenAI-shaped 4xx naming the field; the server keeps serving."""

from __future__ import annotations

import pytest

from tests.helpers import image_data_url, image_part


def _chat(content, model="tiny-qwen2-vl", **extra):
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (_chat("hi", temperature="hot"), 400, "temperature"),
        (_chat("hi", frobnicate=1), 400, "frobnicate"),
        (_chat("hi", n=9), 400, "n"),
        (_chat("hi", response_format={"type": "json_schema"}), 400, "response_format"),
        (_chat("hi", tools=[{"type": "function", "function": {"name": "f"}}]), 400, "tools"),
        ({"model": "tiny-qwen2-vl", "messages": []}, 400, "messages"),
        ({"model": "tiny-qwen2-vl", "messages": [{"role": "wizard", "content": "x"}]}, 400, "messages[0].role"),
        (_chat([{"type": "audio", "audio": "x"}]), 400, "messages[0].content[0].type"),
        (_chat([image_part("https://example.com/cat.png")]), 400, "messages[0].content[0].image_url.url"),
        (_chat([image_part("data:image/png;base64,@@@")]), 400, "messages[0].content[0].image_url.url"),
        (_chat([image_part("data:image/png;base64,aGVsbG8=")]), 422, "messages[0].content[0].image_url.url"),
        (_chat([image_part(image_data_url())], model="tiny-qwen2"), 400, "messages[0].content[0]"),
    ],
)
async def test_bad_requests_name_the_field(http, body, status, param):
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert set(error) == {"message", "type", "param", "code"}
    # ...and the next request is served.
    ok = await http.post("/v1/chat/completions", json=_chat("still there?"))
    assert ok.status_code == 200


async def test_invalid_json_is_400(http):
    response = await http.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_oversized_body_is_413(http):
    response = await http.post("/v1/chat/completions", json=_chat("x" * 300_000))
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_streaming_request_with_bad_input_gets_a_status_not_a_stream(http):
    response = await http.post("/v1/chat/completions", json=_chat([image_part("data:x")], stream=True))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[0].content[0].image_url.url"


async def test_unknown_route_is_openai_shaped_404(http):
    response = await http.get("/v1/nothing-here")
    assert response.status_code == 404
    assert "error" in response.json()
