"""A loopback HTTP server for media tests that records what clients sent and can answer slowly."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import NamedTuple

import pytest


class Route(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes
    delay_s: float = 0.0


class RecordingServer(NamedTuple):
    base: str
    routes: dict[str, Route]
    seen: list[tuple[str, dict[str, str]]]  # (path, request headers, lower-cased), in order


@pytest.fixture
def recording_server() -> Iterator[RecordingServer]:
    routes: dict[str, Route] = {}
    seen: list[tuple[str, dict[str, str]]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            route = routes.get(self.path, Route(404, {}, b""))
            time.sleep(route.delay_s)
            try:
                self.send_response(route.status)
                for key, value in route.headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                self.close_connection = True

        def log_message(self, *args) -> None:  # noqa: ANN002 - quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield RecordingServer(f"http://127.0.0.1:{server.server_address[1]}", routes, seen)
    finally:
        server.shutdown()
        server.server_close()
