"""Turn OpenAI chat messages into Qwen-format messages with decoded media.

OpenAI content parts (`text`, `image_url`) become Qwen parts (`{"type": "text"}`,
`{"type": "image"}` placeholders) and the images are resolved concurrently into pixel
arrays, in message order, so the n-th placeholder matches the n-th image.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from deployments.errors import InvalidRequestError
from deployments.protocol import ChatPrompt
from ingress.media import MediaLimits, resolve_image

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


async def build_chat_prompt(
    messages: list[Any], accepts_images: bool, model: str, limits: MediaLimits
) -> ChatPrompt:
    """Validate messages, resolve their images, and return the prompt for the model."""
    if not messages:
        raise InvalidRequestError("messages must contain at least one message", "messages")
    converted: list[dict[str, Any]] = []
    pending: list[asyncio.Future[np.ndarray] | Any] = []
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
            elif kind == "image_url":
                if not accepts_images:
                    raise InvalidRequestError(
                        f"Model {model!r} does not accept images", part_param, code="image_not_supported"
                    )
                if len(pending) >= limits.max_images:
                    raise InvalidRequestError(
                        f"At most {limits.max_images} images per request", part_param,
                        code="too_many_images",
                    )
                image_url = part.get("image_url")
                url = image_url.get("url") if isinstance(image_url, dict) else image_url
                pending.append(resolve_image(url, f"{part_param}.image_url.url", limits))
                qwen_parts.append({"type": "image"})
            else:
                raise InvalidRequestError(
                    f"Unsupported content part type {kind!r}; expected text or image_url",
                    f"{part_param}.type",
                )
        converted.append({"role": "system" if role == "developer" else role, "content": qwen_parts})
    images = list(await asyncio.gather(*pending)) if pending else []
    return ChatPrompt(messages=converted, images=images)


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
