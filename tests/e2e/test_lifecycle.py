"""A client that leaves mid-stream leaves no engine work behind (real Serve + vLLM)."""

from __future__ import annotations

import time

import httpx
import pytest
from ray import serve

pytestmark = pytest.mark.e2e


def _unfinished(deployment: str) -> int:
    handle = serve.get_deployment_handle(deployment, app_name="qwen-vl")
    return handle.unfinished_requests.remote().result()


def test_client_disconnect_aborts_the_engine_request(serve_url: str):
    body = {
        "model": "tiny-qwen2.5-vl",
        "messages": [{"role": "user", "content": "Tell me a very long story."}],
        "max_tokens": 3000,
        "ignore_eos": True,
        "stream": True,
    }
    with httpx.Client(timeout=60) as http:
        with http.stream("POST", f"{serve_url}/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            received = [next(lines) for _ in range(6)]
            assert any(line.startswith("data: {") for line in received)
            assert _unfinished("model-tiny-qwen2.5-vl") == 1  # it is really running
        # leaving the block closed the connection mid-stream
    deadline = time.monotonic() + 30
    while _unfinished("model-tiny-qwen2.5-vl") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _unfinished("model-tiny-qwen2.5-vl") == 0
