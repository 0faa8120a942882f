"""Server-sent events for streamed completions.

Framing follows OpenAI: every event is `data: <json>\n\n`; an error after the stream has
started is one `data: {"error": ...}` event; `data: [DONE]` always ends the stream. When
the client goes away, the model deployment's stream is cancelled so the engine aborts.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from openai.types.completion_usage import CompletionUsage
from pydantic import BaseModel

from deployments.calls import Delta
from ingress.errors import as_serve_error, error_body
from ingress.metrics import record_inter_token_latency, record_tokens
from ingress.responses import ChatAccumulator, ChunkFactory, CompletionChunkFactory

DONE_EVENT = "data: [DONE]\n\n"


def sse_event(payload: BaseModel | dict[str, Any]) -> str:
    """One SSE `data:` event holding a JSON object."""
    if isinstance(payload, BaseModel):
        body = payload.model_dump_json(exclude_unset=True)
    else:
        body = json.dumps(payload, separators=(",", ":"))
    return f"data: {body}\n\n"


async def prepend(first: list[Delta], rest: AsyncIterator[list[Delta]]) -> AsyncIterator[list[Delta]]:
    """Yield an already-received batch, then the remainder of the stream."""
    yield first
    async for batch in rest:
        yield batch


async def completion_events(
    stream: AsyncIterator[list[Delta]],
    chunks: ChunkFactory | CompletionChunkFactory,
    source: Any = None,
    choices_per_prompt: int = 0,
) -> AsyncIterator[str]:
    """Chat or text completion chunks as SSE; `source` is cancelled if the client leaves early."""
    accumulator = ChatAccumulator(choices_per_prompt=choices_per_prompt)
    started: set[int] = set()
    finished = False
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
                if delta.text or delta.finish_reason or delta.tool_calls:
                    # the whole text only for a finishing chunk (its grounding), not per delta
                    text = accumulator.text_of(delta.index) if delta.finish_reason else ""
                    yield sse_event(chunks.content(delta, text))
        usage = accumulator.usage()
        _record_stream(chunks.model, usage, first_at, last_at, len(started))
        if chunks.include_usage:
            yield sse_event(chunks.usage(usage))
        finished = True
    except Exception as exc:  # after the headers went out, errors travel in-band
        error = as_serve_error(exc)
        yield sse_event(error_body(error.message, error.error_type, error.param, error.code))
        finished = True
    finally:
        if not finished and source is not None and hasattr(source, "cancel"):
            source.cancel()
    yield DONE_EVENT


def _record_stream(model: str, usage: CompletionUsage, first_at: float, last_at: float, choices: int) -> None:
    """Token metrics of a finished stream (ITL: the mean gap per choice's token)."""
    record_tokens(model, True, usage.prompt_tokens, usage.completion_tokens)
    record_inter_token_latency(model, first_at, last_at, usage.completion_tokens // max(choices, 1))
