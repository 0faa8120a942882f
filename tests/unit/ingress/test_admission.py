"""ingress/admission.py: POST requests past the replica's admission limit get an OpenAI 503 at
once (Retry-After, counted as overloaded); probes still pass; the slot frees when the answer ends."""

from __future__ import annotations

import asyncio

import httpx

from ingress.admission import admission_limit
from ingress.app import create_api
from tests.unit.conftest import BASE_URL, unit_config

OK = {"model": "tiny-qwen2-vl", "messages": [{"role": "user", "content": "hi"}]}


def test_the_limit_keeps_five_percent_of_serves_slots_free():
    assert admission_limit(1000) == 950
    assert admission_limit(2) == 1
    assert admission_limit(1) == 1


async def test_a_post_past_the_limit_is_an_openai_503_and_probes_still_answer(router, servers, recorded):
    config = unit_config()
    config.ingress.deployment.max_ongoing_requests = 2  # admission limit 1
    servers["tiny-qwen2-vl"]._engine.step_delay_s = 0.1  # the first answer takes ~0.5 s
    transport = httpx.ASGITransport(app=create_api(config, router))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        first = asyncio.create_task(http.post("/v1/chat/completions", json=OK))
        await asyncio.sleep(0.2)
        refused = await http.post("/v1/chat/completions", json=OK)
        assert (await http.get("/health")).status_code == 200
        assert (await first).status_code == 200
        assert (await http.post("/v1/chat/completions", json=OK)).status_code == 200  # the slot is free again
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    error = refused.json()["error"]
    assert error == {"message": error["message"], "type": "service_unavailable", "param": None, "code": "overloaded"}
    assert recorded["backpressure"].total() == 1
