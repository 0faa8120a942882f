"""Exceptions a model deployment raises for the ingress to turn into OpenAI errors.

They cross Ray's handle (Ray re-raises them wrapped, keeping the class and message), so
they carry only what the client may see: a message, the offending parameter and a status.
"""

from __future__ import annotations

import re


class ServeError(Exception):
    """Base of the errors that reach the client with their own status and message."""

    status_code: int = 500
    error_type: str = "internal_server_error"

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def __reduce__(self):  # keep message/param/code when Ray pickles the exception
        return (type(self), (self.message, self.param, self.code))


class InvalidRequestError(ServeError):
    """The request cannot be served as sent (400)."""

    status_code = 400
    error_type = "invalid_request_error"


class UnprocessableMediaError(ServeError):
    """Media were fetched but cannot be decoded or processed (422)."""

    status_code = 422
    error_type = "invalid_request_error"


class ModelNotFoundError(ServeError):
    """No deployment serves the requested model (404)."""

    status_code = 404
    error_type = "invalid_request_error"


class EngineUnavailableError(ServeError):
    """The engine is dead or overloaded; the client may retry (503)."""

    status_code = 503
    error_type = "service_unavailable"


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
