"""`POST /v1/chat/completions`: validate, route, resolve media, call the model, answer.

Errors raised before the first token become ordinary HTTP errors (a 400 stays a 400 for a
streaming request too); errors after the stream started travel in-band (ingress/sse.py).
The seeds' endpoints (seeds.py) ride on `start_chat` as well.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NamedTuple

from fastapi import APIRouter
from fastapi.responses import Response
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

from deployments.calls import ChatPrompt, Delta, GenerateCall
from ingress.grounding import grounder_for
from ingress.media.context import FitReport
from ingress.openapi import answers
from ingress.request import ChatRequest, build_prompt, check_text_length, parse_chat_request, text_length
from ingress.request_ids import echo_headers, engine_request_id
from ingress.responses import ChunkFactory, include_usage, now, whole_response
from ingress.router import Route
from ingress.routes.dispatch import Exchange, Services, post
from ingress.sse import stream_response

FITTED_HEADER = "X-Images-Fitted"  # `count=N; scale=S; tokens=A->B`: media scaled down to fit the context


class StartedChat(NamedTuple):
    """A validated chat request, its route, its prompt (media resolved) and the model's stream."""

    request: ChatRequest
    route: Route
    prompt: ChatPrompt
    stream: AsyncIterator[list[Delta]]
    completion_id: str  # `chatcmpl-<request id>` (the engine's id is unique: request_ids.py)
    fitted: FitReport | None  # the media scaled down to fit the model's context


async def start_chat(body: object, exchange: Exchange) -> StartedChat:
    """Validate `body`, route it, resolve its media and start the model's stream."""
    app = exchange.app
    request = parse_chat_request(body, app.max_n, app.media.config)
    route = app.router.route_to_model(request.sampling.model)
    context, item_tokens = await app.router.media_limits(route)
    if context is not None:
        check_text_length(text_length(request), context, app.config.ingress.prompt_chars_per_token, "messages")
    prompt, fitted = await build_prompt(request, route.config, app.media, context, item_tokens)
    completion_id = f"chatcmpl-{exchange.request_id}"
    call = GenerateCall(request_id=engine_request_id(completion_id), prompt=prompt, request=request.sampling)
    return StartedChat(request, route, prompt, route.client.generate(call), completion_id, fitted)


async def chat_completions(body: object, exchange: Exchange) -> Response:
    """Chat completion (OpenAI), streamed or whole; text, image and video parts."""
    chat = await start_chat(body, exchange)
    sampling, completion_id = chat.request.sampling, chat.completion_id
    created, model = now(), chat.route.config.name
    grounder = grounder_for(chat.route.config.family, chat.prompt.images)
    headers = echo_headers(exchange.request_id)
    if chat.fitted is not None:
        headers[FITTED_HEADER] = chat.fitted.header()
    if sampling.stream:
        chunks = ChunkFactory(completion_id, model, created, include_usage(sampling), grounder)
        return await stream_response(chat.stream, chunks, headers, exchange.observer)
    return await whole_response(
        chat.stream, lambda answer: answer.completion(completion_id, model, created, grounder), headers,
        exchange.observer,
    )


def register(api: APIRouter, app: Services) -> None:
    post(api, app, "/v1/chat/completions", chat_completions, ChatCompletionRequest,
         answers(ChatCompletion, ChatCompletionChunk))
