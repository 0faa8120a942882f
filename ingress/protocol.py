"""Request validation for the OpenAI endpoints.

The body is validated by vLLM's own `ChatCompletionRequest`, so we accept exactly the
fields and values `vllm serve` accepts and build sampling parameters the same way. Where
vLLM would silently ignore a field (unknown names) or we do not yet answer a feature, we
refuse with a 400 naming the field instead.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
from vllm.exceptions import VLLMClientError

from deployments.errors import InvalidRequestError, as_invalid_request
from ingress.errors import validation_error

# Fields the official clients send that vLLM's model does not declare but that are safe
# to accept: they do not change generation.
_HARMLESS_EXTRA_FIELDS = frozenset({"store", "metadata", "service_tier", "modalities"})

# Declared by vLLM, not answered by this server yet: refused rather than ignored.
_NOT_YET_SUPPORTED = ("tools", "tool_choice", "functions", "function_call", "prompt_logprobs", "echo")


def parse_chat_request(body: Any, max_n: int = 8) -> ChatCompletionRequest:
    """Validate a chat completion body; 400 naming the field on any problem."""
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object", param=None)
    try:
        request = ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None
    except VLLMClientError as exc:  # raised by vLLM's own validators
        raise as_invalid_request(exc) from None
    unknown = sorted(set(request.model_extra or {}) - _HARMLESS_EXTRA_FIELDS)
    if unknown:
        raise InvalidRequestError(
            f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0],
            code="unsupported_parameter",
        )
    for name in _NOT_YET_SUPPORTED:
        value = getattr(request, name, None)
        if value not in (None, False, [], "none"):
            raise InvalidRequestError(
                f"Parameter {name!r} is not supported by this server yet", param=name,
                code="unsupported_parameter",
            )
    if request.n is not None and request.n > max_n:
        raise InvalidRequestError(f"n must be at most {max_n}", param="n", code="invalid_value")
    return request


def for_engine(request: ChatCompletionRequest) -> ChatCompletionRequest:
    """The request minus its messages (the prompt travels separately, media decoded)."""
    return request.model_copy(update={"messages": []})
