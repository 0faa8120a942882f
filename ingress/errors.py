"""Every failure becomes an OpenAI error here, in one place.

Maps exceptions to `{"error": {"message", "type", "param", "code"}}` with the matching
HTTP status. Our own `ServeError`s carry client-safe text; anything else is our bug: a 500
whose message never repeats exception internals (paths, addresses) to the client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from ray.exceptions import RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from starlette.exceptions import HTTPException as StarletteHTTPException

from deployments.errors import EngineUnavailableError, InvalidRequestError, ServeError
from ingress.request_ids import echo_headers

logger = logging.getLogger("ray.serve")

RETRY_AFTER_S = 1
_MAX_REPORTED_PROBLEMS = 3


class PayloadTooLargeError(ServeError):
    """The request body exceeds the configured limit (413)."""

    status_code = 413
    error_type = "invalid_request_error"


class AuthenticationError(ServeError):
    """Missing or wrong API key (401)."""

    status_code = 401
    error_type = "invalid_request_error"


def error_body(message: str, error_type: str, param: str | None = None, code: Any = None) -> dict:
    """The OpenAI error object."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def validation_error(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> InvalidRequestError:
    """A pydantic failure as one 400 naming the first bad field, listing at most a few."""
    problems = exc.errors(include_url=False, include_input=False)[:_MAX_REPORTED_PROBLEMS]
    described = []
    for problem in problems:
        loc = dotted_param((*prefix, *problem["loc"]))
        described.append(f"{loc}: {problem['msg']}" if loc else problem["msg"])
    first = dotted_param((*prefix, *problems[0]["loc"])) if problems else None
    return InvalidRequestError("Invalid request: " + "; ".join(described), param=first or None)


def dotted_param(loc: tuple[Any, ...]) -> str:
    """`('messages', 0, 'content')` -> `messages[0].content`; drops pydantic's union tags."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and not _is_union_tag(part):
            out += f".{part}" if out else part
    return out


def _is_union_tag(part: str) -> bool:
    return part.startswith(("function-", "tagged-union", "union[")) or "[" in part or part in {
        "str", "int", "float", "bool", "list", "dict", "none", "json-or-python"
    } or part[:1].isupper()


def as_serve_error(exc: BaseException) -> ServeError:
    """Classify any exception raised while serving a request."""
    if isinstance(exc, RayTaskError):
        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
        if cause is not exc:
            return as_serve_error(cause)
    if isinstance(exc, ServeError):
        return exc
    if isinstance(exc, ValidationError):
        return validation_error(exc)
    if isinstance(exc, (BackPressureError, DeploymentUnavailableError)):
        return EngineUnavailableError(
            "The model is overloaded; retry shortly.", code="overloaded"
        )
    logger.error("Unhandled error while serving a request", exc_info=exc)
    return ServeError("The server had an error while processing your request.")


def error_response(exc: BaseException, request_id: str | None = None) -> JSONResponse:
    """The JSON response for an exception, with Retry-After when retrying can help."""
    error = as_serve_error(exc)
    headers = echo_headers(request_id)
    if error.status_code in (429, 503):
        headers["retry-after"] = str(RETRY_AFTER_S)
    return JSONResponse(
        error_body(error.message, error.error_type, error.param, error.code),
        status_code=error.status_code,
        headers=headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Make FastAPI's own errors (404 route, 405, body validation) OpenAI-shaped too."""

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
        return error_response(exc, request.headers.get("x-request-id"))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()[:_MAX_REPORTED_PROBLEMS]
        param = dotted_param(tuple(errors[0]["loc"][1:])) if errors else None
        text = "; ".join(f"{dotted_param(tuple(e['loc'][1:]))}: {e['msg']}" for e in errors)
        return JSONResponse(
            error_body(f"Invalid request: {text}", "invalid_request_error", param or None),
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(
            error_body(str(exc.detail), kind), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc, request.headers.get("x-request-id"))
