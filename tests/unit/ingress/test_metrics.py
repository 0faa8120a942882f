"""ingress/metrics.py: bounded tags, and each metric recorded where its event happens, checked
through the HTTP API over fake engines (Ray's metric objects replaced by recorders)."""

from __future__ import annotations

import pytest
from ray.serve.exceptions import BackPressureError

from ingress import metrics
from tests.helpers import image_data_url, image_part, sse_payloads

CHAT = {"model": "tiny-qwen2-vl", "messages": [{"role": "user", "content": "hi"}]}


def test_tags_stay_bounded():
    assert metrics.status_class(404) == "4xx"
    assert metrics.model_tag("a", {"a", "b"}, "b") == "a"
    assert metrics.model_tag(None, {"a", "b"}, "b") == "b"
    assert metrics.model_tag("anything-a-client-sends", {"a", "b"}, "b") == "other"
    assert metrics.model_tag(["not", "a", "str"], {"a"}, "a") == "other"


async def test_a_whole_answer_counts_the_request_its_tokens_and_its_media(http, recorded):
    body = {**CHAT, "messages": [{"role": "user", "content": [image_part(image_data_url()), {"type": "text", "text": "?"}]}]}
    answer = (await http.post("/v1/chat/completions", json=body)).json()
    tags = {"model": "tiny-qwen2-vl", "status_class": "2xx", "stream": "no"}
    assert recorded["requests"].calls == [(1, tags)]
    assert recorded["latency"].tags() == [tags]
    assert recorded["errors"].calls == [] and recorded["ttft"].calls == []
    token_tags = {"model": "tiny-qwen2-vl", "stream": "no"}
    assert recorded["prompt_tokens"].calls == [(answer["usage"]["prompt_tokens"], token_tags)]
    assert recorded["completion_tokens"].calls == [(answer["usage"]["completion_tokens"], token_tags)]
    assert recorded["media_per_request"].calls == [
        (1, {"model": "tiny-qwen2-vl", "kind": "image"}), (0, {"model": "tiny-qwen2-vl", "kind": "video"})
    ]


async def test_a_stream_counts_its_first_token_tokens_and_end(http, recorded):
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    usage = sse_payloads((await http.post("/v1/chat/completions", json=body)).text)[-2]["usage"]
    assert recorded["requests"].calls == [(1, {"model": "tiny-qwen2-vl", "status_class": "2xx", "stream": "yes"})]
    assert len(recorded["ttft"].calls) == 1 and len(recorded["itl"].calls) == 1
    assert recorded["prompt_tokens"].total(stream="yes") == usage["prompt_tokens"]
    assert recorded["completion_tokens"].total(stream="yes") == usage["completion_tokens"]


async def test_a_refusal_counts_the_request_as_failed_by_its_code(http, recorded):
    body = {**CHAT, "messages": [{"role": "user", "content": [image_part("data:image/png;base64,AAAA")]}]}
    assert (await http.post("/v1/chat/completions", json=body)).status_code == 422
    tags = {"model": "tiny-qwen2-vl", "status_class": "4xx", "stream": "no"}
    assert recorded["requests"].calls == [(1, tags)]
    assert recorded["errors"].calls == [(1, {**tags, "error_type": "invalid_image"})]
    assert recorded["media_refusals"].calls == [(1, {"kind": "image", "reason": "invalid_image"})]
    assert recorded["prompt_tokens"].calls == [] and recorded["backpressure"].calls == []


@pytest.mark.parametrize("kind", ["image", "video"])
async def test_parts_refused_for_the_model_are_counted_by_kind(http, recorded, kind):
    part = {"type": kind, kind: image_data_url() if kind == "image" else [image_data_url()]}
    body = {"model": "tiny-qwen2", "messages": [{"role": "user", "content": [part]}]}
    assert (await http.post("/v1/chat/completions", json=body)).json()["error"]["code"] == f"{kind}_not_supported"
    assert recorded["media_refusals"].calls == [(1, {"kind": kind, "reason": f"{kind}_not_supported"})]


async def test_an_overloaded_model_counts_a_backpressure_rejection(http, servers, recorded):
    async def overloaded(prompt, params, request_id):  # noqa: ANN001, ANN202 - the engine's generate
        raise BackPressureError(num_queued_requests=9, max_queued_requests=8)
        yield  # an async generator, as an engine's stream is

    servers["tiny-qwen2-vl"]._engine.generate = overloaded
    response = await http.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert recorded["backpressure"].calls == [(1, {"model": "tiny-qwen2-vl"})]
    assert recorded["errors"].tags()[0]["error_type"] == "overloaded"


async def test_an_in_band_overload_counts_the_stream_as_failed_and_the_rejection(http, servers, recorded):
    from deployments.calls import Delta

    async def overloaded_later(prompt, params, request_id):  # noqa: ANN001, ANN202
        yield [Delta(index=0, text="partial", completion_tokens=1, prompt_tokens=3)]
        raise BackPressureError(num_queued_requests=9, max_queued_requests=8)

    servers["tiny-qwen2-vl"]._engine.generate = overloaded_later
    payloads = sse_payloads((await http.post("/v1/chat/completions", json={**CHAT, "stream": True})).text)
    assert payloads[-2]["error"]["code"] == "overloaded" and payloads[-1] == "[DONE]"
    tags = {"model": "tiny-qwen2-vl", "status_class": "2xx", "stream": "yes"}
    assert recorded["requests"].calls == [(1, tags)]
    assert recorded["errors"].calls == [(1, {**tags, "error_type": "overloaded"})]
    assert recorded["backpressure"].calls == [(1, {"model": "tiny-qwen2-vl"})]


def test_the_fitted_counter_starts_at_zero_per_vision_model(recorded):
    metrics.initialise_counters({"a", "b"}, ["a"])
    assert recorded["media_fitted"].zeros == [(0, {"model": "a"})]


def test_every_counter_the_dashboard_plots_starts_at_zero_for_every_model(recorded):
    import re

    from tests.helpers import ROOT

    metrics.initialise_counters({"a", "b"})
    plotted = set(re.findall(r"ray_qvs_(\w+)_total", (ROOT / "k8s" / "dashboard.py").read_text()))
    by_name = {m._name.removeprefix(metrics.PREFIX): attr for attr, m in vars(_real_metrics()).items()}
    for name in plotted:
        zeros = recorded[by_name[name]].zeros
        assert zeros and all(value == 0 for value, _ in zeros), name
        if "model" in zeros[0][1]:
            assert {tags["model"] for _, tags in zeros} == {"a", "b"}, name
    assert recorded["requests"].calls == []  # nothing counted, only created


def test_ray_counters_take_the_zero_record():
    metrics.initialise_counters({"a"})  # fails if Ray renames the recorder `_start_at_zero` uses


def _real_metrics() -> metrics.IngressMetrics:
    return metrics.IngressMetrics()
