"""One-model Serve applications deployed beside the shared e2e app, in the same Ray and
Serve instance (tests/e2e/conftest.py), each at its own route prefix and deleted after use."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.e2e.conftest import cpu_app_args

READY_TIMEOUT_S = 300


def side_model(name: str, shared_index: int = 0, **fields: Any) -> dict[str, Any]:
    """A model config like the CPU default's model `shared_index` (engine args and env),
    under `name`, with `fields` replacing its family, source, deployment, ..."""
    shared = cpu_app_args()["models"][shared_index]
    model = {key: shared[key] for key in ("family", "source", "engine_args", "engine_env")}
    return {**model, "name": name, **fields}


def side_app_args(model: dict[str, Any]) -> dict[str, Any]:
    """The `args` of an application serving `model` behind a small ingress."""
    return {
        "ingress": {"deployment": {"num_replicas": 1, "ray_actor_options": {"num_cpus": 0.05}}},
        "models": [model],
    }


@contextmanager
def side_app(serve_url: str, name: str, args: dict[str, Any], wait_healthy: bool = True) -> Iterator[str]:
    """Deploy `args` as application `name` at `/<name>`; yield its base URL; delete it."""
    from ray import serve

    from ingress.app import build_app

    serve.run(build_app(args), name=name, route_prefix=f"/{name}", blocking=False)
    url = f"{serve_url}/{name}"
    try:
        if wait_healthy:
            wait_for(lambda: _healthy(url), READY_TIMEOUT_S, f"the {name} app")
        yield url
    finally:
        serve.delete(name)


def running_replicas(app: str, deployment: str) -> int:
    """Replicas of `deployment` Serve reports RUNNING."""
    from ray import serve

    return serve.status().applications[app].deployments[deployment].replica_states.get("RUNNING", 0)


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, tick: Callable[[], Any] | None = None) -> None:
    """Poll `predicate` (calling `tick` between polls) until it holds; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        if tick is not None:
            tick()
        time.sleep(0.5)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False
