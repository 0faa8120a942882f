"""How every POST endpoint runs: the body read (size-capped), the request observed, the
endpoint called, a failure classified once.

`post` registers an endpoint: an async function of the parsed JSON body and the `Exchange`
(the request id, its metrics observer and the app's services) that returns a response (or a
dict, sent as JSON). A failure is classified here (deployments/errors.py), counted, and
re-raised as a `ServeError` for ingress/errors.py to render; a stream is counted when it
ends (ingress/sse.py).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from deployments.config import AppConfig
from deployments.errors import InvalidRequestError, PayloadTooLargeError, as_serve_error
from ingress.media import MediaResolver
from ingress.metrics import RequestObserver
from ingress.openapi import json_body
from ingress.request_ids import echo_headers, request_id_of
from ingress.router import ModelRouter


@dataclass(frozen=True)
class Services:
    """What the endpoints of one ingress replica share."""

    config: AppConfig
    router: ModelRouter
    media: MediaResolver
    served: frozenset[str]  # configured model names (metric tags)

    @classmethod
    def build(cls, config: AppConfig, router: ModelRouter) -> Services:
        return cls(config, router, MediaResolver(config.ingress.media), frozenset(m.name for m in config.models))

    @property
    def max_n(self) -> int:
        return self.config.ingress.max_n


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request being served: its id, its metrics, and the app's services."""

    request_id: str
    observer: RequestObserver
    app: Services


# (parsed body, exchange) -> the answer: a Response, or a dict sent as JSON.
Endpoint = Callable[[Any, Exchange], Awaitable[Response | dict[str, Any]]]


def post(api: APIRouter, app: Services, path: str, endpoint: Endpoint, body: type[BaseModel] | dict,
         answers: dict[int | str, Any]) -> None:
    """Register `endpoint` at `POST path`, documented with its `body` and `answers` schemas."""

    async def route(request: Request) -> Response:
        return await serve(request, app, endpoint)

    api.add_api_route(
        path, route, methods=["POST"], name=endpoint.__name__, description=endpoint.__doc__,
        openapi_extra=json_body(body), responses=answers,
    )


async def serve(request: Request, app: Services, endpoint: Endpoint) -> Response:
    """Read the body, run `endpoint`, count the request; classify a failure once."""
    request_id = request_id_of(request)
    observer = RequestObserver(app.served, app.config.default_model_name)
    try:
        body = await read_json_body(request, app.config.ingress.max_body_bytes)
        observer.read(body)
        answer = await endpoint(body, Exchange(request_id, observer, app))
    except Exception as exc:  # rendered by ingress/errors.py's handlers
        error = as_serve_error(exc)
        observer.failed(error)
        if error is exc:
            raise
        raise error from None
    if isinstance(answer, dict):
        answer = JSONResponse(answer, headers=echo_headers(request_id))
    if not isinstance(answer, StreamingResponse):  # a stream is counted when it ends
        observer.finished(answer.status_code)
    return answer


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
