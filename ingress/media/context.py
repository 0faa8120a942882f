"""A request's media planned against one model's context and the server's pixel budget.

`ContextPlan` is what ingress/request.py hands the resolver (ingress/media/resolve.py) as its
`plan`: once every item's size is known from its header, it fits the items to the context
(ingress/media/fitting.py) when the model's `media.fit_to_context` is on, then holds the
request to `media.max_request_pixels`. It remembers what it did, for the response header, the
log line and the metric.

The context is the engine's `max_model_len` (as the replica reported it, else the config's);
with neither known nothing is fitted and the engine's own check answers (a 400). The answer's
room is the request's max_tokens, at most the model's `media.answer_tokens`: a max_tokens past
the context is capped by the engine, as `vllm serve` does, so it cannot claim the images' room.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

from deployments.config import MediaConfig, ModelConfig
from deployments.errors import InvalidRequestError
from deployments.tools import tool_schemas
from ingress.media.fitting import ContextTooSmallError, Fitted, MediaShape, fit_media, pixels_of, text_token_bound, tokens_of
from ingress.media.options import VisionLimits

logger = logging.getLogger("ray.serve")


@dataclass(frozen=True)
class FitReport:
    """What fitting did to one request's media."""

    count: int  # items made smaller
    scale: float  # linear factor on the media's area: sqrt(tokens after / before)
    tokens_before: int
    tokens: int

    def header(self) -> str:
        """The `X-Images-Fitted` value."""
        return f"count={self.count}; scale={self.scale:.3f}; tokens={self.tokens_before}->{self.tokens}"


@dataclass
class ContextPlan:
    """Fits one request's media to `model` once their sizes are known (the resolver's `plan`)."""

    model: ModelConfig
    config: MediaConfig
    max_model_len: int | None
    text_tokens: int  # an upper bound (fitting.text_token_bound)
    answer_tokens: int
    max_item_tokens: int = 0  # the engine's most tokens per image or video (0: none known)
    report: FitReport | None = field(default=None, init=False)

    @classmethod
    def build(cls, model: ModelConfig, config: MediaConfig, max_model_len: int | None,
              messages: list[dict[str, Any]], request: Any, max_item_tokens: int = 0) -> ContextPlan:
        with warnings.catch_warnings():  # `max_tokens` is deprecated, yet clients send it
            warnings.simplefilter("ignore", DeprecationWarning)
            requested = getattr(request, "max_completion_tokens", None) or getattr(request, "max_tokens", None)
        room = min(requested, model.media.answer_tokens) if requested else model.media.answer_tokens
        text = text_token_bound(messages, tool_schemas(request))
        return cls(model, config, max_model_len, text, room, max_item_tokens)

    def __call__(self, shapes: list[MediaShape], options: list[dict[str, Any]]) -> list[dict[str, Any]]:
        limits = VisionLimits.of(self.model)
        factor = limits.spec.factor
        if self.model.media.fit_to_context and self.max_model_len is not None:
            budget = self.max_model_len - self.text_tokens - self.answer_tokens
            floors = {"image": limits.image_min, "video": limits.frame_min}
            try:
                fitted = fit_media(shapes, options, factor, budget, floors, self.max_item_tokens)
            except ContextTooSmallError as error:
                raise InvalidRequestError(
                    f"The request's images and videos need at least {error.needed} tokens at their smallest "
                    f"allowed sizes; the model's context of {self.max_model_len} tokens allows {max(budget, 0)} "
                    f"for them (up to {self.text_tokens} go to the text, {self.answer_tokens} to the answer). "
                    "Send fewer or smaller images, less text, or a lower max_tokens.",
                    param="messages", code="context_length_exceeded",
                ) from None
            except ValueError:  # an aspect ratio qwen-vl-utils refuses: its decode says so (422)
                return options
            self._note(fitted, shapes, options, factor)
            options = fitted.options
        pixels = sum(pixels_of(s, o, factor) for s, o in zip(shapes, options))
        if pixels > self.config.max_request_pixels:
            raise InvalidRequestError(
                f"The request's images and video frames come to {pixels} pixels after resizing; this "
                f"server takes at most {self.config.max_request_pixels} per request",
                param="messages", code="media_too_large",
            )
        return options

    def _note(self, fitted: Fitted, shapes: list[MediaShape], before: list[dict[str, Any]], factor: int) -> None:
        if not fitted.changed:
            return
        count = sum(tokens_of(s, new, factor) < tokens_of(s, old, factor)
                    for s, old, new in zip(shapes, before, fitted.options))
        scale = (fitted.tokens / fitted.tokens_before) ** 0.5  # the linear factor, all items together
        self.report = FitReport(count, scale, fitted.tokens_before, fitted.tokens)
        logger.info(
            "Fitted %d of %d media items to %s's context of %d tokens: scale %.3f, frames x%.3f, "
            "%d -> %d tokens (text at most %d, answer %d, at most %d per item)", count, len(shapes),
            self.model.name, self.max_model_len, scale, fitted.frames_scale, fitted.tokens_before,
            fitted.tokens, self.text_tokens, self.answer_tokens, self.max_item_tokens,
        )
