"""How every POST endpoint runs: the body read (size-capped), the request observed, the
endpoint called, a failure classified once.

`post` registers an endpoint: an async function of the parsed JSON body and the `Exchange`
(the request id, its metrics observer and the app's services) that returns a response (or a
dict, sent as JSON). A failure is classified here (deployments/errors.py), counted, and
re-raised as a `ServeError` for ingress/errors.py to render; a stream is counted when it
ends (ingress/sse.py).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from deployments.config import AppConfig
from deployments.errors import (
    InvalidRequestError,
    PayloadTooLargeError,
    RequestTimeoutError,
    as_serve_error,
    cancelling,
)
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
        limits = app.config.ingress
        body = await read_json_body(request, limits.max_body_bytes, limits.body_timeout_s)
        observer.read(body)
        answer = await endpoint(body, Exchange(request_id, observer, app))
    except (Exception, asyncio.CancelledError) as exc:  # rendered by ingress/errors.py's handlers
        if isinstance(exc, asyncio.CancelledError) and cancelling():
            raise  # the client left: nobody to answer
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


async def read_json_body(request: Request, max_bytes: int, timeout_s: float) -> Any:
    """The request's JSON body; 413 past `max_bytes`, 408 past `timeout_s` (a slow upload
    would hold one of the replica's request slots), 400 when it is not JSON or not Unicode."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLargeError(f"Request body exceeds {max_bytes} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for piece in request.stream():
                body += piece
                if len(body) > max_bytes:
                    raise PayloadTooLargeError(f"Request body exceeds {max_bytes} bytes")
    except TimeoutError:
        raise RequestTimeoutError(
            f"The request body was not received within {timeout_s:g} seconds", code="request_timeout"
        ) from None
    try:
        parsed = json.loads(body)
    except RecursionError:
        raise InvalidRequestError("The request body nests too deeply", code="nesting_too_deep") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequestError("The request body is not valid JSON") from None
    if _SURROGATE_ESCAPE.search(body):
        _refuse_lone_surrogates(parsed)
    return parsed


# `\uD800`-`\uDFFF` escapes: JSON's only way to carry a surrogate (raw ones are not UTF-8).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _refuse_lone_surrogates(body: Any) -> None:
    """400 naming the top-level field that holds a lone UTF-16 surrogate (not Unicode text:
    nothing downstream can encode it). Pairs were already joined into one character."""
    for key, value in body.items() if isinstance(body, dict) else [(None, body)]:
        try:
            json.dumps([key, value], ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequestError(
                "The request holds a lone UTF-16 surrogate escape, which is not valid Unicode text",
                param=key if isinstance(key, str) and key.isprintable() and key.isascii() else None,
                code="invalid_unicode",
            ) from None
