"""The request body, validated once into typed objects; the Qwen prompt built from them.

`parse_chat_request` validates a chat body in one pass: vLLM's own `ChatCompletionRequest`
checks every field but `messages` (so we accept exactly the fields and values `vllm serve`
accepts, and build sampling parameters the same way), and the messages are read once into
`Message`s whose image and video parts are `MediaPart`s with their options validated.
Where vLLM would silently ignore a field (unknown names) or we do not answer a feature, we
refuse with a 400 naming the field instead. Once the model is known, `build_prompt` walks
the typed messages once: Qwen-format messages with `{"type": "image"}` / `{"type":
"video"}` placeholders, and the media resolved concurrently (ingress/media/), so the n-th
placeholder matches the n-th image or video.

Content parts accepted: `{"type": "text", "text": ...}`; `{"type": "image_url", "image_url":
{"url": ...}}` (OpenAI) and `{"type": "image", "image": ...}` (Qwen / qwen-vl-utils); the
same for `video_url` / `video`, where `video` may also be a list of frame images. The URL is
http(s), a base64 data URL, or a `file://` URL / plain path inside `media.allowed_local_dirs`.
Resizing/sampling keys (ingress/media/options.py) may sit on the part itself, as
qwen-vl-utils reads them, or inside its `image_url` / `video_url` object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
from vllm.entrypoints.openai.completion.protocol import CompletionRequest
from vllm.exceptions import VLLMClientError

from deployments.calls import ChatPrompt
from deployments.config import MediaConfig, ModelConfig
from deployments.errors import InvalidRequestError, MediaRefusedError, as_invalid_request, validation_error
from ingress.media.options import (
    DETAILS,
    KEYS,
    REQUEST_KEYS,
    VisionLimits,
    family_options,
    merge_options,
    model_defaults,
    only,
    validate_options,
)
from ingress.media.context import ContextPlan, FitReport
from ingress.media.resolve import MediaItem, MediaResolver
from ingress.metrics import record_media_counts, record_media_fitted, record_media_refusal

# Fields the official clients send that vLLM's models do not declare but that are safe to
# accept: they do not change generation.
_HARMLESS_EXTRA_FIELDS = frozenset({"store", "metadata", "service_tier", "modalities"})
# Declared by vLLM, not answered by this server: refused rather than ignored.
_CHAT_UNSUPPORTED = (
    "functions", "function_call", "prompt_logprobs", "echo", "chat_template", "documents", "continue_final_message",
)
# chat_template_kwargs go to the template as variables (add_vision_id, ...); these would
# change how the prompt is built rather than what the template says: refused.
_RESERVED_TEMPLATE_KWARGS = frozenset({
    "add_generation_prompt", "chat_template", "continue_final_message", "conversation", "documents",
    "messages", "return_dict", "tokenize", "tokenizer", "tools",
})
_COMPLETION_UNSUPPORTED = ("echo", "suffix", "prompt_logprobs", "prompt_embeds", "use_beam_search")
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_MEDIA_TYPES = {"image_url": "image", "image": "image", "video_url": "video", "video": "video"}

RequestT = TypeVar("RequestT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class MediaPart:
    """An image or video content part: its reference and its own options, validated."""

    kind: str  # "image" or "video"
    ref: str | list[str]
    ref_param: str  # where the reference sits, e.g. messages[0].content[1].image_url.url
    part_param: str  # the part itself, e.g. messages[0].content[1]
    options: dict[str, Any]
    option_params: dict[str, str] = field(default_factory=dict)  # option -> where the client wrote it
    detail: str | None = None  # OpenAI's image_url.detail: auto, low or high


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message: text parts as strings, media parts typed, tool fields as templates read them."""

    role: str  # "developer" is already "system"
    parts: tuple[str | MediaPart, ...]
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat completion request."""

    sampling: ChatCompletionRequest  # vLLM's, `messages` empty: what the model deployment needs
    messages: tuple[Message, ...]
    media_options: dict[str, Any] = field(default_factory=dict)  # `mm_processor_kwargs`, validated

    @property
    def has_media(self) -> bool:
        return any(isinstance(p, MediaPart) for m in self.messages for p in m.parts)


def parse_chat_request(body: Any, max_n: int, media: MediaConfig) -> ChatRequest:
    """Validate a chat completion body; 400 naming the field on any problem."""
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object", param=None)
    sampling = _validate(ChatCompletionRequest, {**body, "messages": []}, _CHAT_UNSUPPORTED, max_n)
    for key in sampling.chat_template_kwargs or {}:
        if key in _RESERVED_TEMPLATE_KWARGS:
            raise InvalidRequestError(
                f"chat_template_kwargs may not set {key!r}", f"chat_template_kwargs.{key}", code="unsupported_parameter"
            )
    messages = _messages(body.get("messages"), media)
    options = sampling.mm_processor_kwargs
    if options is not None and not isinstance(options, dict):
        raise InvalidRequestError("mm_processor_kwargs must be an object", "mm_processor_kwargs")
    options = validate_options(options or {}, REQUEST_KEYS, "mm_processor_kwargs", media, strict=True)
    return ChatRequest(sampling, messages, options)


def parse_completion_request(body: Any, max_n: int, max_choices: int) -> CompletionRequest:
    """Validate a `/v1/completions` body: text prompts only (a string or a list of them), at
    most `max_choices` choices in all (each prompt is its own engine request, `n` choices each)."""
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object", param=None)
    request = _validate(CompletionRequest, body, _COMPLETION_UNSUPPORTED, max_n)
    prompts = prompts_of(request)
    if not prompts:
        raise InvalidRequestError("prompt must be a non-empty string or list of strings", param="prompt")
    n = request.n or 1
    if len(prompts) * n > max_choices:
        raise InvalidRequestError(
            f"A request may ask for at most {max_choices} choices (prompts x n); this one asks for "
            f"{len(prompts)} x {n} = {len(prompts) * n}",
            param="prompt" if len(prompts) > max_choices or n == 1 else "n",
            code="invalid_value",
        )
    return request


def prompts_of(request: CompletionRequest) -> list[str]:
    """The request's text prompts; empty when they are not text (token ids are refused)."""
    prompt = request.prompt
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    return []


