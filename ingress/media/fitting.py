"""Fitting a request's images and video frames to the model's context, before they are decoded.

OpenAI never refuses a large image; it scales it. A 4032x3024 photo at Qwen's default limits is
15,552 tokens: more than a 4,096-token context holds. Once the resolver knows each item's size
(from the file's header, ingress/media/resolve.py), `fit_media` predicts the tokens every item
gets with the very functions the resize then runs (qwen-vl-utils' `smart_resize`, image.py,
video.py), and when they leave too little room for the text and the answer, scales all of them
down by one linear factor (each item's `max_pixels`, never below its `min_pixels`, sizes still
multiples of the family's factor). Videos sampled by `fps` then lose frames, the qwen-vl-utils
way (`max_frames`), when even their smallest frames do not fit. Where nothing fits, a 400 says
how many tokens the media need and how many the context allows.

The text is not tokenized here (the ingress holds no tokenizer, and the model's may not be on
its node): `text_token_bound` counts UTF-8 bytes, an upper bound for Qwen's byte-level BPE
(every token covers at least one byte), plus a generous allowance for the chat template. Images
may come out a little smaller than strictly needed next to long texts; they never come out too
large because of it, and if the bound ever fell short the engine's own context check is a 400.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ingress.media.image import sizing_from
from ingress.media.video import frame_list_size, frame_size

_TEMPLATE_TOKENS = 64  # the default system prompt and the generation prompt of Qwen's templates
_MESSAGE_TOKENS = 8  # <|im_start|>role\n ... <|im_end|>\n
_MEDIA_TOKENS = 4  # <|vision_start|> ... <|vision_end|>
_TOOLS_TOKENS = 512  # Qwen2.5's tool-use instructions around the tools' JSON
_SEARCH_STEPS = 40


@dataclass(frozen=True)
class MediaShape:
    """One item's size before the Qwen resize, and what may change about it."""

    kind: str  # "image" or "video"
    height: int
    width: int
    frames: int = 1  # a video's sampled frames (even)
    frame_list: bool = False  # a video given as frame images: resized the frame-list way first
    resamplable: bool = False  # a video sampled by fps: `max_frames` may take frames away


