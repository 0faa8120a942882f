"""Helpers shared by unit and end-to-end tests: paths, images, data URLs, SSE, loopback servers."""

from __future__ import annotations

import base64
import http.server
import io
import json
import re
import socket
import threading
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]  # the repository


def readme_commands() -> list[str]:
    """The README's quick start commands: serve, then run the tests."""
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick_start, flags=re.S)


def png_bytes(image: Image.Image, fmt: str = "PNG", **save) -> bytes:  # noqa: ANN003 - PIL's save options
    """`image` encoded (PNG unless `fmt` says otherwise)."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    """`data` as a base64 data URL."""
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def random_image(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    """A random RGB image."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def image_data_url(width: int = 64, height: int = 48, seed: int = 0, fmt: str = "PNG") -> str:
    """A random RGB image as a base64 data URL."""
    mime = "image/png" if fmt == "PNG" else f"image/{fmt.lower()}"
    return data_url(png_bytes(random_image(width, height, seed), fmt), mime)


def bytes_of(url: str) -> bytes:
    """The bytes of a base64 data URL."""
    return base64.b64decode(url.split(",", 1)[1])


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def sse_payloads(raw: str) -> list:
    """Parse an SSE body into its data payloads (JSON objects, and the final "[DONE]")."""
    events = [block for block in raw.split("\n\n") if block.strip()]
    payloads = []
    for event in events:
        assert event.startswith("data: "), f"not an SSE data event: {event!r}"
        data = event.removeprefix("data: ")
        payloads.append(data if data == "[DONE]" else json.loads(data))
    return payloads


def free_port() -> int:
    """A loopback TCP port nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(routes: dict[str, tuple[int, dict, bytes]]) -> Iterator[str]:
    """A loopback HTTP server answering GET `path` with `routes[path]` = (status, headers,
    body), else 404; yields its base URL. Tests may add routes while it runs."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            status, headers, body = routes.get(self.path, (404, {}, b""))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # noqa: ANN002 - quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


async def refused(work: Awaitable, status: int, code: str | None = None, param: str = "p") -> Exception:
    """Await `work` expecting a media refusal with `status` (and `code`) on `param`; the error."""
    from deployments.errors import MediaRefusedError

    with pytest.raises(MediaRefusedError) as caught:
        await work
    assert caught.value.status_code == status
    assert caught.value.param == param
    if code:
        assert caught.value.code == code
    return caught.value
