"""Production topology on the real stack: backpressure, autoscaling, replica replacement.

A second Serve application ("topology", at /topology) runs beside the shared one, in the
same Ray and Serve instance: one tiny model whose deployment holds one request per
replica, queues one more, and autoscales between one and two replicas. It is deleted at
the end. The shared app's model keeps answering throughout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.e2e.conftest import cpu_app_args
from tests.e2e.side_apps import running_replicas, side_app, side_app_args, side_model, wait_for

pytestmark = pytest.mark.e2e

APP = "topology"
MODEL = "topo-tiny"
DEPLOYMENT = f"model-{MODEL}"
LONG = {"max_tokens": 3500, "ignore_eos": True}  # busy for many seconds on the tiny model


def topology_args() -> dict:
    return side_app_args(side_model(
        MODEL,
        family="qwen2-vl",
        source="tiny://qwen2-vl",
        engine_env={**cpu_app_args()["models"][0]["engine_env"], "VLLM_CPU_OMP_THREADS_BIND": "1"},
        deployment={
            "autoscaling_config": {
                "min_replicas": 1,
                "max_replicas": 2,
                "target_ongoing_requests": 1,
                "upscale_delay_s": 1,
                "downscale_delay_s": 3,
                "metrics_interval_s": 0.5,
                "look_back_period_s": 1,
            },
            "max_ongoing_requests": 1,
            "max_queued_requests": 1,
            "health_check_period_s": 2,
            "graceful_shutdown_timeout_s": 5,
            "ray_actor_options": {"num_cpus": 0.1},
        },
    ))


def _running_replicas() -> int:
    return running_replicas(APP, DEPLOYMENT)


@pytest.fixture(scope="module")
def topology_url(serve_url: str) -> Iterator[str]:
    with side_app(serve_url, APP, topology_args()) as url:
        yield url


def _chat(model: str, **extra) -> dict:  # noqa: ANN003
    return {"model": model, "messages": [{"role": "user", "content": "Tell me a long story."}], **extra}


async def _hold_streams(http: httpx.AsyncClient, url: str, count: int, stop: asyncio.Event) -> None:
    """Keep `count` long streams running until `stop` is set (restarting any that end)."""

    async def one() -> None:
        while not stop.is_set():
            async with http.stream("POST", f"{url}/v1/chat/completions", json=_chat(MODEL, stream=True, **LONG)) as r:
                async for _ in r.aiter_lines():
                    if stop.is_set():
                        return

    await asyncio.gather(*(one() for _ in range(count)))


def test_overflow_is_503_with_retry_after_while_the_other_model_answers(topology_url, client):
    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=120) as http:
            stop = asyncio.Event()
            # one request running on the replica, one queued at the ingress's handle
            holders = asyncio.create_task(_hold_streams(http, topology_url, 2, stop))
            await asyncio.sleep(1.5)
            started = time.monotonic()
            overflow = await http.post(f"{topology_url}/v1/chat/completions", json=_chat(MODEL, max_tokens=4))
            elapsed = time.monotonic() - started
            other = await asyncio.to_thread(
                client.chat.completions.create, **_chat("tiny-qwen2.5-vl", max_tokens=4)
            )
            stop.set()
            holders.cancel()
        assert overflow.status_code == 503, overflow.text
        assert overflow.headers["retry-after"] == "1"
        assert overflow.json()["error"]["code"] == "overloaded"
        assert elapsed < 5, f"the overflow answer took {elapsed:.1f}s"
        assert other.choices[0].finish_reason == "length"  # the other model was unaffected

    asyncio.run(scenario())


def test_autoscales_from_one_to_two_replicas_under_load_and_back(topology_url):
    wait_for(lambda: _running_replicas() == 1, 60, "one replica at rest")

    async def load_until_scaled() -> None:
        async with httpx.AsyncClient(timeout=120) as http:
            stop = asyncio.Event()
            holders = asyncio.create_task(_hold_streams(http, topology_url, 2, stop))
            try:
                await asyncio.to_thread(wait_for, lambda: _running_replicas() == 2, 150, "a second replica")
            finally:
                stop.set()
                holders.cancel()

    asyncio.run(load_until_scaled())
    wait_for(lambda: _running_replicas() == 1, 120, "scaling back down to one replica")


def test_a_killed_replica_is_replaced_and_requests_succeed(topology_url):
    import ray

    def replica_actors() -> list[dict]:
        return [
            actor
            for actor in ray.util.list_named_actors(all_namespaces=True)
            if actor["name"].startswith(f"SERVE_REPLICA::{APP}#{DEPLOYMENT}#")
        ]

    # one replica left: the one a downscale stopped has finished its graceful shutdown
    wait_for(lambda: _running_replicas() == 1 and len(replica_actors()) == 1, 120, "one replica")
    (replica,) = replica_actors()
    ray.kill(ray.get_actor(replica["name"], namespace=replica["namespace"]), no_restart=True)
    client = openai.OpenAI(base_url=f"{topology_url}/v1", api_key="unused", max_retries=0, timeout=60)

    def answers() -> bool:
        try:
            return client.chat.completions.create(**_chat(MODEL, max_tokens=4)).choices[0].message is not None
        except openai.APIError:
            return False

    wait_for(answers, 180, "an answer from the replacement replica")
    names = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
    assert replica["name"] not in names
    for _ in range(3):
        assert answers()
