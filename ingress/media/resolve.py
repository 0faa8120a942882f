"""Media resolution on the ingress: image and video references -> ready pixel arrays.

Runs on the ingress (CPU) replicas so model replicas receive images already resized the
Qwen way and videos already sampled; vLLM is told not to resize or resample them again.
Fetching is async (ingress/media/fetch.py: SSRF-safe http(s), data URLs, allowed local
files); decoding and resizing run in worker threads, concurrently across the parts of a
request, so the event loop keeps serving. Results are cached by URL or content hash.
Each real fetch (time, bytes) and decode (time) is recorded through ingress/metrics.py,
here in the ingress replica; work skipped thanks to the cache records nothing.

Resizing and sampling options are qwen-vl-utils' keys (`min_pixels`, `max_pixels`,
`resized_height`, `resized_width`; for videos also `fps`, `nframes`, `min_frames`,
`max_frames`, `video_start`, `video_end`, `total_pixels`). Precedence: the content part,
then the request's `mm_processor_kwargs`, then the model's `media` config, then
qwen-vl-utils' defaults.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from deployments.config import MediaConfig, MediaDefaults
from deployments.errors import InvalidRequestError
from ingress.media.cache import MediaCache
from ingress.media.fetch import MediaFetcher
from ingress.media.image import prepare_image, sizing_from
from ingress.media.video import VideoItem, decode_video, frames_video, open_frame
from ingress.metrics import record_media_decode, record_media_fetch

T = TypeVar("T")

_INT_KEYS = ("min_pixels", "max_pixels", "resized_height", "resized_width")
_VIDEO_INT_KEYS = ("nframes", "min_frames", "max_frames", "total_pixels")
_VIDEO_FLOAT_KEYS = ("fps", "video_start", "video_end", "sample_fps", "raw_fps")
IMAGE_KEYS = frozenset(_INT_KEYS)
VIDEO_KEYS = frozenset(_INT_KEYS + _VIDEO_INT_KEYS + _VIDEO_FLOAT_KEYS)
REQUEST_KEYS = frozenset(_INT_KEYS + _VIDEO_INT_KEYS + ("fps", "sample_fps"))
_EXCLUSIVE = ("fps", "nframes")


def validate_options(raw: dict[str, Any], keys: frozenset[str], param: str, config: MediaConfig,
                     strict: bool = False) -> dict[str, Any]:
    """The resizing/sampling keys of `raw`, type-checked; `strict` refuses unknown keys."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in keys:
            if strict:
                raise InvalidRequestError(
                    f"Unsupported key {key!r}; supported: {sorted(keys)}", f"{param}.{key}",
                    code="unsupported_parameter",
                )
            continue
        if value is None:
            continue
        if key in _VIDEO_FLOAT_KEYS:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
            ok = ok and (value > 0 or key in ("video_start", "video_end")) and value < 1e7
            if not ok:
                raise InvalidRequestError(f"{key} must be a non-negative number", f"{param}.{key}")
            out[key] = float(value)
        else:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidRequestError(f"{key} must be a positive integer", f"{param}.{key}")
            limit = {"nframes": config.max_video_frames, "min_frames": config.max_video_frames,
                     "max_frames": 1 << 20, "total_pixels": 1 << 40}.get(key, config.max_image_pixels)
            if value > limit:
                raise InvalidRequestError(f"{key} exceeds this server's limit of {limit}", f"{param}.{key}")
            out[key] = value
    if "fps" in out and "nframes" in out:
        raise InvalidRequestError("Give either fps or nframes, not both", f"{param}.nframes")
    return out


def merge_options(*layers: dict[str, Any]) -> dict[str, Any]:
    """Later layers win; a layer naming fps or nframes drops the other from earlier ones."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key in _EXCLUSIVE:
            if key in layer:
                for other in _EXCLUSIVE:
                    if other != key:
                        merged.pop(other, None)
        merged.update(layer)
    return merged


def model_defaults(defaults: MediaDefaults, kind: str) -> dict[str, Any]:
    """A model's `media` config as qwen-vl-utils keys for images or videos."""
    if kind == "image":
        pairs = {"min_pixels": defaults.min_pixels, "max_pixels": defaults.max_pixels}
    else:
        pairs = {
            "min_pixels": defaults.video_min_pixels,
            "max_pixels": defaults.video_max_pixels,
            "total_pixels": defaults.video_total_pixels,
            "fps": defaults.fps,
            "max_frames": defaults.max_frames,
        }
    return {k: v for k, v in pairs.items() if v is not None}


