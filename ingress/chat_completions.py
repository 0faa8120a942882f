"""`POST /v1/chat/completions`: validate, route, resolve media, call the model, answer.

The route handler in ingress/api.py only dispatches here. Errors raised before the first
token become ordinary HTTP errors (a 400 stays a 400 for streaming requests too); errors
after the stream started travel in-band (ingress/streaming.py).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse, StreamingResponse

from deployments.protocol import GenerateCall
from ingress.media import MediaResolver
from ingress.messages import build_chat_prompt
from ingress.protocol import for_engine, parse_chat_request
from ingress.responses import ChatAccumulator, ChunkFactory, now
from ingress.router import ModelRouter
from ingress.streaming import chat_events, prepend


async def create_chat_completion(
    body: Any, request_id: str, router: ModelRouter, limits: MediaResolver, max_n: int = 8
) -> JSONResponse | StreamingResponse:
    """Serve one chat completion request, streamed or whole."""
    request = parse_chat_request(body, max_n)
    route = router.route_to_model(request.model)
    prompt = await build_chat_prompt(body["messages"], route.config, limits, request.mm_processor_kwargs)
    completion_id = f"chatcmpl-{request_id}"
    call = GenerateCall(request_id=completion_id, prompt=prompt, request=for_engine(request))
    headers = {"x-request-id": request_id}
    created = now()
    stream = route.client.chat(call)

    if request.stream:
        first = await anext(stream, [])  # surfaces validation errors as a proper status
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        chunks = ChunkFactory(completion_id, route.config.name, created, include_usage)
        return StreamingResponse(
            chat_events(prepend(first, stream), chunks, source=stream),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
        )

    accumulator = ChatAccumulator()
    async for batch in stream:
        for delta in batch:
            accumulator.add(delta)
    completion = accumulator.completion(completion_id, route.config.name, created)
    return JSONResponse(completion.model_dump(mode="json", exclude_unset=True), headers=headers)
