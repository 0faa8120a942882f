"""The README's serve command, as a user runs it: the app answers on 127.0.0.1:8000 and the
Prometheus metrics of the whole app are at 127.0.0.1:8080/metrics.

Marked `own_ray`: it starts a Ray of its own, so tests/e2e/conftest.py runs it before any test
that starts the shared app (two Ray instances with four engines would crowd a 2-core
machine), whatever the file order; run alone, it never starts the shared app.
The command runs minus its install steps (the venv is already installed), in a process of
its own, and is stopped with Ctrl-C as a user would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import httpx
import openai
import pytest


pytestmark = [pytest.mark.e2e, pytest.mark.own_ray]

from tests.helpers import ROOT, readme_commands
API, METRICS = "http://127.0.0.1:8000", "http://127.0.0.1:8080/metrics"
START_TIMEOUT_S = 420
STOP_TIMEOUT_S = 30


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _wait(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, "the serve command exited early"
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise AssertionError(f"{url} did not answer 200 within {START_TIMEOUT_S}s")


def test_readme_serve_command_serves_and_exports_metrics(tiny_cache, tmp_path):
    import ray

    assert not ray.is_initialized(), "an own_ray test must run before the shared app starts"
    if not (_port_free(8000) and _port_free(8080)):
        pytest.fail("ports 8000 and 8080 must be free for the quick start test")
    serve_command = readme_commands()[0].split("&&")[-1].strip()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        ["bash", "-c", f"exec {serve_command}"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    try:
        _wait(f"{API}/health", process)
        client = openai.OpenAI(base_url=f"{API}/v1", api_key="unused", max_retries=0, timeout=60)
        answer = client.chat.completions.create(
            model="tiny-qwen2.5-vl", messages=[{"role": "user", "content": "hi"}], max_tokens=3
        )
        assert answer.usage.completion_tokens > 0
        deadline = time.monotonic() + 60
        wanted = ("ray_qvs_requests_total", "ray_serve_", "ray_vllm_")
        text = ""
        while time.monotonic() < deadline:
            text = httpx.get(METRICS, timeout=10).text
            if all(name in text for name in wanted):
                break
            time.sleep(2)
        missing = [name for name in wanted if name not in text]
        assert not missing, f"no {missing} series at {METRICS}"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    # Ray's proxy is a process of its own: it lets go of the port a moment after the command exits.
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while not _port_free(8000) and time.monotonic() < deadline:
        time.sleep(1)
    assert _port_free(8000), f"the app still answers {STOP_TIMEOUT_S}s after Ctrl-C"
