"""`POST /v1/chat/completions`: validate, route, resolve media, call the model, answer.

The route handler in ingress/api.py only dispatches here. Errors raised before the first
token become ordinary HTTP errors; errors after the stream started travel in-band
(ingress/sse.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from fastapi.responses import JSONResponse, StreamingResponse
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

from deployments.calls import ChatPrompt, Delta, GenerateCall
from ingress.answering import respond
from ingress.grounding import grounder_for
from ingress.media.resolve import MediaResolver
from ingress.messages import build_chat_prompt
from ingress.request import for_engine, parse_chat_request
from ingress.request_ids import echo_headers
from ingress.responses import ChunkFactory, now
from ingress.router import ModelRouter, Route


class StartedChat(NamedTuple):
    """A validated chat request, its route, its prompt (media resolved) and the model's stream."""

    request: ChatCompletionRequest
    route: Route
    prompt: ChatPrompt
    stream: AsyncIterator[list[Delta]]
    completion_id: str  # `chatcmpl-<request id>`, also the engine's request id


async def start_chat(
    body: Any, request_id: str, router: ModelRouter, limits: MediaResolver, max_n: int = 8
) -> StartedChat:
    """Validate `body`, resolve its media and start the model's stream."""
    request = parse_chat_request(body, max_n)
    route = router.route_to_model(request.model)
    prompt = await build_chat_prompt(body["messages"], route.config, limits, request.mm_processor_kwargs)
    call = GenerateCall(request_id=f"chatcmpl-{request_id}", prompt=prompt, request=for_engine(request))
    return StartedChat(request, route, prompt, route.client.generate(call), call.request_id)


async def create_chat_completion(
    body: Any, request_id: str, router: ModelRouter, limits: MediaResolver, max_n: int = 8
) -> JSONResponse | StreamingResponse:
    """Serve one chat completion request, streamed or whole."""
    request, route, prompt, stream, completion_id = await start_chat(body, request_id, router, limits, max_n)
    created, model = now(), route.config.name
    grounder = grounder_for(route.config.family, prompt.images)
    chunks = None
    if request.stream:
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        chunks = ChunkFactory(completion_id, model, created, include_usage, grounder)
    return await respond(
        stream,
        chunks,
        lambda answer: answer.completion(completion_id, model, created, grounder),
        echo_headers(request_id),
    )
