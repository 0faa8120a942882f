"""Turn OpenAI chat messages into Qwen-format messages with resolved media.

Content parts accepted:
- `{"type": "text", "text": ...}`
- `{"type": "image_url", "image_url": {"url": ...}}` (OpenAI) and `{"type": "image", "image": ...}`
  (Qwen / qwen-vl-utils); the URL is http(s), a base64 data URL, or a `file://` URL / plain
  path inside `media.allowed_local_dirs`.
- `{"type": "video_url", "video_url": {"url": ...}}` and `{"type": "video", "video": ...}`, where
  `video` may also be a list of frame images.
Resizing/sampling keys (qwen-vl-utils' names) may sit on the part itself, as qwen-vl-utils
reads them, or inside its `image_url` / `video_url` object; the request-wide values come
from `mm_processor_kwargs` (see ingress/media.py for precedence).

Parts become `{"type": "image"}` / `{"type": "video"}` placeholders; media are resolved
concurrently, in message order, so the n-th placeholder matches the n-th image or video.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

from deployments.config import ModelConfig
from deployments.errors import InvalidRequestError
from deployments.calls import ChatPrompt
from ingress.media.resolve import (
    IMAGE_KEYS,
    REQUEST_KEYS,
    VIDEO_KEYS,
    MediaResolver,
    merge_options,
    model_defaults,
    validate_options,
)

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_IMAGE_TYPES = {"image_url": "image_url", "image": "image"}
_VIDEO_TYPES = {"video_url": "video_url", "video": "video"}


def request_options(mm_processor_kwargs: Any, media: MediaResolver) -> dict[str, Any]:
    """The request-wide resizing/sampling values (`mm_processor_kwargs`), validated."""
    if mm_processor_kwargs is None:
        return {}
    if not isinstance(mm_processor_kwargs, dict):
        raise InvalidRequestError("mm_processor_kwargs must be an object", "mm_processor_kwargs")
    return validate_options(mm_processor_kwargs, REQUEST_KEYS, "mm_processor_kwargs", media.config, strict=True)


async def build_chat_prompt(
    messages: list[Any],
    model: ModelConfig,
    media: MediaResolver,
    mm_processor_kwargs: dict[str, Any] | None = None,
) -> ChatPrompt:
    """Validate messages, resolve their images and videos, and return the prompt for the model."""
    if not messages:
        raise InvalidRequestError("messages must contain at least one message", "messages")
    requested = request_options(mm_processor_kwargs, media)
    image_base = merge_options(model_defaults(model.media, "image"), _only(requested, IMAGE_KEYS))
    video_base = merge_options(model_defaults(model.media, "video"), _only(requested, VIDEO_KEYS))
    config = media.config
    image_cap = min(config.max_images_per_request, model.mm_limit("image"))
    video_cap = min(config.max_videos_per_request, model.mm_limit("video"))
    converted: list[dict[str, Any]] = []
    images: list[Any] = []
    videos: list[Any] = []
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequestError("Each message must be an object", param)
        role = message.get("role")
        if role not in _ROLES:
            raise InvalidRequestError(
                f"Invalid role {role!r}; expected one of {sorted(_ROLES)}", f"{param}.role"
            )
        parts = _content_parts(message.get("content"), role, f"{param}.content")
        qwen_parts = []
        for j, part in enumerate(parts):
            part_param = f"{param}.content[{j}]"
            kind = part.get("type")
            if kind == "text":
                if not isinstance(part.get("text"), str):
                    raise InvalidRequestError("text part needs a string `text`", f"{part_param}.text")
                qwen_parts.append({"type": "text", "text": part["text"]})
            elif kind in _IMAGE_TYPES or kind in _VIDEO_TYPES:
                is_video = kind in _VIDEO_TYPES
                noun = "video" if is_video else "image"
                if not model.accepts_images:
                    raise InvalidRequestError(
                        f"Model {model.name!r} does not accept {noun}s", part_param, code=f"{noun}_not_supported"
                    )
                bucket, cap = (videos, video_cap) if is_video else (images, image_cap)
                if len(bucket) >= cap:
                    raise InvalidRequestError(
                        f"At most {cap} {noun}s per request", part_param, code=f"too_many_{noun}s"
                    )
                ref, ref_param, options = _media_part(part, kind, part_param, is_video, media)
                if is_video:
                    merged = merge_options(video_base, options)
                    bucket.append(functools.partial(media.video, ref, merged, ref_param))
                else:
                    merged = merge_options(image_base, options)
                    bucket.append(functools.partial(media.image, ref, merged, ref_param))
                qwen_parts.append({"type": noun})
            else:
                raise InvalidRequestError(
                    f"Unsupported content part type {kind!r}; expected text, image_url, image, video_url or video",
                    f"{part_param}.type",
                )
        converted.append(_with_tool_fields(message, "system" if role == "developer" else role, qwen_parts))
    resolved = await _gather(images + videos)
    return ChatPrompt(messages=converted, images=resolved[: len(images)], videos=resolved[len(images):])


async def _gather(pending: list[Any]) -> list[Any]:
    """Resolve all; on the first failure cancel the rest and raise it."""
    if not pending:
        return []
    tasks = [asyncio.ensure_future(start()) for start in pending]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()


def _only(options: dict[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in keys}


def _media_part(
    part: dict[str, Any], kind: str, param: str, is_video: bool, media: MediaResolver
) -> tuple[Any, str, dict[str, Any]]:
    """(reference, its param, the part's options) of an image or video part."""
    keys = VIDEO_KEYS if is_video else IMAGE_KEYS
    value = part.get(kind)
    inner: dict[str, Any] = {}
    if kind.endswith("_url"):
        if isinstance(value, dict):
            inner = validate_options(value, keys, f"{param}.{kind}", media.config)
            ref, ref_param = value.get("url"), f"{param}.{kind}.url"
        else:
            ref, ref_param = value, f"{param}.{kind}"
    else:
        ref, ref_param = value, f"{param}.{kind}"
    if is_video and isinstance(ref, list):
        if not all(isinstance(r, str) and r for r in ref):
            raise InvalidRequestError("Video frames must be image URLs or paths", ref_param)
    elif not isinstance(ref, str) or not ref:
        raise InvalidRequestError(f"{kind} needs a non-empty URL string", ref_param)
    outer = validate_options(part, keys, param, media.config)
    return ref, ref_param, merge_options(inner, outer)


def _with_tool_fields(message: dict[str, Any], role: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The converted message, keeping what chat templates read for tool use."""
    converted: dict[str, Any] = {"role": role, "content": parts}
    if role == "assistant" and message.get("tool_calls"):
        converted["tool_calls"] = [_template_tool_call(call) for call in message["tool_calls"]]
    if role == "tool" and message.get("tool_call_id"):
        converted["tool_call_id"] = message["tool_call_id"]
    return converted


def _template_tool_call(call: Any) -> dict[str, Any]:
    """An assistant's earlier tool call, its `arguments` as an object: tool-use chat templates
    print them with `tojson`, so a JSON string would be quoted again (vLLM parses them too)."""
    function = call.get("function", {}) if isinstance(call, dict) else {}
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass  # not JSON: the template prints the text as it is
    return {"type": "function", "function": {"name": function.get("name"), "arguments": arguments}}


def _content_parts(content: Any, role: str, param: str) -> list[dict[str, Any]]:
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
