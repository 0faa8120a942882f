"""End-to-end fixtures: the real Serve application from serve_config.cpu.yaml, started once.

Real Ray Serve, the real vLLM CPU engine on both tiny models, reached over loopback HTTP by
the official `openai` client. Starting takes about a minute on two cores, so the app is
shared by the whole test session.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.helpers import ROOT, free_port
STARTUP_TIMEOUT_S = 600
METRICS_REPORT_INTERVAL_MS = 1000



def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "own_ray: starts its own Ray; runs before the shared app of this module starts")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start their own Ray run first (stable sort: the rest keep their order)."""
    items.sort(key=lambda item: item.get_closest_marker("own_ray") is None)


def cpu_app_args() -> dict:
    """The `args` block of the embedded default config, as `serve run` would pass it."""
    config = yaml.safe_load((ROOT / "serve_config.cpu.yaml").read_text())
    return config["applications"][0]["args"]


E2E_MAX_IMAGE_BYTES = 2 * 1024 * 1024


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one local directory the e2e app may read media from."""
    return tmp_path_factory.mktemp("allowed-media")


def e2e_app_args(media_dir: Path) -> dict:
    """The CPU default plus the media settings the tests need (the default stays safe): of
    private addresses only the loopback test server's 127.0.0.1 (127.0.0.2 and the rest
    stay refused), and one local directory."""
    args = cpu_app_args()
    args.setdefault("ingress", {})["media"] = {
        "allow_private_hosts": ["127.0.0.1/32"],
        "allowed_local_dirs": [str(media_dir)],
        "max_image_bytes": E2E_MAX_IMAGE_BYTES,
    }
    return args


@pytest.fixture(scope="session")
def metrics_export_port() -> int:
    """Ray's metrics export port: Prometheus text of ours, Serve's and the engines' metrics."""
    return free_port()


@pytest.fixture(scope="session")
def serve_url(tiny_cache, metrics_export_port: int, media_dir: Path) -> Iterator[str]:
    """Base URL of the running application; tears Ray down after the session."""
    with served_on_own_ray(
        e2e_app_args(media_dir), "qwen-vl",
        _metrics_export_port=metrics_export_port,
        # Metrics reach the export port within a second rather than Ray's default ten.
        _system_config={"metrics_report_interval_ms": METRICS_REPORT_INTERVAL_MS},
    ) as url:
        yield url


@contextmanager
def served_on_own_ray(app_args: dict, name: str, **ray_init: Any) -> Iterator[str]:
    """Ray started here (with `qwen-vl-serve run`'s settings), our app built from `app_args`
    and served on a free loopback port; its base URL once healthy; Ray shut down after."""
    from deployments.cli.ray_env import apply_serving_defaults

    apply_serving_defaults()  # the Ray settings users get from `qwen-vl-serve run`, set before Ray reads them
    import ray
    from ray import serve

    from ingress.app import build_app

    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, **ray_init)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(app_args), name=name, route_prefix="/", blocking=False)
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url)
        yield url
    finally:
        serve.shutdown()
        ray.shutdown()


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/health", timeout=10)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(2)
    raise TimeoutError(f"the app did not become healthy in {STARTUP_TIMEOUT_S}s: {last}")


@pytest.fixture(scope="session")
def client(serve_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{serve_url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture
def async_client(serve_url: str) -> openai.AsyncOpenAI:
    """One per test: each async test has its own event loop, and a client's pooled
    connections belong to the loop that opened them."""
    return openai.AsyncOpenAI(base_url=f"{serve_url}/v1", api_key="unused", max_retries=0, timeout=120)
