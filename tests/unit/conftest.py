"""Unit-test fixtures: the real ingress API over fake engines, driven in process.

The FastAPI app, the router, the model servers and the chat templates are the real ones;
only the engine is fake (tests/fakes.py) and the handle is an in-process call, so these
tests run in seconds without Ray or vLLM's engine core.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from deployments.config import AppConfig
from ingress import metrics
from ingress.app import create_api
from ingress.router import ModelRouter
from tests.fakes import LocalModelClient, start_fake_server

BASE_URL = "http://ingress.test"


def unit_config() -> AppConfig:
    return AppConfig.model_validate(
        {
            "default_model": "tiny-qwen2-vl",
            "ingress": {"max_body_bytes": 200_000},
            "models": [
                {"name": "tiny-qwen2-vl", "family": "qwen2-vl", "source": "tiny://qwen2-vl"},
                {"name": "tiny-qwen2.5-vl", "family": "qwen2.5-vl", "source": "tiny://qwen2.5-vl"},
                {"name": "tiny-qwen2", "family": "qwen2", "source": "tiny://qwen2"},
            ],
        }
    )


@pytest.fixture
async def servers(tiny_cache):
    config = unit_config()
    return {m.name: await start_fake_server(m) for m in config.models}


@pytest.fixture
def router(servers) -> ModelRouter:
    config = unit_config()
    return ModelRouter.from_clients(config, {n: LocalModelClient(s) for n, s in servers.items()})


@pytest.fixture
async def http(router) -> AsyncIterator[httpx.AsyncClient]:
    app = create_api(unit_config(), router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


@pytest.fixture
async def client(http: httpx.AsyncClient) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{BASE_URL}/v1", api_key="unused", http_client=http, max_retries=0)


class Recorder:
    """Stands in for one Ray metric: keeps (value, tags) of every observe/inc."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, dict[str, str]]] = []
        self.zeros: list[tuple[float, dict[str, str]]] = []

    def observe(self, value: float, tags: dict[str, str]) -> None:
        self.calls.append((value, tags))

    inc = observe

    def _record(self, value: float, tags: dict[str, str]) -> None:
        """Ray's recorder, which `initialise_counters` calls with 0: kept apart in `zeros`."""
        self.zeros.append((value, tags))

    def tags(self) -> list[dict[str, str]]:
        return [tags for _, tags in self.calls]

    def total(self, **tags: str) -> float:
        """The sum of the values recorded with (at least) `tags`."""
        return sum(value for value, seen in self.calls if tags.items() <= seen.items())


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> defaultdict[str, Recorder]:
    """Every IngressMetrics attribute as a recorder, by name (e.g. `recorded["media_fetch"]`)."""
    recorders: defaultdict[str, Recorder] = defaultdict(Recorder)

    class _Metrics:
        def __getattr__(self, name: str) -> Recorder:
            return recorders[name]

    monkeypatch.setattr(metrics, "ingress_metrics", _Metrics)
    return recorders
