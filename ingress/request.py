"""Request validation for the OpenAI endpoints.

Bodies are validated by vLLM's own `ChatCompletionRequest` / `CompletionRequest`, so we
accept exactly the fields and values `vllm serve` accepts and build sampling parameters
the same way. Where vLLM would silently ignore a field (unknown names) or we do not answer
a feature, we refuse with a 400 naming the field instead.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
from vllm.entrypoints.openai.completion.protocol import CompletionRequest
from vllm.exceptions import VLLMClientError

from deployments.errors import InvalidRequestError, as_invalid_request
from ingress.errors import validation_error

# Fields the official clients send that vLLM's models do not declare but that are safe to
# accept: they do not change generation.
_HARMLESS_EXTRA_FIELDS = frozenset({"store", "metadata", "service_tier", "modalities"})

# Declared by vLLM, not answered by this server: refused rather than ignored.
_CHAT_UNSUPPORTED = ("functions", "function_call", "prompt_logprobs", "echo")
_COMPLETION_UNSUPPORTED = ("echo", "suffix", "prompt_logprobs", "prompt_embeds", "use_beam_search")

RequestT = TypeVar("RequestT", bound=BaseModel)


def parse_chat_request(body: Any, max_n: int = 8) -> ChatCompletionRequest:
    """Validate a chat completion body; 400 naming the field on any problem."""
    return _validate(ChatCompletionRequest, body, _CHAT_UNSUPPORTED, max_n)


def parse_completion_request(body: Any, max_n: int = 8) -> CompletionRequest:
    """Validate a `/v1/completions` body: text prompts only (a string or a list of them)."""
    request = _validate(CompletionRequest, body, _COMPLETION_UNSUPPORTED, max_n)
    if not prompts_of(request):
        raise InvalidRequestError("prompt must be a non-empty string or list of strings", param="prompt")
    return request


def prompts_of(request: CompletionRequest) -> list[str]:
    """The request's text prompts; empty when they are not text (token ids are refused)."""
    prompt = request.prompt
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    return []


def _validate(model: type[RequestT], body: Any, unsupported: tuple[str, ...], max_n: int) -> RequestT:
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object", param=None)
    try:
        request = model.model_validate(body)
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
    for name in unsupported:
        value = getattr(request, name, None)
        if value not in (None, False, [], "none"):
            raise InvalidRequestError(
                f"Parameter {name!r} is not supported by this server", param=name,
                code="unsupported_parameter",
            )
    n = getattr(request, "n", None)
    if n is not None and n > max_n:
        raise InvalidRequestError(f"n must be at most {max_n}", param="n", code="invalid_value")
    return request


def for_engine(request: ChatCompletionRequest) -> ChatCompletionRequest:
    """The request minus its messages (the prompt travels separately, media decoded)."""
    return request.model_copy(update={"messages": []})
