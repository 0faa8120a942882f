"""Mixed chat traffic for the fault and soak tests, and the judgement of each answer.

Every request ends as one `Outcome`: answered (`ok`), a clear error (an OpenAI-shaped 5xx
JSON body, or a stream whose last event before `data: [DONE]` is one `{"error": ...}`), or
`broken`: anything else, a timeout, a dropped connection, a 4xx, a malformed body or
stream. The tests then say which kinds they accept.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.helpers import image_data_url, image_part, sse_payloads

OK, STREAM_ERROR, HTTP_ERROR, BROKEN = "ok", "stream_error", "http_error", "broken"


@dataclass(frozen=True)
class Outcome:
    model: str
    stream: bool
    kind: str
    status: int  # HTTP status (0: no answer)
    code: str | None  # the error's `code`, if any
    started: float
    ended: float
    detail: str = ""


def chat_body(model: str, stream: bool, image: str | None, max_tokens: int) -> dict:
    """A chat request: text, or an image and text; exactly `max_tokens` tokens out."""
    text = {"type": "text", "text": "Describe this."}
    content = [image_part(image), text] if image else [text]
    return {"model": model, "messages": [{"role": "user", "content": content}], "stream": stream,
            "max_tokens": max_tokens, "ignore_eos": True}


def image_pool(size: int) -> list[str]:
    """`size` distinct small images as data URLs (sizes vary, so resizing varies too)."""
    return [image_data_url(48 + seed % 5 * 16, 40 + seed % 3 * 8, seed=seed) for seed in range(size)]


async def send_chat(http: httpx.AsyncClient, url: str, body: dict, timeout_s: float) -> Outcome:
    """Send one chat request and judge its answer; `broken` past `timeout_s` in all (never raises)."""
    model, stream, started = body["model"], body["stream"], time.monotonic()

    def outcome(kind: str, status: int, code: str | None = None, detail: str = "") -> Outcome:
        return Outcome(model, stream, kind, status, code, started, time.monotonic(), detail[:300])

    try:
        async with asyncio.timeout(timeout_s), http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
            raw = (await response.aread()).decode()
        status = response.status_code
        if status != 200:
            error = _error_object(raw)
            if status >= 500 and error is not None:
                return outcome(HTTP_ERROR, status, error.get("code"))
            return outcome(BROKEN, status, detail=raw)
        if not stream:
            answer = json.loads(raw)
            return outcome(OK if answer["choices"][0]["finish_reason"] else BROKEN, status, detail=raw)
        return _judge_stream(raw, outcome)
    except (httpx.HTTPError, TimeoutError, ValueError, KeyError, IndexError, AssertionError) as exc:
        return outcome(BROKEN, 0, detail=repr(exc))


def _judge_stream(raw: str, outcome: Callable[..., Outcome]) -> Outcome:
    payloads = sse_payloads(raw)
    if not payloads or payloads[-1] != "[DONE]" or "[DONE]" in payloads[:-1]:
        return outcome(BROKEN, 200, detail=f"not ended by one [DONE]: {raw[-300:]}")
    events = payloads[:-1]
    errors = [i for i, event in enumerate(events) if "error" in event]
    if errors:
        error = events[errors[0]]["error"]
        if errors != [len(events) - 1] or not (error.get("message") and error.get("type")):
            return outcome(BROKEN, 200, detail=f"error event misplaced or unclear: {raw[-300:]}")
        return outcome(STREAM_ERROR, 200, error.get("code"))
    finished = any(choice.get("finish_reason") for event in events for choice in event.get("choices", []))
    return outcome(OK if finished else BROKEN, 200, detail="" if finished else f"no finish_reason: {raw[-300:]}")


def _error_object(raw: str) -> dict | None:
    try:
        error = json.loads(raw)["error"]
    except (ValueError, KeyError, TypeError):
        return None
    return error if isinstance(error, dict) and error.get("message") and error.get("type") else None


def tally(outcomes: list[Outcome]) -> dict[str, dict[str, int]]:
    """Counts per model of each kind (with the status or error code of errors)."""
    counts: dict[str, Counter] = {}
    for o in outcomes:
        label = o.kind if o.kind == OK else f"{o.kind}:{o.code or o.status}"
        counts.setdefault(o.model, Counter())[label] += 1
    return {model: dict(sorted(c.items())) for model, c in sorted(counts.items())}


async def run_load(
    url: str, bodies: Callable[[int, int], dict], workers: int, stop: asyncio.Event, timeout_s: float,
    outcomes: list[Outcome],
) -> None:
    """`workers` loops, each sending `bodies(worker, n)` back to back until `stop` is set;
    each answer's outcome is appended to `outcomes` as it arrives."""
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)

    async def loop(http: httpx.AsyncClient, worker: int) -> None:
        n = 0
        while not stop.is_set():
            outcomes.append(await send_chat(http, url, bodies(worker, n), timeout_s))
            n += 1

    async with httpx.AsyncClient(timeout=timeout_s + 5, limits=limits) as http:
        await asyncio.gather(*(loop(http, worker) for worker in range(workers)))


def record(name: str, figures: dict) -> None:
    """Print a run's figures; also write them to `$QVS_RECORD_DIR/<name>.json` when set
    (docs/reliability.md quotes the recorded runs)."""
    text = json.dumps(figures, indent=1, sort_keys=True)
    print(f"\n{name}: {text}")
    directory = os.environ.get("QVS_RECORD_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        file_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
        (Path(directory) / f"{file_name}.json").write_text(text + "\n")
