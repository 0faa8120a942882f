"""The load generator: N chat requests, C at a time, each with its own image.

Every request is a chat completion with one PNG data URL (a distinct picture per request,
so neither server's multimodal cache answers for the engine) and a fixed output length
(`max_tokens` with `ignore_eos`, temperature 0). A stream's time to first token is the
arrival of its first content delta; its inter-token latency is the mean gap between its
tokens, (last content - first content) / (tokens - 1), which is fair to a server that
sends several tokens per SSE event (ours coalesces) and to one that sends one per event.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from dataclasses import dataclass

import aiohttp
import numpy as np
from PIL import Image

PROMPT = "Describe this picture."


def image_data_urls(count: int, width: int = 320, height: int = 240, seed: int = 0) -> list[str]:
    """`count` distinct PNG data URLs (smooth gradients, a few KB each)."""
    ys, xs = np.mgrid[0:height, 0:width]
    urls = []
    for i in range(seed, seed + count):
        pixels = np.stack([(xs + i * 7) % 256, (ys + i * 13) % 256, ((xs + ys) // 2 + i) % 256], -1)
        buffer = io.BytesIO()
        Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
        urls.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())
    return urls


def chat_body(model: str, image_url: str, output_tokens: int, stream: bool) -> dict:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": image_url}},
            {"type": "text", "text": PROMPT},
        ]}],
        "max_tokens": output_tokens,
        "ignore_eos": True,
        "temperature": 0,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


@dataclass
class Outcome:
    """One request as the client saw it (times in seconds from its start)."""

    ok: bool
    e2e: float
    ttft: float | None = None
    itl: float | None = None
    completion_tokens: int = 0
    error: str | None = None


async def _one(session: aiohttp.ClientSession, url: str, body: dict, expect_tokens: int) -> Outcome:
    start = time.perf_counter()
    first = last = None
    tokens = 0
    try:
        async with session.post(f"{url}/v1/chat/completions", json=body) as response:
            if response.status != 200:
                return Outcome(False, time.perf_counter() - start, error=f"HTTP {response.status}")
            if not body["stream"]:
                answer = await response.json()
                tokens = answer["usage"]["completion_tokens"]
            else:
                async for line in response.content:
                    if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                        continue
                    event = json.loads(line[6:])
                    if "error" in event:
                        return Outcome(False, time.perf_counter() - start, error=event["error"].get("code") or "stream")
                    if any(c.get("delta", {}).get("content") for c in event.get("choices") or []):
                        last = time.perf_counter()
                        first = first or last
                    if event.get("usage"):
                        tokens = event["usage"]["completion_tokens"]
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError) as exc:
        return Outcome(False, time.perf_counter() - start, error=type(exc).__name__)
    end = time.perf_counter()
    if tokens != expect_tokens:
        return Outcome(False, end - start, completion_tokens=tokens, error=f"{tokens} tokens")
    ttft = itl = None
    if first is not None:
        ttft = first - start
        itl = (last - first) / (tokens - 1) if tokens > 1 else None
    return Outcome(True, end - start, ttft, itl, tokens)


async def run_load(
    url: str, model: str, images: list[str], concurrency: int, output_tokens: int, stream: bool,
    timeout_s: float = 600,
) -> tuple[list[Outcome], float]:
    """Send one request per image, `concurrency` at a time; (outcomes, wall seconds)."""
    queue = list(reversed(images))
    outcomes: list[Outcome] = []
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            while queue:
                body = chat_body(model, queue.pop(), output_tokens, stream)
                outcomes.append(await _one(session, url, body, output_tokens))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return outcomes, time.perf_counter() - start
