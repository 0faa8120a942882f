"""The ingress's own metrics, exported through Ray's metrics export (`ray.serve.metrics`).

Sits beside the request path: ingress/api.py times each chat request (status, latency,
time to first token), ingress/sse.py reports a stream's tokens and inter-token
latency, and the media code reports fetch/decode time, bytes and refusals. Ray adds the
`ray_` prefix and Serve adds `deployment`, `replica`, `application` (and `route`) tags, so
`qvs_requests` is scraped as `ray_qvs_requests_total{model=..., status_class=..., stream=...}`
at Ray's metrics export port, beside Serve's `ray_serve_*` and vLLM's `ray_vllm_*` series.

Tags stay low-cardinality: a model tag is a configured model name (anything else is
`other`), a status is its class (`2xx`, `4xx`, `5xx`), stream is `yes`/`no`, and media
refusals carry the error code (a short fixed list). The metric objects are created once per
process, on first use, so they are made inside the Serve replica and get its tags.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import Response, StreamingResponse
from ray.serve.metrics import Counter, Histogram

from deployments.config import AppConfig
from deployments.errors import ServeError

PREFIX = "qvs_"
OTHER_MODEL = "other"
# Error codes that mean "this media item was refused" (ingress/media.py, ingress/messages.py).
MEDIA_REFUSAL_CODES = frozenset({
    "media_too_large", "invalid_image", "invalid_video", "invalid_video_options", "too_many_frames",
    "too_many_images", "too_many_videos", "image_not_supported", "video_not_supported",
    "unsupported_media_source", "media_fetch_failed", "media_fetch_timeout", "media_not_found",
    "media_path_forbidden", "media_url_forbidden",
})
_LATENCY_BUCKETS_S = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]
_TOKEN_LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.5]
_COUNT_BUCKETS = [0.5, 1, 2, 4, 8, 16, 32]  # positive, as Ray asks: 0 items land in le="0.5"
_MEDIA_SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]


class IngressMetrics:
    """Every metric of the ingress; build one per process with `ingress_metrics()`."""

    def __init__(self) -> None:
        request_tags = ("model", "status_class", "stream")
        self.requests = Counter(
            f"{PREFIX}requests", description="Chat completion requests by status class.",
            tag_keys=request_tags,
        )
        self.errors = Counter(
            f"{PREFIX}request_errors", description="Failed chat requests by OpenAI error type.",
            tag_keys=(*request_tags, "error_type"),
        )
        self.latency = Histogram(
            f"{PREFIX}request_latency_seconds", description="End-to-end request latency at the ingress.",
            boundaries=_LATENCY_BUCKETS_S, tag_keys=request_tags,
        )
        self.ttft = Histogram(
            f"{PREFIX}time_to_first_token_seconds",
            description="Request arrival to first streamed token, seen by the ingress.",
            boundaries=_LATENCY_BUCKETS_S, tag_keys=("model",),
        )
        self.itl = Histogram(
            f"{PREFIX}inter_token_latency_seconds",
            description="Mean time between streamed tokens of one request, seen by the ingress.",
            boundaries=_TOKEN_LATENCY_BUCKETS_S, tag_keys=("model",),
        )
        self.prompt_tokens = Counter(
            f"{PREFIX}prompt_tokens", description="Prompt tokens (image tokens included).",
            tag_keys=("model", "stream"),
        )
        self.completion_tokens = Counter(
            f"{PREFIX}completion_tokens", description="Generated tokens.", tag_keys=("model", "stream")
        )
        self.media_per_request = Histogram(
            f"{PREFIX}media_items_per_request", description="Images or videos in one request.",
            boundaries=_COUNT_BUCKETS, tag_keys=("model", "kind"),
        )
        self.media_fetch = Histogram(
            f"{PREFIX}media_fetch_seconds", description="Time to fetch (or base64-decode) one media item.",
            boundaries=_MEDIA_SECONDS_BUCKETS, tag_keys=("kind", "source"),
        )
        self.media_decode = Histogram(
            f"{PREFIX}media_decode_seconds", description="Time to decode one media item to pixels.",
            boundaries=_MEDIA_SECONDS_BUCKETS, tag_keys=("kind",),
        )
        self.media_bytes = Counter(
            f"{PREFIX}media_bytes", description="Encoded media bytes received.", tag_keys=("kind", "source")
        )
        self.media_refusals = Counter(
            f"{PREFIX}media_refusals", description="Media items refused, by reason (error code).",
            tag_keys=("kind", "reason"),
        )
        self.backpressure = Counter(
            f"{PREFIX}backpressure_rejections",
            description="Requests refused because a model deployment was overloaded.",
            tag_keys=("model",),
        )


@functools.cache
def ingress_metrics() -> IngressMetrics:
    """The process's metrics, created on first use (inside the replica, so Serve tags it)."""
    return IngressMetrics()


def status_class(status_code: int) -> str:
    """`404` -> `4xx`."""
    return f"{status_code // 100}xx"


def model_tag(requested: object, served: Iterable[str], default: str) -> str:
    """The served model a request goes to, as a bounded tag value (`other` when unknown)."""
    if requested is None:
        return default
    return requested if isinstance(requested, str) and requested in set(served) else OTHER_MODEL


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


