"""`qwen-vl-serve run` prints one ready line once /health answers 200."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from deployments.cli import main as cli
from deployments.cli.readiness import Endpoint, ReadyAnnouncer, endpoint

from tests.helpers import ROOT


@pytest.mark.parametrize(
    ("config", "url"),
    [
        ("serve_config.cpu.yaml", "http://127.0.0.1:8000/v1"),
        ("serve_config.yaml", "http://127.0.0.1:8000/v1"),  # 0.0.0.0: reached on loopback
    ],
)
def test_the_line_names_the_base_url_and_the_models(config, url):
    (target,) = cli.endpoints(ROOT / config)
    assert target.base_url == url and target.health_url == url.removesuffix("/v1") + "/health"
    if config == "serve_config.cpu.yaml":
        assert target.ready_line == f"ready: {url} (models: tiny-qwen2-vl, tiny-qwen2.5-vl)"


def test_a_route_prefix_is_kept():
    document = {"http_options": {"host": "::1", "port": 9000}}
    assert endpoint(document, {"route_prefix": "/qwen/"}, ["m"]).base_url == "http://[::1]:9000/qwen/v1"


class _Health(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first two probes, then 200 (a stand-in for the app's /health)."""

    calls = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).calls += 1
        self.send_response(200 if self.path == "/health" and type(self).calls > 2 else 503)
        self.end_headers()

    def log_message(self, *args) -> None:  # noqa: ANN002 - quiet
        pass


def test_ready_is_printed_once_after_health_turns_200(capsys):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target = Endpoint(f"http://127.0.0.1:{server.server_port}/v1", ["a", "b"])
    announcer = ReadyAnnouncer([target], interval_s=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while _Health.calls < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        announcer.stop()
        server.shutdown()
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("ready:")]
    assert lines == [f"ready: http://127.0.0.1:{server.server_port}/v1 (models: a, b)"]
    assert _Health.calls == 3  # no more polling once ready


def test_nothing_is_printed_while_unhealthy(capsys):
    announcer = ReadyAnnouncer([Endpoint("http://127.0.0.1:9/v1", ["a"])], interval_s=0.05).start()
    time.sleep(0.2)
    announcer.stop()
    assert "ready:" not in capsys.readouterr().out
