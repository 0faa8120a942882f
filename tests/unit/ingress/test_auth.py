"""API keys (ingress/auth.py): from the config and the environment; 401 without one; /health open."""

from __future__ import annotations

import httpx
import openai
import pytest

from deployments.config import AppConfig
from ingress.app import create_api
from ingress.router import ModelRouter
from tests.unit.conftest import BASE_URL, unit_config


@pytest.fixture
async def keyed_http(router: ModelRouter, monkeypatch):
    monkeypatch.setenv("QWEN_VL_SERVE_API_KEYS", "from-env, other")
    config = AppConfig.model_validate({**unit_config().model_dump(), "ingress": {"api_keys": ["sk-test"]}})
    app = create_api(config, router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http:
        yield http


@pytest.mark.parametrize("key", ["sk-test", "from-env", "other"])
async def test_api_keys_from_config_and_environment_are_accepted(keyed_http, key):
    client = openai.AsyncOpenAI(base_url=f"{BASE_URL}/v1", api_key=key, http_client=keyed_http, max_retries=0)
    assert (await client.models.list()).data


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong"}, {"authorization": "Basic sk-test"}])
async def test_missing_or_wrong_key_is_401_and_health_stays_open(keyed_http, headers):
    for path in ("/v1/chat/completions", "/v1/completions", "/generate", "/"):
        response = await keyed_http.post(path, json={}, headers=headers)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "invalid_api_key"
    assert (await keyed_http.get("/v1/models", headers=headers)).status_code == 401
    assert (await keyed_http.get("/health")).status_code == 200
