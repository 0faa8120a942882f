"""ingress/router.py: probes bounded in time and never swallowing a cancellation; the context
length known before a request's text is checked against it."""

from __future__ import annotations

import asyncio

import pytest


async def _hang() -> None:
    await asyncio.sleep(3600)


async def test_a_probe_of_a_hung_engine_is_false_within_its_timeout(router):
    router.routes["tiny-qwen2-vl"].client.check_health = _hang
    status = await asyncio.wait_for(router.probe(0.05), timeout=5)
    assert status["tiny-qwen2-vl"] is False and status["tiny-qwen2.5-vl"] is True


async def test_cancelling_a_probe_cancels_it(router):
    entered = asyncio.Event()

    async def slow() -> None:
        entered.set()
        await _hang()

    router.routes["tiny-qwen2-vl"].client.check_health = slow
    task = asyncio.create_task(router.probe(60))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):  # not reported as "unhealthy" and carried on
        await task


async def test_context_length_is_the_engines_once_it_answers(router):
    route = router.routes["tiny-qwen2-vl"]
    assert route.info is None
    assert await router.context_length(route) == 4096  # the fake engine's max_model_len
    assert route.info is not None  # remembered


async def test_context_length_falls_back_to_the_configured_engine_argument(router):
    route = router.routes["tiny-qwen2"]

    async def unavailable() -> None:
        raise RuntimeError("replica starting")

    route.client.info = unavailable
    assert await router.context_length(route) is None
    route.config.engine_args["max_model_len"] = 2048
    assert await router.context_length(route) == 2048
