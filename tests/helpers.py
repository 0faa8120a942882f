"""Small helpers shared by unit and end-to-end tests (images, SSE parsing)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from PIL import Image


def image_data_url(width: int = 64, height: int = 48, seed: int = 0, fmt: str = "PNG") -> str:
    """A random RGB image as a base64 data URL."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    mime = "image/png" if fmt == "PNG" else f"image/{fmt.lower()}"
    return f"data:{mime};base64," + base64.b64encode(buffer.getvalue()).decode()


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