def check_pixel_bounds(options: dict[str, Any], param: str) -> None:
    if options.get("min_pixels", 0) > options.get("max_pixels", float("inf")):
        raise InvalidRequestError("min_pixels must not exceed max_pixels", f"{param}.min_pixels")
    if ("resized_height" in options) != ("resized_width" in options):
        raise InvalidRequestError("Give both resized_height and resized_width", f"{param}.resized_height")


def _options_key(options: dict[str, Any]) -> tuple:
    return tuple(sorted(options.items()))


async def _timed_in_thread(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    """`fn(*args)` in a worker thread, and the seconds it took there (not its wait for a thread)."""

    def run() -> tuple[T, float]:
        started = time.perf_counter()
        return fn(*args), time.perf_counter() - started

    return await asyncio.to_thread(run)


class MediaResolver:
    """Fetches, decodes, resizes and caches the media of requests (one per ingress replica)."""

    def __init__(self, config: MediaConfig | None = None) -> None:
        self.config = config or MediaConfig()
        self.fetcher = MediaFetcher(self.config)
        self.cache = MediaCache(self.config.cache_max_bytes)

    async def _fetch(self, ref: Any, kind: str, param: str, max_bytes: int) -> bytes:
        """The bytes behind `ref`, recording the fetch (source: data, http or file)."""
        started = time.perf_counter()
        data = await self.fetcher.fetch(ref, param, max_bytes)
        record_media_fetch(kind, self.fetcher.kind_of(ref), time.perf_counter() - started, len(data))
        return data

    async def _bytes(self, ref: Any, kind: str, param: str, max_bytes: int) -> tuple[bytes | None, tuple]:
        """(bytes or None when served from cache by URL, cache key of the source)."""
        if isinstance(ref, str) and self.fetcher.kind_of(ref) == "http":
            self.fetcher._check_url_or_raise(ref, param)
            return None, ("url", ref)
        data = await self._fetch(ref, kind, param, max_bytes)
        if self.cache.max_bytes <= 0:  # no cache: no key to hash for (~0.1 ms per 100 kB)
            return data, ("uncached",)
        return data, ("sha256", hashlib.sha256(data).hexdigest())

    async def _fetch_cached_url(self, ref: str, kind: str, param: str, max_bytes: int) -> bytes:
        key = ("bytes", ref)
        data = self.cache.get(key)
        if data is None:
            data = self.cache.put(key, await self._fetch(ref, kind, param, max_bytes))
        return data

    async def image(self, ref: Any, options: dict[str, Any], param: str) -> np.ndarray:
        """An image reference -> resized RGB uint8 (H, W, 3)."""
        check_pixel_bounds(options, param)
        sizing = sizing_from(options)
        max_bytes = self.config.max_image_bytes
        data, source = await self._bytes(ref, "image", param, max_bytes)
        key = ("image", source, _options_key(options))
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        if data is None:
            data = await self._fetch_cached_url(ref, "image", param, max_bytes)
        array, seconds = await _timed_in_thread(prepare_image, data, sizing, param, self.config.max_image_pixels)
        record_media_decode("image", seconds)
        return self.cache.put(key, array)

    async def video(self, ref: Any, options: dict[str, Any], param: str) -> VideoItem:
        """A video reference (URL/path/data URL, or a list of frame images) -> (frames, metadata)."""
        check_pixel_bounds(options, param)
        if isinstance(ref, list):
            return await self._frame_list(ref, options, param)
        max_bytes = self.config.max_video_bytes
        data, source = await self._bytes(ref, "video", param, max_bytes)
        key = ("video", source, _options_key(options))
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        if data is None:
            data = await self._fetch_cached_url(ref, "video", param, max_bytes)
        item, seconds = await _timed_in_thread(decode_video, data, options, param, self.config)
        record_media_decode("video", seconds)
        return self.cache.put(key, item)

    async def _frame_list(self, refs: list[Any], options: dict[str, Any], param: str) -> VideoItem:
        if not refs:
            raise InvalidRequestError("A video given as frames needs at least one frame", param)
        if len(refs) > self.config.max_video_frames:
            raise InvalidRequestError(
                f"At most {self.config.max_video_frames} frames per video", param, code="too_many_frames"
            )

        async def one(i: int, ref: Any):  # noqa: ANN202 - (PIL image, decode seconds)
            frame_param = f"{param}[{i}]"
            data = await self._fetch(ref, "video", frame_param, self.config.max_image_bytes)
            return await _timed_in_thread(open_frame, data, frame_param, self.config.max_image_pixels)

        opened = await asyncio.gather(*(one(i, r) for i, r in enumerate(refs)))
        item, seconds = await _timed_in_thread(frames_video, [image for image, _ in opened], options, param)
        record_media_decode("video", seconds + sum(s for _, s in opened))  # one video, all its frames
        return item
