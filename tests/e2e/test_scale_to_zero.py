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

from tests.e2e.conftest import cpu_app_args

pytestmark = pytest.mark.e2e

APP = "idle"
MODEL = "idle-tiny"
DEPLOYMENT = f"model-{MODEL}"


def idle_app_args() -> dict:
    shared = cpu_app_args()["models"][1]
    return {
        "ingress": {"deployment": {"num_replicas": 1, "ray_actor_options": {"num_cpus": 0.05}}},
        "models": [
            {
                "name": MODEL,
                "family": "qwen2.5-vl",
                "source": "tiny://qwen2.5-vl",
                "engine_args": shared["engine_args"],
                "engine_env": shared["engine_env"],
                "deployment": {
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
            }
        ],
    }


def _running() -> int:
    from ray import serve

    return serve.status().applications[APP].deployments[DEPLOYMENT].replica_states.get("RUNNING", 0)


@pytest.fixture(scope="module")
def idle_url(serve_url: str) -> Iterator[str]:
    from ray import serve

    from ingress.app import build_app

    serve.run(build_app(idle_app_args()), name=APP, route_prefix=f"/{APP}", blocking=False)
    try:
        yield f"{serve_url}/{APP}"
    finally:
        serve.delete(APP)


def _wait_for(predicate, timeout_s: float, what: str, tick=None) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout_s}s waiting for {what}"
        if tick is not None:
            tick()
        time.sleep(1)


def test_idle_model_is_healthy_listed_then_started_by_a_request_and_back_to_zero(idle_url: str):
    health = lambda: httpx.get(f"{idle_url}/health", timeout=30)  # noqa: E731
    _wait_for(lambda: health().status_code == 200, 120, "the idle app's ingress")
    assert _running() == 0  # healthy with no model replica at all
    assert [m["id"] for m in httpx.get(f"{idle_url}/v1/models", timeout=30).json()["data"]] == [MODEL]

    client = openai.OpenAI(base_url=f"{idle_url}/v1", api_key="unused", max_retries=0, timeout=300)
    answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    assert answer.usage.completion_tokens > 0
    assert _running() == 1

    # back to zero while /health is polled every second: probing must not wake it
    _wait_for(lambda: _running() == 0, 120, "scaling back to zero", tick=lambda: health().raise_for_status())
    time.sleep(5)
    assert _running() == 0 and health().status_code == 200
