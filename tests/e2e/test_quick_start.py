"""The README's serve command, as a user runs it: the app answers on 127.0.0.1:8000 and the
Prometheus metrics of the whole app are at 127.0.0.1:8080/metrics; it prints its ready line,
the README's curl examples work against it, and `qwen-vl-serve status` reports it.

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

import json
import re

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


def curl_examples() -> list[str]:
    """The README's curl blocks that need no internet."""
    section = (ROOT / "README.md").read_text().split("## Try it with curl", 1)[1].split("\n## ", 1)[0]
    return [block for block in re.findall(r"```bash\n(.+?)\n```", section, flags=re.S) if "https://" not in block]


def _check_curl_example(block: str) -> None:
    done = subprocess.run(["bash", "-c", block], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, (block, done.stderr)
    if '"stream": true' in block:
        events = [line for line in done.stdout.splitlines() if line.startswith("data: ")]
        assert events[-1] == "data: [DONE]" and len(events) > 2, done.stdout
        return
    answer = json.loads(done.stdout)
    assert "error" not in answer, (block, answer)
    if "/v1/chat/completions" in block:
        assert isinstance(answer["choices"][0]["message"]["content"], str) and answer["usage"]["completion_tokens"] > 0
    else:
        assert answer["status"] == 200 and isinstance(answer["response"], str)


def _wait_for_line(log_path, prefix: str, timeout_s: float = 30) -> str:  # noqa: ANN001 - a Path
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = [line for line in log_path.read_text().splitlines() if line.startswith(prefix)]
        if lines:
            return lines[0]
        time.sleep(1)
    raise AssertionError(f"no line starting with {prefix!r} in {log_path}")


def test_readme_serve_command_serves_and_exports_metrics(tiny_cache, tmp_path):
    import ray

    assert not ray.is_initialized(), "an own_ray test must run before the shared app starts"
    if not (_port_free(8000) and _port_free(8080)):
        pytest.fail("ports 8000 and 8080 must be free for the quick start test")
    serve_command = readme_commands()[0].split("&&")[-1].strip()
    log_path = tmp_path / "serve.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        ["bash", "-c", f"exec {serve_command}"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    try:
        _wait(f"{API}/health", process)
        ready = _wait_for_line(log_path, "ready:")
        assert ready == f"ready: {API}/v1 (models: tiny-qwen2-vl, tiny-qwen2.5-vl)"
        examples = curl_examples()
        assert len(examples) == 5  # chat, stream, image file, video file, POST /
        for block in examples:
            _check_curl_example(block)
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
        # Ray 2.60's `serve status` needs RAY_AUTH_MODE=token against this cluster; ours sets it.
        status = subprocess.run([str(ROOT / ".venv" / "bin" / "qwen-vl-serve"), "status"], cwd=ROOT,
                                capture_output=True, text=True, timeout=120,
                                env={k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"})
        assert status.returncode == 0, status.stderr
        assert "qwen-vl" in status.stdout and "RUNNING" in status.stdout, status.stdout
        assert "tiny-qwen2-vl: 2xx" in status.stdout, status.stdout
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
