"""`qwen-vl-serve run`'s one "it works" line: `ready: http://127.0.0.1:8000/v1 (models: ...)`.

Serve's own output ends long before the models are loaded (a GPU model takes minutes), and
what it prints does not say where to send requests. A background thread polls the app's
`/health` (200 only once every model's engine answers) and prints the line once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import httpx

POLL_INTERVAL_S = 1.0
_ANY_ADDRESS = {"0.0.0.0", "::", ""}


@dataclass(frozen=True)
class Endpoint:
    """Where one application answers, and what it serves."""

    base_url: str  # the OpenAI base URL, ending in /v1
    models: list[str]

    @property
    def health_url(self) -> str:
        return self.base_url.removesuffix("/v1") + "/health"

    @property
    def ready_line(self) -> str:
        return f"ready: {self.base_url} (models: {', '.join(self.models)})"


def endpoint(document: dict[str, Any], application: dict[str, Any], models: list[str]) -> Endpoint:
    """The local URL of `application` in a Serve config `document` (loopback for 0.0.0.0)."""
    http = document.get("http_options") or {}
    host = str(http.get("host", "127.0.0.1"))
    host = "127.0.0.1" if host in _ANY_ADDRESS else host
    host = f"[{host}]" if ":" in host else host
    prefix = str(application.get("route_prefix") or "/").rstrip("/")
    return Endpoint(f"http://{host}:{http.get('port', 8000)}{prefix}/v1", models)


def wait_until_healthy(url: str, stop: threading.Event, interval_s: float = POLL_INTERVAL_S) -> bool:
    """Poll `url` until it answers 200 (True) or `stop` is set (False)."""
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        while not stop.is_set():
            try:
                if client.get(url).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            stop.wait(interval_s)
    return False


class ReadyAnnouncer:
    """Prints each endpoint's ready line once its /health is 200 (a daemon thread each)."""

    def __init__(self, endpoints: list[Endpoint], interval_s: float = POLL_INTERVAL_S) -> None:
        self._endpoints = endpoints
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> ReadyAnnouncer:
        for target in self._endpoints:
            thread = threading.Thread(target=self._announce, args=(target,), daemon=True, name="qvs-ready")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _announce(self, target: Endpoint) -> None:
        if wait_until_healthy(target.health_url, self._stop, self._interval_s):
            print(target.ready_line, flush=True)