def _validate(model: type[RequestT], body: dict[str, Any], unsupported: tuple[str, ...], max_n: int) -> RequestT:
    try:
        request = model.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None
    except VLLMClientError as exc:  # raised by vLLM's own validators
        raise as_invalid_request(exc) from None
    unknown = sorted(set(request.model_extra or {}) - _HARMLESS_EXTRA_FIELDS)
    if unknown:
        raise InvalidRequestError(
            f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0], code="unsupported_parameter"
        )
    for name in unsupported:
        if getattr(request, name, None) not in (None, False, [], "none"):
            raise InvalidRequestError(
                f"Parameter {name!r} is not supported by this server", param=name, code="unsupported_parameter"
            )
    n = getattr(request, "n", None)
    if n is not None and n > max_n:
        raise InvalidRequestError(f"n must be at most {max_n}", param="n", code="invalid_value")
    return request


def check_text_length(chars: int, max_model_len: int, chars_per_token: int, param: str) -> None:
    """Refuse prompt text that cannot fit the context, before anything tokenizes it.

    The engine tokenizes on its replica's event loop (9 MiB took 15 s, stalling every other
    stream), so text is bounded here by characters: past `max_model_len x chars_per_token`
    no natural text fits (3-5 characters a token on average). The message is vLLM's own
    for its character pre-check (TokenizeParams), which uses the longest vocabulary token
    as the bound instead.
    """
    limit = max_model_len * chars_per_token
    if chars > limit:
        raise InvalidRequestError(
            f"This model's maximum context length is {max_model_len} tokens. However, your prompt "
            f"contains {chars} characters (more than {limit} characters, which is the upper bound "
            f"for {max_model_len} input tokens). Please reduce the length of the input prompt.",
            param=param,
            code="context_length_exceeded",
        )


def text_length(request: ChatRequest) -> int:
    """Characters of text the chat template will print: text parts, earlier tool calls, tools."""
    chars = 0
    for message in request.messages:
        chars += sum(len(part) for part in message.parts if isinstance(part, str))
        if message.tool_calls:
            chars += len(json.dumps(message.tool_calls))
    if request.sampling.tools:
        chars += len(json.dumps([tool.model_dump(mode="json") for tool in request.sampling.tools]))
    return chars


