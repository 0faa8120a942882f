"""The FastAPI application of the ingress: routes that only dispatch.

Built per replica from the application config and a model router (`create_api`), never at
import time, so tests build it with fake model clients and no Ray.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from deployments.config import AppConfig
from deployments.errors import InvalidRequestError
from ingress.chat_completions import create_chat_completion
from ingress.errors import PayloadTooLargeError, as_serve_error, install_error_handlers
from ingress.media import MediaResolver
from ingress.metrics import RequestTimer
from ingress.router import ModelRouter

_READY_PROBE_TIMEOUT_S = 0.5


def request_id_of(request: Request) -> str:
    """The client's `X-Request-Id` when it sent a usable one, else a fresh id."""
    given = request.headers.get("x-request-id", "")
    if 0 < len(given) <= 128 and given.isprintable():
        return given
    return uuid.uuid4().hex


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
    limits = MediaResolver(config.ingress.media)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        request_id = request_id_of(request)
        timer = RequestTimer.start(config)
        try:
            body = await read_json_body(request, config.ingress.max_body_bytes)
            timer.read(body)
            response = await create_chat_completion(body, request_id, router, limits, config.ingress.max_n)
        except Exception as exc:  # counted here, answered by ingress/errors.py's handlers
            error = as_serve_error(exc)
            timer.failed(error)
            if error is exc:
                raise
            raise error from None
        return timer.answered(response)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        if len(router.ready_models()) < len(router.routes):
            await router.probe(_READY_PROBE_TIMEOUT_S)
        return {"object": "list", "data": [_model_card(info) for info in router.ready_models()]}

    @app.get("/v1/models/{model:path}")
    async def retrieve_model(model: str) -> dict[str, Any]:
        route = router.route_to_model(model)
        if route.info is None:
            await router.probe(_READY_PROBE_TIMEOUT_S)
        if route.info is None:
            return _model_card_from_config(route.config.name)
        return _model_card(route.info)

    @app.get("/health")
    async def health() -> JSONResponse:
        status = await router.probe(config.ingress.health_timeout_s)
        ready = all(status.values())
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "models": status},
            status_code=200 if ready else 503,
        )

    return app


def _model_card(info) -> dict[str, Any]:  # noqa: ANN001 - deployments.protocol.ModelInfo
    return {
        "id": info.name,
        "object": "model",
        "created": info.created,
        "owned_by": "qwen-vl-serve",
        "max_model_len": info.max_model_len,
    }


def _model_card_from_config(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "qwen-vl-serve"}
