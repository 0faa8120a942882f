"""Scale to zero on the real stack: a model with `min_replicas: 0` has no replica while
idle, the ingress stays up and healthy and lists it, a request starts a replica and is
answered, and health probes do not keep it awake.

A Serve application ("idle", at /idle) runs beside the shared one and is deleted at the end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.e2e.side_apps import running_replicas, side_app, side_app_args, side_model, wait_for

pytestmark = pytest.mark.e2e

APP = "idle"
MODEL = "idle-tiny"
DEPLOYMENT = f"model-{MODEL}"


def idle_app_args() -> dict:
    return side_app_args(side_model(
        MODEL,
        shared_index=1,
        deployment={
            "autoscaling_config": {
                "min_replicas": 0,
                "max_replicas": 1,
                "target_ongoing_requests": 1,
                "upscale_delay_s": 0,
                "downscale_delay_s": 2,
                "downscale_to_zero_delay_s": 4,
            },
            "graceful_shutdown_timeout_s": 5,
            "ray_actor_options": {"num_cpus": 0.1},
        },
    ))


def _running() -> int:
    return running_replicas(APP, DEPLOYMENT)


@pytest.fixture(scope="module")
def idle_url(serve_url: str) -> Iterator[str]:
    # not waited on here: its health while idle is what the test checks
    with side_app(serve_url, APP, idle_app_args(), wait_healthy=False) as url:
        yield url


def test_idle_model_is_healthy_listed_then_started_by_a_request_and_back_to_zero(idle_url: str):
    health = lambda: httpx.get(f"{idle_url}/health", timeout=30)  # noqa: E731
    wait_for(lambda: health().status_code == 200, 120, "the idle app's ingress")
    assert _running() == 0  # healthy with no model replica at all
    assert [m["id"] for m in httpx.get(f"{idle_url}/v1/models", timeout=30).json()["data"]] == [MODEL]

    client = openai.OpenAI(base_url=f"{idle_url}/v1", api_key="unused", max_retries=0, timeout=300)
    answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    assert answer.usage.completion_tokens > 0
    assert _running() == 1

    # back to zero while /health is polled every second: probing must not wake it
    wait_for(lambda: _running() == 0, 120, "scaling back to zero", tick=lambda: health().raise_for_status())
    time.sleep(5)
    assert _running() == 0 and health().status_code == 200