# -- messages: read once into typed objects ---------------------------------------------------


def _messages(messages: Any, media: MediaConfig) -> tuple[Message, ...]:
    if messages is None:
        raise InvalidRequestError("Invalid request: messages: Field required", "messages")
    if not isinstance(messages, list):
        raise InvalidRequestError("Invalid request: messages: Input should be a valid list", "messages")
    if not messages:
        raise InvalidRequestError("messages must contain at least one message", "messages")
    return tuple(_message(message, f"messages[{i}]", media) for i, message in enumerate(messages))


def _message(message: Any, param: str, media: MediaConfig) -> Message:
    if not isinstance(message, dict):
        raise InvalidRequestError("Each message must be an object", param)
    role = message.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        raise InvalidRequestError(f"Invalid role {role!r}; expected one of {sorted(_ROLES)}", f"{param}.role")
    for key in ("name", "tool_call_id"):
        if message.get(key) is not None and not isinstance(message[key], str):
            raise InvalidRequestError(f"{key} must be a string", f"{param}.{key}")
    parts = tuple(
        _part(part, f"{param}.content[{j}]", media)
        for j, part in enumerate(_content_parts(message.get("content"), role, f"{param}.content"))
    )
    calls = _tool_calls(message.get("tool_calls"), f"{param}.tool_calls")
    return Message(
        role="system" if role == "developer" else role,
        parts=parts,
        tool_calls=calls if role == "assistant" and calls else None,
        tool_call_id=message.get("tool_call_id") if role == "tool" else None,
    )


def _content_parts(content: Any, role: str, param: str) -> list[Any]:
    """Content as a list of part objects (a plain string is one text part)."""
    if content is None:
        if role == "assistant":
            return []
        raise InvalidRequestError("content is required", param)
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not all(isinstance(p, dict) for p in content):
        raise InvalidRequestError("content must be a string or a list of content parts", param)
    return content


def _part(part: dict[str, Any], param: str, media: MediaConfig) -> str | MediaPart:
    kind = part.get("type")
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise InvalidRequestError("text part needs a string `text`", f"{param}.text")
        return part["text"]
    noun = _MEDIA_TYPES.get(kind) if isinstance(kind, str) else None
    if noun is None:
        raise InvalidRequestError(
            f"Unsupported content part type {kind!r}; expected text, image_url, image, video_url or video",
            f"{param}.type",
        )
    keys, value, inner, detail = KEYS[noun], part.get(kind), {}, None
    ref, ref_param = value, f"{param}.{kind}"
    if kind.endswith("_url") and isinstance(value, dict):
        inner = validate_options(value, keys, f"{param}.{kind}", media)
        ref, ref_param = value.get("url"), f"{param}.{kind}.url"
        detail = _detail(value.get("detail"), f"{param}.{kind}.detail") if noun == "image" else None
    if noun == "video" and isinstance(ref, list):
        if not all(isinstance(r, str) and r for r in ref):
            raise InvalidRequestError("Video frames must be image URLs or paths", ref_param)
    elif not isinstance(ref, str) or not ref:
        raise InvalidRequestError(f"{kind} needs a non-empty URL string", ref_param)
    own = validate_options(part, keys, param, media)
    params = {**{k: f"{param}.{kind}.{k}" for k in inner}, **{k: f"{param}.{k}" for k in own}}
    return MediaPart(noun, ref, ref_param, param, merge_options(inner, own), params, detail)


def _detail(detail: Any, param: str) -> str | None:
    if detail is None or detail in DETAILS:
        return detail
    raise InvalidRequestError(f"detail must be one of {list(DETAILS)}", param, code="invalid_value")


def _tool_calls(calls: Any, param: str) -> list[dict[str, Any]] | None:
    """Earlier tool calls, their `arguments` as objects: tool-use chat templates print them
    with `tojson`, so a JSON string would be quoted again (vLLM parses them too)."""
    if calls is None:
        return None
    if not isinstance(calls, list):
        raise InvalidRequestError("tool_calls must be a list", param)
    return [_tool_call(call, f"{param}[{i}]") for i, call in enumerate(calls)]


