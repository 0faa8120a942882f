"""Server-sent events for streamed completions: first-item peek, framing, in-band error, [DONE].

`stream_response` waits for the model's first batch before the headers go out, so errors
raised before it (the model's validation of the request) surface as an ordinary HTTP
status, a 400 staying a 400 for streaming requests too. Framing follows OpenAI: every event
is `data: <json>\n\n`; an error after the stream has started is one `data: {"error": ...}`
event (a model stream cut mid-way, a `CancelledError` that is not the client's, too);
`data: [DONE]` always ends the stream. When the client goes away, the model
deployment's stream is cancelled so the engine aborts. The request's metrics are recorded
here as the stream goes: time to first token, tokens and inter-token latency, its end.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from deployments.calls import Delta
from deployments.errors import as_serve_error, cancelling
from ingress.errors import error_body
from ingress.metrics import RequestObserver
from ingress.responses import ChatAccumulator, ChunkFactory, CompletionChunkFactory

DONE_EVENT = "data: [DONE]\n\n"


def sse_event(payload: BaseModel | dict[str, Any]) -> str:
    """One SSE `data:` event holding a JSON object."""
    if isinstance(payload, BaseModel):
        body = payload.model_dump_json(exclude_unset=True)
    else:
        body = json.dumps(payload, separators=(",", ":"))
    return f"data: {body}\n\n"


async def stream_response(
    stream: AsyncIterable[list[Delta]],
    chunks: ChunkFactory | CompletionChunkFactory,
    headers: dict[str, str],
    observer: RequestObserver,
    choices_per_prompt: int = 0,
) -> StreamingResponse:
    """The SSE answer; the first batch is awaited first (a failure there is an HTTP error)."""
    iterator = aiter(stream)
    first = await anext(iterator, [])
    observer.first_token()
    return StreamingResponse(
        completion_events(prepend(first, iterator), chunks, observer, source=stream,
                          choices_per_prompt=choices_per_prompt),
        media_type="text/event-stream",
        headers={**headers, "cache-control": "no-cache"},
    )


async def prepend(first: list[Delta], rest: AsyncIterator[list[Delta]]) -> AsyncIterator[list[Delta]]:
    """Yield an already-received batch, then the remainder of the stream."""
    yield first
    async for batch in rest:
        yield batch


async def completion_events(
    stream: AsyncIterator[list[Delta]],
    chunks: ChunkFactory | CompletionChunkFactory,
    observer: RequestObserver,
    source: Any = None,
    choices_per_prompt: int = 0,
) -> AsyncIterator[str]:
    """Chat or text completion chunks as SSE; `source` is cancelled if the client leaves early."""
    accumulator = ChatAccumulator(choices_per_prompt=choices_per_prompt)
    started: set[int] = set()
    finished = False
    error_type = None
    first_at = last_at = 0.0
    try:
        async for batch in stream:
            last_at = time.perf_counter()
            first_at = first_at or last_at
            for delta in batch:
                if delta.index not in started:
                    started.add(delta.index)
                    opening = chunks.role(delta.index)
                    if opening is not None:
                        yield sse_event(opening)
                accumulator.add(delta)
                # a token may decode to no text yet (half of a multi-byte character): its
                # logprobs still go out, or the stream would carry fewer tokens than it counts
                if delta.text or delta.logprobs or delta.finish_reason or delta.tool_calls:
                    # the whole text only for a finishing chunk (its grounding), not per delta
                    text = accumulator.text_of(delta.index) if delta.finish_reason else ""
                    yield sse_event(chunks.content(delta, text))
        usage = accumulator.usage()
        observer.tokens(usage.prompt_tokens, usage.completion_tokens)
        observer.inter_token_latency(first_at, last_at, usage.completion_tokens // max(len(started), 1))
        if chunks.include_usage:
            yield sse_event(chunks.usage(usage))
        finished = True
    except (Exception, asyncio.CancelledError) as exc:  # after the headers went out, errors travel in-band
        if isinstance(exc, asyncio.CancelledError) and cancelling():
            raise  # the client left: nobody to tell (the source is cancelled below)
        error = as_serve_error(exc)
        error_type = "overloaded" if error.code == "overloaded" else "stream_error"
        yield sse_event(error_body(error.message, error.error_type, error.param, error.code))
        finished = True
    finally:
        if not finished and source is not None and hasattr(source, "cancel"):
            source.cancel()
        observer.finished(200, error_type)
    yield DONE_EVENT
