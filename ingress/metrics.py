"""The ingress's own metrics, exported through Ray's metrics export (`ray.serve.metrics`).

Recorded where each event happens, never by re-reading a response: ingress/routes/dispatch.py
counts each request when it fails or its whole answer is sent (status, latency, error type),
ingress/responses.py and ingress/sse.py record tokens where the answer counts them (and a
stream's time to first token, inter-token latency and end), ingress/request.py the media
per request, and ingress/media/resolve.py each fetch, decode and refusal. Ray adds the
`ray_` prefix and Serve adds `deployment`, `replica`, `application` (and `route`) tags, so
`qvs_requests` is scraped as `ray_qvs_requests_total{model=..., status_class=..., stream=...}`
at Ray's metrics export port, beside Serve's `ray_serve_*` and vLLM's `ray_vllm_*` series.

Tags stay low-cardinality: a model tag is a configured model name (anything else is
`other`), a status is its class (`2xx`, `4xx`, `5xx`), stream is `yes`/`no`, and media
refusals carry the error code (`deployments.errors.MediaRefusedError.codes`). The metric objects are created once per
process, on first use, so they are made inside the Serve replica and get its tags.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from ray.serve.metrics import Counter, Histogram

from deployments.errors import MediaRefusedError, ServeError

PREFIX = "qvs_"
OTHER_MODEL = "other"
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
        self.media_fitted = Counter(
            f"{PREFIX}media_fitted_requests",
            description="Requests whose images or video frames were scaled down to fit the model's context.",
            tag_keys=("model",),
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


def initialise_counters(models: Collection[str], vision_models: Collection[str] = ()) -> None:
    """Create the counter series the dashboard plots (k8s/dashboard.py) at 0, for every
    served model, so its panels and its model selector have data from the first scrape
    rather than "No data" until the first such event (call once per replica)."""
    metrics = ingress_metrics()
    for model in models:
        for stream in ("yes", "no"):
            for status in ("2xx", "4xx", "5xx"):
                _start_at_zero(metrics.requests, {"model": model, "status_class": status, "stream": stream})
            for status, error_type in (("4xx", "invalid_request_error"), ("5xx", "overloaded")):
                _start_at_zero(metrics.errors, {
                    "model": model, "status_class": status, "stream": stream, "error_type": error_type
                })
            _start_at_zero(metrics.prompt_tokens, {"model": model, "stream": stream})
            _start_at_zero(metrics.completion_tokens, {"model": model, "stream": stream})
        _start_at_zero(metrics.backpressure, {"model": model})
    for model in vision_models:
        _start_at_zero(metrics.media_fitted, {"model": model})
    for kind in ("image", "video"):
        for source in ("data", "http", "file"):
            _start_at_zero(metrics.media_bytes, {"kind": kind, "source": source})
        for reason in sorted(MediaRefusedError.codes):
            _start_at_zero(metrics.media_refusals, {"kind": kind, "reason": reason})


def _start_at_zero(counter: Counter, tags: dict[str, str]) -> None:
    # Ray's public `Counter.inc` refuses 0; its recorder takes it and exports the series
    # (tests/unit/ingress/test_metrics.py fails if Ray renames it).
    counter._record(0, tags=tags)


def status_class(status_code: int) -> str:
    """`404` -> `4xx`."""
    return f"{status_code // 100}xx"


def model_tag(requested: object, served: Collection[str], default: str) -> str:
    """The served model a request goes to, as a bounded tag value (`other` when unknown)."""
    if requested is None:
        return default
    return requested if isinstance(requested, str) and requested in served else OTHER_MODEL


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


@dataclass
class RequestObserver:
    """Observes one request from arrival to its last byte (built per request)."""

    served: frozenset[str]
    default_model: str
    model: str = OTHER_MODEL
    stream: bool = False
    started: float = field(default_factory=time.perf_counter)

    def read(self, body: Any) -> None:
        """The body is in: its model and whether it streams tag the request's metrics."""
        if isinstance(body, dict):
            self.model = model_tag(body.get("model"), self.served, self.default_model)
            self.stream = body.get("stream") is True

    def first_token(self) -> None:
        """The model's first output arrived (a streamed answer starts now)."""
        ingress_metrics().ttft.observe(time.perf_counter() - self.started, tags={"model": self.model})

    def tokens(self, prompt_tokens: int, completion_tokens: int) -> None:
        """The answer's usage, as it counted it."""
        record_tokens(self.model, self.stream, prompt_tokens, completion_tokens)

    def inter_token_latency(self, first_at: float, last_at: float, tokens: int) -> None:
        """Mean gap between a stream's tokens (needs at least two tokens)."""
        if tokens >= 2 and last_at >= first_at:
            ingress_metrics().itl.observe((last_at - first_at) / (tokens - 1), tags={"model": self.model})

    def failed(self, error: ServeError) -> None:
        """The request was refused or failed before its answer started."""
        self.finished(error.status_code, error.code if isinstance(error.code, str) else error.error_type)

    def finished(self, status_code: int, error_type: str | None = None) -> None:
        """The request is over (the whole body sent): count it and its latency."""
        metrics = ingress_metrics()
        tags = {"model": self.model, "status_class": status_class(status_code), "stream": _yes_no(self.stream)}
        metrics.requests.inc(1, tags=tags)
        metrics.latency.observe(time.perf_counter() - self.started, tags=tags)
        if error_type is not None:
            metrics.errors.inc(1, tags={**tags, "error_type": error_type})
        if error_type == "overloaded":
            metrics.backpressure.inc(1, tags={"model": self.model})


def record_tokens(model: str, stream: bool, prompt_tokens: int, completion_tokens: int) -> None:
    """Usage of one answered request."""
    metrics, tags = ingress_metrics(), {"model": model, "stream": _yes_no(stream)}
    if prompt_tokens > 0:  # Ray counters refuse increments of zero
        metrics.prompt_tokens.inc(prompt_tokens, tags=tags)
    if completion_tokens > 0:
        metrics.completion_tokens.inc(completion_tokens, tags=tags)


# Media, for ingress/request.py and ingress/media/resolve.py. `kind` is "image" or "video";
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


def record_media_fitted(model: str) -> None:
    """One request's media scaled down to fit `model`'s context."""
    ingress_metrics().media_fitted.inc(1, tags={"model": model})
