"""The FastAPI application of the ingress: routes that only dispatch.

Built per replica from the application config and a model router (`create_api`), never at
import time, so tests build it with fake model clients and no Ray.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
from vllm.entrypoints.openai.completion.protocol import CompletionRequest

from deployments.config import AppConfig
from deployments.errors import InvalidRequestError
from ingress import seeds
from ingress.auth import ApiKeyCheck, configured_keys
from ingress.chat_completions import create_chat_completion
from ingress.completions import create_completion
from ingress.errors import PayloadTooLargeError, as_serve_error, install_error_handlers
from ingress.media.resolve import MediaResolver
from ingress.metrics import RequestTimer
from ingress.openapi import answers, install_schemas, json_body
from ingress.request_ids import echo_headers, request_id_of
from ingress.router import ModelRouter

_READY_PROBE_TIMEOUT_S = 0.5

# (parsed body, request id) -> the answer: a Response, or a dict sent as JSON.
Handler = Callable[[Any, str], Awaitable[Response | dict[str, Any]]]


async def read_json_body(request: Request, max_bytes: int) -> Any:
    """The request's JSON body; 413 past `max_bytes`, 400 when it is not JSON."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLargeError(f"Request body exceeds {max_bytes} bytes")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > max_bytes:
            raise PayloadTooLargeError(f"Request body exceeds {max_bytes} bytes")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequestError("The request body is not valid JSON") from None


def create_api(config: AppConfig, router: ModelRouter) -> FastAPI:
    """The OpenAI-compatible HTTP API over `router`."""
    app = FastAPI(title="qwen-vl-serve", summary="OpenAI-compatible API for Qwen-VL models")
    install_error_handlers(app)
    install_schemas(app)
    media = MediaResolver(config.ingress.media)
    max_n = config.ingress.max_n
    api = APIRouter(dependencies=[Depends(ApiKeyCheck(configured_keys(config.ingress)))])

    async def serve_body(request: Request, handler: Handler) -> Response:
        """Read the body, run `handler`, count the request (ingress/metrics.py)."""
        request_id = request_id_of(request)
        timer = RequestTimer.start(config)
        try:
            body = await read_json_body(request, config.ingress.max_body_bytes)
            timer.read(body)
            answer = await handler(body, request_id)
        except Exception as exc:  # counted here, answered by ingress/errors.py's handlers
            error = as_serve_error(exc)
            timer.failed(error)
            if error is exc:
                raise
            raise error from None
        if isinstance(answer, dict):
            answer = JSONResponse(answer, headers=echo_headers(request_id))
        return timer.answered(answer)

    @api.post(
        "/v1/chat/completions",
        openapi_extra=json_body(ChatCompletionRequest),
        responses=answers(ChatCompletion, ChatCompletionChunk),
    )
    async def chat_completions(request: Request) -> Response:
        """Chat completion (OpenAI), streamed or whole; text, image and video parts."""
        return await serve_body(request, lambda body, rid: create_chat_completion(body, rid, router, media, max_n))

    @api.post("/v1/completions", openapi_extra=json_body(CompletionRequest), responses=answers(Completion, Completion))
    async def completions(request: Request) -> Response:
        """Text completion (OpenAI legacy): a plain prompt, no chat template."""
        return await serve_body(request, lambda body, rid: create_completion(body, rid, router, max_n))

    @api.post(
        "/generate",
        openapi_extra=json_body(seeds.GenerateBody.model_json_schema()),
        responses=answers(seeds.GenerateAnswer.model_json_schema()),
    )
    async def generate(request: Request) -> Response:
        """The seeds' `{"messages": [...]}` -> `{"response": ...}`."""
        return await serve_body(request, lambda body, rid: seeds.generate(body, rid, router, media, max_n))

    @api.post(
        "/",
        openapi_extra=json_body(seeds.PromptBody.model_json_schema()),
        responses=answers(seeds.PromptAnswer.model_json_schema()),
    )
    async def prompt(request: Request) -> Response:
        """The seeds' `{"prompt": ...}` -> `{"response", "status", "time"}`."""
        return await serve_body(request, lambda body, rid: seeds.prompt(body, rid, router, media, max_n))

    @api.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        """The models whose engine has answered (not merely configured)."""
        if len(router.ready_models()) < len(router.routes):
            await router.probe(_READY_PROBE_TIMEOUT_S)
        cards = [_model_card(r.info) if r.info else _model_card_from_config(r.config.name) for r in router.listed_routes()]
        return {"object": "list", "data": cards}

    @api.get("/v1/models/{model:path}")
    async def retrieve_model(model: str) -> dict[str, Any]:
        """One model's card; 404 for a name this server does not serve."""
        route = router.route_to_model(model)
        if route.info is None:
            await router.probe(_READY_PROBE_TIMEOUT_S)
        if route.info is None:
            return _model_card_from_config(route.config.name)
        return _model_card(route.info)

    @app.get("/health")
    async def health() -> JSONResponse:
        """200 once every model's engine answers (or is scaled to zero), else 503 (no key needed)."""
        status = await router.probe(config.ingress.health_timeout_s)
        ready = all(status.values())
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "models": status},
            status_code=200 if ready else 503,
        )

    app.include_router(api)
    return app


def _model_card(info) -> dict[str, Any]:  # noqa: ANN001 - deployments.calls.ModelInfo
    return {
        "id": info.name,
        "object": "model",
        "created": info.created,
        "owned_by": "qwen-vl-serve",
        "max_model_len": info.max_model_len,
    }


def _model_card_from_config(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "qwen-vl-serve"}
