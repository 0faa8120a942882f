"""ingress/metrics.py: bounded tag values and the request timer, without Ray."""

from __future__ import annotations

from fastapi.responses import JSONResponse, StreamingResponse

from deployments.config import AppConfig
from deployments.errors import InvalidRequestError
from ingress import metrics


def _config() -> AppConfig:
    return AppConfig.model_validate(
        {"models": [{"name": "a", "family": "qwen2-vl", "source": "tiny://qwen2-vl"},
                    {"name": "b", "family": "qwen2", "source": "tiny://qwen2"}], "default_model": "b"}
    )


def test_tags_stay_bounded():
    assert metrics.status_class(404) == "4xx"
    assert metrics.model_tag("a", {"a", "b"}, "b") == "a"
    assert metrics.model_tag(None, {"a", "b"}, "b") == "b"
    assert metrics.model_tag("anything-a-client-sends", {"a", "b"}, "b") == "other"
    assert metrics.model_tag(["not", "a", "str"], {"a"}, "a") == "other"


def test_media_parts_are_counted_per_kind():
    messages = [
        {"role": "user", "content": [{"type": "image_url"}, {"type": "text"}, {"type": "image_url"}]},
        {"role": "user", "content": [{"type": "video_url"}]},
        {"role": "assistant", "content": "plain"},
        "garbage",
    ]
    assert metrics.count_media_parts(messages) == (2, 1)
    assert metrics.count_media_parts(None) == (0, 0)


def test_timer_records_answers_and_refusals_without_raising():
    timer = metrics.RequestTimer.start(_config())
    timer.read({"model": "a", "stream": False, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]})
    assert (timer.model, timer.stream, timer.media) == ("a", False, (1, 0))
    body = {"usage": {"prompt_tokens": 5, "completion_tokens": 0}}
    assert timer.answered(JSONResponse(body)).status_code == 200
    refused = metrics.RequestTimer.start(_config())
    refused.read({"stream": True})
    assert refused.model == "b" and refused.stream
    refused.failed(InvalidRequestError("bad image", "messages[0].content[0]", code="invalid_image"))


async def test_stream_timer_passes_events_through():
    async def events():
        yield "data: {}\n\n"
        yield 'data: {"error":{"code":"overloaded"}}\n\n'
        yield "data: [DONE]\n\n"

    timer = metrics.RequestTimer.start(_config())
    response = timer.answered(StreamingResponse(events()))
    assert [e async for e in response.body_iterator] == [
        "data: {}\n\n", 'data: {"error":{"code":"overloaded"}}\n\n', "data: [DONE]\n\n"
    ]
