"""Every dashboard panel is fed by real series: a real Prometheus scrapes the running app.

The app (tests/e2e/conftest.py) runs with Ray's metrics export port; this module starts
Debian's `prometheus` on loopback scraping it every second, sends image (data URL and
local file), streaming and failing requests, then evaluates each panel query of
k8s/dashboard.py through Prometheus' HTTP API. Counts, token and media byte sums are
compared as the increase over what this module sent (other e2e tests share the app), read
from Prometheus.
"""

from __future__ import annotations

import base64
import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from k8s.dashboard import DASHBOARD
from tests.helpers import free_port, image_data_url, image_part

pytestmark = pytest.mark.e2e

SCRAPE_INTERVAL_S = 1
WAIT_S = 60
RATE_WINDOW = "5m"
MODEL = "tiny-qwen2-vl"
# Panels whose series this CPU app cannot produce, and why. Their queries must still be
# valid PromQL (Prometheus answers "success"); they are not required to return data.
UNFED_ON_CPU_APP = {
    "Backpressure rejections": "needs a full queue: serve_config.cpu.yaml sets no max_queued_requests",
}



@pytest.fixture(scope="module")
def prometheus(metrics_export_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus on loopback scraping Ray's metrics export port; yields its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the `prometheus` binary is missing: apt-get install -y prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL_S}s\n"
        f"  evaluation_interval: {SCRAPE_INTERVAL_S}s\n"
        "scrape_configs:\n"
        "  - job_name: ray\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{metrics_export_port}']\n"
    )
    port = free_port()
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _scraped_once(url), "Prometheus to scrape the metrics export port", workdir)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _scraped_once(url: str) -> bool:
    try:
        return bool(query(url, 'up{job="ray"} == 1'))
    except httpx.HTTPError:
        return False


def _wait_for(condition, what: str, logdir: Path | None = None) -> None:  # noqa: ANN001
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    detail = (logdir / "prometheus.log").read_text()[-2000:] if logdir else ""
    raise TimeoutError(f"timed out waiting for {what}\n{detail}")


def query(url: str, expr: str) -> list[dict]:
    """Instant query through Prometheus' HTTP API; its result vector."""
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    if response.status_code == 503:  # still starting ("Service Unavailable", not JSON)
        response.raise_for_status()
    body = response.json()
    assert body.get("status") == "success", f"{expr}: {body}"
    return body["data"]["result"]


def scalar(url: str, expr: str) -> float:
    """`sum(expr)` as a number (0 when no series exists yet)."""
    result = query(url, f"sum({expr})")
    return float(result[0]["value"][1]) if result else 0.0


def panel_exprs(expr: str) -> str:
    """A panel query with Grafana's variables filled in as an operator would see them."""
    return expr.replace("$__rate_interval", RATE_WINDOW).replace("$model", ".*")


TALLIES = {  # what Prometheus reads -> what the requests of one round add to it
    "requests_ok": f'ray_qvs_requests_total{{model="{MODEL}",status_class="2xx"}}',
    "requests_4xx": 'ray_qvs_requests_total{status_class="4xx"}',
    "prompt": f'ray_qvs_prompt_tokens_total{{model="{MODEL}"}}',
    "completion": f'ray_qvs_completion_tokens_total{{model="{MODEL}"}}',
    "engine_prompt": f'ray_vllm_prompt_tokens_total{{model_name="{MODEL}"}}',
    "engine_completion": f'ray_vllm_generation_tokens_total{{model_name="{MODEL}"}}',
    "fetches_data": 'ray_qvs_media_fetch_seconds_count{kind="image",source="data"}',
    "fetches_file": 'ray_qvs_media_fetch_seconds_count{kind="image",source="file"}',
    "bytes_data": 'ray_qvs_media_bytes_total{kind="image",source="data"}',
    "bytes_file": 'ray_qvs_media_bytes_total{kind="image",source="file"}',
    "decodes": 'ray_qvs_media_decode_seconds_count{kind="image"}',
}