def _tool_call(call: Any, param: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not (
        isinstance(function, dict) and isinstance(call.get("id"), str) and call.get("type") == "function"
        and isinstance(function.get("name"), str) and isinstance(function.get("arguments"), str)
    ):
        raise InvalidRequestError(
            'A tool call needs an "id", "type": "function" and a "function" with string "name" and "arguments"',
            param,
        )
    arguments: Any = function["arguments"]
    try:
        arguments = json.loads(arguments)
    except ValueError:
        pass  # not JSON: the template prints the text as it is
    return {"type": "function", "function": {"name": function["name"], "arguments": arguments}}


# -- the prompt for one model: one pass over the typed messages --------------------------------


async def build_prompt(request: ChatRequest, model: ModelConfig, media: MediaResolver,
                       max_model_len: int | None = None, max_item_tokens: int = 0) -> tuple[ChatPrompt, FitReport | None]:
    """Qwen-format messages for `model`, their media checked against its limits, fitted to its
    context (`max_model_len`; None: not fitted) and to the engine's most tokens per item, and
    resolved; what fitting did, if anything."""
    plan = _MediaPlan(model, request.media_options, media.config)
    messages = [_qwen_message(message, plan) for message in request.messages]
    context = ContextPlan.build(model, media.config, max_model_len, messages, request.sampling, max_item_tokens)
    images, videos = await media.resolve(plan.items["image"], plan.items["video"], context)
    record_media_counts(model.name, len(images), len(videos))
    if context.report is not None:
        record_media_fitted(model.name)
    return ChatPrompt(messages=messages, images=images, videos=videos), context.report


def _qwen_message(message: Message, plan: _MediaPlan) -> dict[str, Any]:
    parts = [{"type": "text", "text": p} if isinstance(p, str) else plan.add(p) for p in message.parts]
    converted: dict[str, Any] = {"role": message.role, "content": parts}
    if message.tool_calls:
        converted["tool_calls"] = message.tool_calls
    if message.tool_call_id:
        converted["tool_call_id"] = message.tool_call_id
    return converted


class _MediaPlan:
    """The media items of one request for one model: limits checked, options merged per item."""

    def __init__(self, model: ModelConfig, requested: dict[str, Any], config: MediaConfig) -> None:
        self.model = model
        self.limits = VisionLimits.of(model) if model.accepts_images else None
        self.items: dict[str, list[MediaItem]] = {"image": [], "video": []}
        self._caps = {
            "image": min(config.max_images_per_request, model.mm_limit("image")),
            "video": min(config.max_videos_per_request, model.mm_limit("video")),
        }
        if self.limits is not None:
            for kind in ("image", "video"):
                own = only(requested, KEYS[kind])
                self.limits.check(own, kind, {key: f"mm_processor_kwargs.{key}" for key in own})
        self._bases = {
            kind: merge_options(
                family_options(model.family), model_defaults(model.media, kind), only(requested, KEYS[kind])
            )
            for kind in ("image", "video")
        }

    def add(self, part: MediaPart) -> dict[str, str]:
        """Take `part` (or refuse it); its placeholder in the Qwen message."""
        kind, bucket = part.kind, self.items[part.kind]
        if not self.model.accepts_images:
            _refuse(kind, f"Model {self.model.name!r} does not accept {kind}s", part.part_param, f"{kind}_not_supported")
        if len(bucket) >= self._caps[kind]:
            _refuse(kind, f"At most {self._caps[kind]} {kind}s per request", part.part_param, f"too_many_{kind}s")
        assert self.limits is not None  # accepts_images checked above
        self.limits.check(part.options, kind, part.option_params)
        base = self._bases[kind]
        detail = self.limits.detail(part.detail, self.model.media, base.get("min_pixels"))
        bucket.append(MediaItem(part.ref, merge_options(base, detail, part.options), part.ref_param))
        return {"type": kind}


def _refuse(kind: str, message: str, param: str, code: str) -> None:
    """Refuse one media item of the request, counting the refusal."""
    record_media_refusal(kind, code)
    raise MediaRefusedError(message, param, code=code)