@dataclass
class RequestTimer:
    """Observes one chat request from arrival to its last byte (built per request)."""

    served: frozenset[str]
    default_model: str
    model: str = OTHER_MODEL
    stream: bool = False
    media: tuple[int, int] = (0, 0)
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def start(cls, config: AppConfig) -> RequestTimer:
        """Start timing a request to the application configured by `config`."""
        return cls(frozenset(m.name for m in config.models), config.default_model_name)

    def read(self, body: Any) -> None:
        """The request body is in: note its model and whether it streams."""
        if isinstance(body, dict):
            self.model = model_tag(body.get("model"), self.served, self.default_model)
            self.stream = body.get("stream") is True
            self.media = count_media_parts(body.get("messages"))

    def _tags(self, status_code: int) -> dict[str, str]:
        return {"model": self.model, "status_class": status_class(status_code), "stream": _yes_no(self.stream)}

    def finished(self, status_code: int, error_type: str | None = None) -> None:
        """The request is over (the whole body sent): count it and its latency."""
        metrics, tags = ingress_metrics(), self._tags(status_code)
        metrics.requests.inc(1, tags=tags)
        metrics.latency.observe(time.perf_counter() - self.started, tags=tags)
        if error_type is not None:
            metrics.errors.inc(1, tags={**tags, "error_type": error_type})
        if error_type == "overloaded":
            metrics.backpressure.inc(1, tags={"model": self.model})

    def failed(self, error: ServeError) -> None:
        """The request was refused or failed before its answer started."""
        reason = error.code if isinstance(error.code, str) else error.error_type
        if reason in MEDIA_REFUSAL_CODES:
            kind = "video" if error.param and "video" in error.param else "image"
            record_media_refusal(kind, reason)
        self.finished(error.status_code, reason)

    def answered(self, response: Response) -> Response:
        """The answer is ready: a whole one is counted now, a stream when it ends."""
        record_media_counts(self.model, *self.media)
        if isinstance(response, StreamingResponse):
            response.body_iterator = self.observe_events(response.body_iterator)
            return response
        usage = json.loads(response.body).get("usage") or {}
        record_tokens(self.model, False, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
        self.finished(response.status_code)
        return response

    def first_token(self) -> None:
        ingress_metrics().ttft.observe(time.perf_counter() - self.started, tags={"model": self.model})

    async def observe_events(self, events: AsyncIterator[str]) -> AsyncIterator[str]:
        """Pass SSE events through, timing the first one and the end of the stream.

        The first event goes out once the engine's first delta has arrived, so its time is
        the time to first token. An in-band error event counts the request as failed.
        """
        error_type = None
        first = True
        try:
            async for event in events:
                if first:
                    self.first_token()
                    first = False
                if event.startswith('data: {"error"'):
                    error_type = _in_band_error_type(event)
                yield event
        finally:
            self.finished(200, error_type)


def count_media_parts(messages: Any) -> tuple[int, int]:
    """(images, videos) among the OpenAI content parts of `messages`."""
    images = videos = 0
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            kind = part.get("type") if isinstance(part, dict) else None
            images += kind in ("image_url", "image")
            videos += kind in ("video_url", "video")
    return images, videos


def _in_band_error_type(event: str) -> str:
    code = '"code":"overloaded"'
    return "overloaded" if code in event else "stream_error"


def record_tokens(model: str, stream: bool, prompt_tokens: int, completion_tokens: int) -> None:
    """Usage of one answered request."""
    metrics, tags = ingress_metrics(), {"model": model, "stream": _yes_no(stream)}
    if prompt_tokens > 0:  # Ray counters refuse increments of zero
        metrics.prompt_tokens.inc(prompt_tokens, tags=tags)
    if completion_tokens > 0:
        metrics.completion_tokens.inc(completion_tokens, tags=tags)


def record_inter_token_latency(model: str, first_at: float, last_at: float, tokens: int) -> None:
    """Mean gap between a stream's tokens (needs at least two tokens)."""
    if tokens >= 2 and last_at >= first_at:
        ingress_metrics().itl.observe((last_at - first_at) / (tokens - 1), tags={"model": model})


# Media helpers, for ingress/media.py and ingress/messages.py. `kind` is "image" or "video";
# `source` is the URL scheme class: "data", "http" or "file".


def record_media_counts(model: str, images: int, videos: int) -> None:
    """How many images and videos one request carried (call once per request)."""
    metrics = ingress_metrics()
    metrics.media_per_request.observe(images, tags={"model": model, "kind": "image"})
    metrics.media_per_request.observe(videos, tags={"model": model, "kind": "video"})


def record_media_fetch(kind: str, source: str, seconds: float, num_bytes: int) -> None:
    """One media item (or one frame of a video sent as frames) fetched or base64-decoded:
    its time and encoded size."""
    metrics = ingress_metrics()
    metrics.media_fetch.observe(seconds, tags={"kind": kind, "source": source})
    if num_bytes > 0:
        metrics.media_bytes.inc(num_bytes, tags={"kind": kind, "source": source})


def record_media_decode(kind: str, seconds: float) -> None:
    """One media item decoded to pixels (frames, for a video)."""
    ingress_metrics().media_decode.observe(seconds, tags={"kind": kind})


def record_media_refusal(kind: str, reason: str | None) -> None:
    """One media item refused; `reason` is the error's code (e.g. `media_too_large`)."""
    ingress_metrics().media_refusals.inc(1, tags={"kind": kind, "reason": reason or "invalid"})
