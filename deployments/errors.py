"""The one error hierarchy of the app, and the one place exceptions are classified.

Every failure a client may see is a `ServeError` carrying its HTTP status, OpenAI error
`type`, `param` and `code`: raised in the ingress (validation, media, routing) or in a model
deployment (Ray re-raises those across the handle, keeping class and fields). `as_serve_error`
turns anything else into one of them, once, where the request fails; ingress/errors.py only
renders them as OpenAI error JSON. Messages are client-safe: never paths, addresses or
internal exception text.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, ClassVar

from pydantic import ValidationError
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import (
    BackPressureError,
    DeploymentUnavailableError,
    ReplicaUnavailableError,
    RequestCancelledError,
)

logger = logging.getLogger("ray.serve")

_MAX_REPORTED_PROBLEMS = 3


class ServeError(Exception):
    """Base of the errors that reach the client with their own status and message (500)."""

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "internal_server_error"

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def __init_subclass__(cls, status: int | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status_code = status

    def __reduce__(self):  # keep message/param/code when Ray pickles the exception
        return (type(self), (self.message, self.param, self.code))


class InvalidRequestError(ServeError, status=400):
    """The request cannot be served as sent."""

    error_type = "invalid_request_error"


class AuthenticationError(InvalidRequestError, status=401):
    """Missing or wrong API key."""


class ModelNotFoundError(InvalidRequestError, status=404):
    """No deployment serves the requested model."""


class PayloadTooLargeError(InvalidRequestError, status=413):
    """The request body exceeds the configured limit."""


class RequestTimeoutError(InvalidRequestError, status=408):
    """The client took too long to send its request body."""


class MediaRefusedError(InvalidRequestError):
    """One image or video of the request refused; `code` says why (None: a malformed reference).

    The media resolver counts each refusal by its code where it refuses (ingress/metrics.py);
    `codes` lists every code raised with this class or a subclass (a test holds it to that).
    """

    codes: ClassVar[frozenset[str]] = frozenset({
        "media_too_large", "too_many_frames", "too_many_images", "too_many_videos", "image_not_supported",
        "video_not_supported", "unsupported_media_source", "invalid_media_url", "media_url_forbidden",
        "media_path_forbidden", "media_not_found", "media_fetch_failed", "media_fetch_timeout",
        "media_too_many_redirects", "invalid_video_options", "invalid_image", "invalid_video",
        "unsupported_content_encoding", "media_timeout",
    })


class UnprocessableMediaError(MediaRefusedError, status=422):
    """Media were fetched but cannot be decoded or processed."""


class MediaTimeoutError(MediaRefusedError, status=504):
    """The media of a request took longer than the server's per-request deadline."""

    error_type = "timeout_error"


class EngineUnavailableError(ServeError, status=503):
    """The engine is dead or overloaded; the client may retry."""

    error_type = "service_unavailable"


# A model's replica or engine died under the request; Serve replaces the replica (its
# health check asks the engine), so a retry is served once the new one is up.
MODEL_UNAVAILABLE = "model_unavailable"


def model_unavailable() -> EngineUnavailableError:
    """The 503 of a request whose replica or engine died while serving it."""
    return EngineUnavailableError("The model stopped while serving this request; retry shortly.", code=MODEL_UNAVAILABLE)


def cancelling() -> bool:
    """Whether the current task is being cancelled (its caller went away), as opposed to a
    `CancelledError` coming up from something it awaited (a stream cut on the other side)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def as_invalid_request(exc: Exception, prompt_param: str = "messages") -> InvalidRequestError:
    """A vLLM rejection of the request (ValueError, VLLMValidationError) as a 400.

    vLLM's messages are written for API clients (`vllm serve` returns them as they are);
    its `parameter` attribute, when present, names the offending field. A prompt longer
    than the context is OpenAI's `context_length_exceeded` on `prompt_param` (vLLM names
    its own `input_tokens`).
    """
    message = str(exc.args[0] if exc.args else exc)
    param = getattr(exc, "parameter", None)
    if param is None:  # SamplingParams' own checks say "<field> must ..." without naming it
        named = _LEADING_FIELD.match(message)
        param = named[1] if named else None
    if param == "input_tokens":
        return InvalidRequestError(message, param=prompt_param, code="context_length_exceeded")
    return InvalidRequestError(message, param=param)


_LEADING_FIELD = re.compile(r"^([a-z][a-z_]*) (?:must|should|cannot|is not allowed)\b")


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
    """Classify any exception raised while serving a request (call once, where it fails)."""
    if isinstance(exc, RayTaskError):
        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
        if cause is not exc:
            return as_serve_error(cause)
    if isinstance(exc, ServeError):
        return exc
    if isinstance(exc, ValidationError):
        return validation_error(exc)
    if isinstance(exc, (BackPressureError, DeploymentUnavailableError)):
        return EngineUnavailableError("The model is overloaded; retry shortly.", code="overloaded")
    if isinstance(exc, RayActorError):  # the replica's process died (or is unreachable)
        return model_unavailable()
    if isinstance(exc, (RequestCancelledError, ReplicaUnavailableError, asyncio.CancelledError)):
        # a model replica went away or cut the stream mid-request (not the client leaving:
        # then nobody is there to answer)
        return EngineUnavailableError("The generation was interrupted; retry.", code="aborted")
    if isinstance(exc, RecursionError):  # a body nested deeper than anything can walk
        return InvalidRequestError("The request nests too deeply to be processed.", code="nesting_too_deep")
    logger.error("Unhandled error while serving a request", exc_info=exc)
    return ServeError("The server had an error while processing your request.")