def resized(shape: MediaShape, options: dict[str, Any], factor: int) -> tuple[int, int, int]:
    """(frames, height, width) the item gets with `options`, as the resize computes it."""
    if shape.kind == "image":
        return (1, *sizing_from(options).target(shape.height, shape.width))
    frames = shape.frames
    if shape.resamplable and "max_frames" in options:
        frames = max(2, min(frames, options["max_frames"] // 2 * 2))
    height, width = shape.height, shape.width
    if shape.frame_list:
        height, width = frame_list_size(height, width, options)
    return (frames, *frame_size(frames, height, width, options))


def tokens_of(shape: MediaShape, options: dict[str, Any], factor: int) -> int:
    """The item's tokens in the prompt (a video: one per 2 frames x 2x2 patches of `factor / 2`)."""
    frames, height, width = resized(shape, options, factor)
    return max(1, frames // 2) * (height // factor) * (width // factor)


def pixels_of(shape: MediaShape, options: dict[str, Any], factor: int) -> int:
    frames, height, width = resized(shape, options, factor)
    return frames * height * width


@dataclass(frozen=True)
class Fitted:
    """The options each item is resized with, and what fitting did."""

    options: list[dict[str, Any]]
    tokens_before: int
    tokens: int
    scale: float = 1.0  # linear factor applied to every item's area (1: untouched)
    frames_scale: float = 1.0  # factor applied to the frames of fps-sampled videos

    @property
    def changed(self) -> bool:
        return self.tokens < self.tokens_before


class ContextTooSmallError(ValueError):
    """Even at their smallest sizes the media exceed their budget (`needed` tokens)."""

    def __init__(self, needed: int) -> None:
        super().__init__(f"the media need at least {needed} tokens")
        self.needed = needed


def fit_media(
    shapes: list[MediaShape], options: list[dict[str, Any]], factor: int, budget: int, floors: dict[str, int],
    item_tokens: int = 0,
) -> Fitted:
    """Options that bring the items' tokens within `budget`, scaled down together; order kept.
    With `item_tokens`, each item first comes within that many (the engine's per-item limit).

    `floors` holds the smallest area per kind ("image", "video") where an item's options give
    no `min_pixels`. Raises ContextTooSmallError when even the smallest sizes exceed `budget`
    (and ValueError for an aspect ratio qwen-vl-utils refuses).
    """
    before = sum(tokens_of(s, o, factor) for s, o in zip(shapes, options))
    if item_tokens > 0:
        options = [o if tokens_of(s, o, factor) <= item_tokens else fit_media([s], [o], factor, item_tokens, floors).options[0]
                   for s, o in zip(shapes, options)]
    now = sum(tokens_of(s, o, factor) for s, o in zip(shapes, options))
    if now <= budget:
        return Fitted(list(options), before, now)
    areas = [_area(s, o, factor) for s, o in zip(shapes, options)]
    lows = [_smallest_area(s, o, factor, floors[s.kind]) for s, o in zip(shapes, options)]

    def at(scale: float, frames_scale: float = 1.0) -> list[dict[str, Any]]:
        return [_scaled(s, o, a, low, scale, frames_scale)
                for s, o, a, low in zip(shapes, options, areas, lows)]

    def total(candidate: list[dict[str, Any]]) -> int:
        return sum(tokens_of(s, o, factor) for s, o in zip(shapes, candidate))

    scale = _largest(lambda x: total(at(x)) <= budget)
    if scale is not None:
        fitted = at(scale)
        return Fitted(fitted, before, total(fitted), scale)
    frames_scale = _largest(lambda q: total(at(0.0, q)) <= budget)
    if frames_scale is None:
        raise ContextTooSmallError(total(at(0.0, 0.0)))
    fitted = at(0.0, frames_scale)
    return Fitted(fitted, before, total(fitted), 0.0, frames_scale)


def _largest(fits) -> float | None:  # noqa: ANN001 - float -> bool, non-decreasing in its argument
    """The largest x in [0, 1] (to ~1e-12) with `fits(x)`; None when not even 0 fits."""
    if not fits(0.0):
        return None
    low, high = 0.0, 1.0
    for _ in range(_SEARCH_STEPS):
        middle = (low + high) / 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def _area(shape: MediaShape, options: dict[str, Any], factor: int) -> int:
    _, height, width = resized(shape, options, factor)
    return height * width


def _smallest_area(shape: MediaShape, options: dict[str, Any], factor: int, floor: int) -> int:
    """The smallest `max_pixels` whose size keeps the item's min_pixels: smart_resize floors both
    sides when it shrinks, so `max_pixels == min_pixels` can land below it (or, for a very long
    image, on a side of zero)."""
    least = int(options.get("min_pixels", floor))
    current = _area(shape, options, factor)
    candidate = least
    for _ in range(_SEARCH_STEPS):
        area = _area(shape, {**options, "max_pixels": candidate}, factor)
        if area >= min(least, current):
            return candidate
        candidate = int(candidate * 1.05) + factor
    return max(candidate, current)


def _scaled(shape: MediaShape, options: dict[str, Any], area: int, low: int, scale: float,
            frames_scale: float) -> dict[str, Any]:
    if "resized_height" in options and "resized_width" in options:
        return options  # an exact size asked for: kept
    out = {**options, "max_pixels": max(low, int(area * scale * scale))}  # low >= min_pixels
    if frames_scale < 1.0 and shape.resamplable:
        out["max_frames"] = max(2, int(shape.frames * frames_scale) // 2 * 2)
    return out


def text_token_bound(messages: list[dict[str, Any]], tools: list[Any] | None) -> int:
    """At most how many tokens the rendered prompt has besides the media's (see the module doc)."""
    total = _TEMPLATE_TOKENS
    for message in messages:
        total += _MESSAGE_TOKENS + len(str(message.get("role", "")))
        for part in message.get("content") or []:
            total += len(part["text"].encode()) if part.get("type") == "text" else _MEDIA_TOKENS
        for key in ("tool_calls", "tool_call_id"):
            if message.get(key):
                total += len(json.dumps(message[key], ensure_ascii=False).encode())
    if tools:
        total += _TOOLS_TOKENS + len(json.dumps(tools, ensure_ascii=False, default=str).encode())
    return total