def send_round(client: openai.OpenAI, media_dir: Path, seed: int) -> dict[str, int]:
    """Image, streaming and failing requests; what they should add to each tally.

    Each round's image is new to the app (its `seed`), so the ingress decodes it once; the
    repeat and the stream (the same bytes, read from a local file) hit the ingress cache.
    """
    image = image_data_url(96, 64, seed=seed)
    png = base64.b64decode(image.split(",", 1)[1])
    (media_dir / f"metrics-{seed}.png").write_bytes(png)
    # Longer than a few KV blocks (128 tokens each on CPU), so a repeat hits the prefix cache.
    text = "Describe the picture in detail. " * 80
    messages = [{"role": "user", "content": [image_part(image), {"type": "text", "text": text}]}]
    from_file = [{"role": "user", "content": [image_part(str(media_dir / f"metrics-{seed}.png")),
                                              {"type": "text", "text": text}]}]
    prompt = completion = 0
    for _ in range(2):  # the same image and prompt twice: prefix and multimodal cache hits
        answer = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, temperature=0)
        prompt += answer.usage.prompt_tokens
        completion += answer.usage.completion_tokens
    stream = client.chat.completions.create(
        model=MODEL, messages=from_file, max_tokens=8, stream=True, stream_options={"include_usage": True}
    )
    usage = [chunk.usage for chunk in stream if chunk.usage][-1]
    prompt += usage.prompt_tokens
    completion += usage.completion_tokens
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=messages, max_tokens=4)
    broken = [{"role": "user", "content": [image_part("data:image/png;base64,AAAA"), {"type": "text", "text": "?"}]}]
    with pytest.raises(openai.APIStatusError):  # fetched (3 bytes), then refused by the decoder
        client.chat.completions.create(model=MODEL, messages=broken, max_tokens=4)
    # The unknown model is refused before its media is fetched.
    return {"requests_ok": 3, "requests_4xx": 2, "prompt": prompt, "completion": completion,
            "engine_prompt": prompt, "engine_completion": completion,
            "fetches_data": 3, "fetches_file": 1, "bytes_data": 2 * len(png) + 3, "bytes_file": len(png),
            "decodes": 1}


def send_and_wait(
    prometheus: str, client: openai.OpenAI, media_dir: Path, seed: int
) -> tuple[dict[str, float], dict[str, int]]:
    """One round, then wait until Prometheus has all of it; (tallies before, expected rise)."""
    before = {name: scalar(prometheus, expr) for name, expr in TALLIES.items()}
    expected = send_round(client, media_dir, seed)
    for name, expr in TALLIES.items():  # Ray reports every second; Prometheus scrapes every second
        _wait_for(lambda: scalar(prometheus, expr) - before[name] >= expected[name], f"{name} to reach Prometheus")
    time.sleep(3 * SCRAPE_INTERVAL_S)  # gauges and histograms of the last request too
    return before, expected


@pytest.fixture(scope="module")
def traffic(prometheus: str, client: openai.OpenAI, media_dir: Path) -> dict:
    """Two rounds of requests: the first creates the series (Ray exports a series once it
    is first recorded, so Prometheus sees no rise then), the second is measured and makes
    every counter and histogram rise between scrapes, so rates and quantiles have data."""
    send_and_wait(prometheus, client, media_dir, seed=701)
    before, expected = send_and_wait(prometheus, client, media_dir, seed=702)
    return {"before": before, "expected": expected}


def test_counts_and_token_sums_agree_with_what_was_sent(prometheus: str, traffic: dict):
    for name, expr in TALLIES.items():
        got = scalar(prometheus, expr) - traffic["before"][name]
        assert got == traffic["expected"][name], f"{name}: {expr} rose by {got}"


def test_error_and_refusal_series_name_their_reason(prometheus: str, traffic: dict):
    errors = query(prometheus, "ray_qvs_request_errors_total")
    assert {"model_not_found", "invalid_image"} <= {s["metric"]["error_type"] for s in errors}
    refusals = query(prometheus, "ray_qvs_media_refusals_total")
    assert {"invalid_image"} <= {s["metric"]["reason"] for s in refusals}


@pytest.mark.parametrize("panel", DASHBOARD.panels(), ids=lambda panel: panel.title)
def test_every_dashboard_panel_returns_data(prometheus: str, traffic: dict, panel):
    for target in panel.targets:
        result = query(prometheus, panel_exprs(target.expr))
        if panel.title in UNFED_ON_CPU_APP:
            continue
        values = [float(series["value"][1]) for series in result]
        assert any(not math.isnan(v) for v in values), f"{panel.title}: {target.expr} -> {result}"


def test_panel_titles_exempted_from_data_exist():
    titles = {panel.title for panel in DASHBOARD.panels()}
    assert set(UNFED_ON_CPU_APP) <= titles
