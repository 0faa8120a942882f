"""A client that leaves mid-stream leaves no engine work behind (real Serve + vLLM)."""

from __future__ import annotations

import time

import httpx
import pytest
from ray import serve

from deployments.config import ModelConfig

pytestmark = pytest.mark.e2e


MODEL = "tiny-qwen2.5-vl"


def _unfinished(model: str) -> int:
    """Requests the model's engine still holds, asked of the replica itself."""
    deployment = ModelConfig(name=model, family="qwen2.5-vl", source="tiny://qwen2.5-vl").deployment_name
    handle = serve.get_deployment_handle(deployment, app_name="qwen-vl")
    return handle.unfinished_requests.remote().result()


def test_client_disconnect_aborts_the_engine_request(serve_url: str):
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell me a very long story."}],
        "max_tokens": 4000,  # ~10 s of decoding here: far longer than the wait below
        "ignore_eos": True,
        "stream": True,
    }
    with httpx.Client(timeout=60) as http:
        with http.stream("POST", f"{serve_url}/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            received = [next(lines) for _ in range(6)]
            assert any(line.startswith("data: {") for line in received)
            assert _unfinished(MODEL) == 1  # it is really running
        # leaving the block closed the connection mid-stream
    deadline = time.monotonic() + 3
    while _unfinished(MODEL) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _unfinished(MODEL) == 0
