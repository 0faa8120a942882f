"""Turn a model's delta stream into the HTTP answer: SSE when streamed, else one JSON body.

Shared by `/v1/chat/completions` and `/v1/completions`; errors raised before the first
batch (the model's validation of the request) surface as an ordinary HTTP status, a 400
staying a 400 for streaming requests too.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable

from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from deployments.calls import Delta
from ingress.responses import ChatAccumulator, ChunkFactory, CompletionChunkFactory
from ingress.sse import completion_events, prepend


async def collect(stream: AsyncIterable[list[Delta]], choices_per_prompt: int = 0) -> ChatAccumulator:
    """Every delta of a whole (non-streamed) answer, accumulated."""
    accumulator = ChatAccumulator(choices_per_prompt=choices_per_prompt)
    async for batch in stream:
        for delta in batch:
            accumulator.add(delta)
    return accumulator


async def respond(
    stream: AsyncIterable[list[Delta]],
    chunks: ChunkFactory | CompletionChunkFactory | None,
    whole: Callable[[ChatAccumulator], BaseModel],
    headers: dict[str, str],
    choices_per_prompt: int = 0,
) -> JSONResponse | StreamingResponse:
    """SSE events when `chunks` is given (a streamed request), else the `whole` answer."""
    if chunks is not None:
        iterator = aiter(stream)
        first = await anext(iterator, [])  # surfaces validation errors as a proper status
        return StreamingResponse(
            completion_events(prepend(first, iterator), chunks, source=stream, choices_per_prompt=choices_per_prompt),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
        )
    accumulator = await collect(stream, choices_per_prompt)
    return JSONResponse(whole(accumulator).model_dump(mode="json", exclude_unset=True), headers=headers)
