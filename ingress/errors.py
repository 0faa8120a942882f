"""OpenAI error JSON for every failure: the FastAPI handlers that render `ServeError`s.

The errors themselves and their classification live in deployments/errors.py (the model
deployments raise them too). Routes classify a failure once (ingress/routes/dispatch.py) and
re-raise it as a `ServeError`; the handlers here render it as `{"error": {"message", "type",
"param", "code"}}` with its status, and make FastAPI's own errors (unknown route, wrong
method) OpenAI-shaped too. An exception that escaped classification is classified here.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from deployments.errors import ServeError, as_serve_error, dotted_param
from ingress.request_ids import echo_headers

RETRY_AFTER_S = 1
_MAX_REPORTED_PROBLEMS = 3


def error_body(message: str, error_type: str, param: str | None = None, code: Any = None) -> dict:
    """The OpenAI error object."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(error: ServeError, request_id: str | None = None) -> JSONResponse:
    """The JSON response for a classified error, with Retry-After when retrying can help."""
    headers = echo_headers(request_id)
    if error.status_code in (429, 503):
        headers["retry-after"] = str(RETRY_AFTER_S)
    return JSONResponse(
        error_body(error.message, error.error_type, error.param, error.code),
        status_code=error.status_code,
        headers=headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Render `ServeError`s, and FastAPI's own errors (404 route, 405, validation), as OpenAI errors."""

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
        return error_response(exc, request.headers.get("x-request-id"))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()[:_MAX_REPORTED_PROBLEMS]  # loc[0] is "body", "query" or "path"
        param = dotted_param(tuple(errors[0]["loc"][1:])) if errors else None
        text = "; ".join(f"{dotted_param(tuple(e['loc'][1:]))}: {e['msg']}" for e in errors)
        return JSONResponse(
            error_body(f"Invalid request: {text}", "invalid_request_error", param or None), status_code=400
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(
            error_body(str(exc.detail), kind), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        return error_response(as_serve_error(exc), request.headers.get("x-request-id"))
