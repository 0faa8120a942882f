"""Media resolution on the ingress: image and video references -> ready pixel arrays.

Runs on the ingress (CPU) replicas so model replicas receive images already resized the
Qwen way and videos already sampled; vLLM is told not to resize or resample them again.
`resolve` takes the items ingress/request.py collected (reference, merged options, param)
and resolves them concurrently. Fetching is async (fetch.py: SSRF-safe http(s), data URLs,
allowed local files); decoding and resizing run in worker threads (image.py, video.py), so
the event loop keeps serving. Results are cached by URL or content hash (cache.py).

Limits (docs/reliability.md, Limits): each request gets a `MediaBudget` (budget.py): all its
media work ends by `request_deadline_s` (504 `media_timeout`), it downloads at most
`max_fetches_per_request` items at once and decodes at most `max_request_decoded_pixels`.
Decoding runs on the resolver's own pool of `decode_threads` threads (more decodes wait
their turn; a request that gives up removes its waiting ones), never the loop's default pool.

Metrics are recorded here, as things happen (ingress/metrics.py): each real fetch (time,
bytes), each decode (time), and each refusal (by its code); work skipped thanks to the
cache records nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

import numpy as np

from deployments.config import MediaConfig
from deployments.errors import MediaRefusedError
from ingress.media.budget import MediaBudget
from ingress.media.cache import MediaCache
from ingress.media.fetch import MediaFetcher
from ingress.media.image import prepare_image, sizing_from
from ingress.media.options import check_pixel_bounds
from ingress.media.video import VideoItem, decode_video, frames_video, list_frame
from ingress.metrics import record_media_decode, record_media_fetch, record_media_refusal

T = TypeVar("T")


class MediaItem(NamedTuple):
    """One image or video of a request: its reference, merged options, and its param."""

    ref: str | list[str]  # a URL or path; for a video also a list of frame images
    options: dict[str, Any]
    param: str


def _options_key(options: dict[str, Any]) -> tuple:
    return tuple(sorted(options.items()))


class MediaResolver:
    """Fetches, decodes, resizes and caches the media of requests (one per ingress replica)."""

    def __init__(self, config: MediaConfig | None = None) -> None:
        self.config = config or MediaConfig()
        self.fetcher = MediaFetcher(self.config)
        self.cache = MediaCache(self.config.cache_max_bytes, self.config.cache_max_entries, self.config.cache_ttl_s)
        self._decoders = ThreadPoolExecutor(self.config.decode_threads, thread_name_prefix="media-decode")

    async def _in_decoder(self, fn: Callable[..., T], *args: Any) -> tuple[T, float]:
        """`fn(*args)` on the decode pool, and the seconds it ran there (not its wait for a thread)."""

        def run() -> tuple[T, float]:
            started = time.perf_counter()
            return fn(*args), time.perf_counter() - started

        return await asyncio.get_running_loop().run_in_executor(self._decoders, run)

    async def _fetch(self, ref: Any, kind: str, param: str, max_bytes: int, budget: MediaBudget) -> bytes:
        """The bytes behind `ref`, recording the fetch (source: data, http or file)."""
        async with budget.fetches:
            started = time.perf_counter()
            data = await self.fetcher.fetch(ref, param, max_bytes)
        record_media_fetch(kind, self.fetcher.kind_of(ref), time.perf_counter() - started, len(data))
        return data

    async def _bytes(
        self, ref: Any, kind: str, param: str, max_bytes: int, budget: MediaBudget
    ) -> tuple[bytes | None, tuple]:
        """(bytes or None when served from cache by URL, cache key of the source)."""
        if isinstance(ref, str) and self.fetcher.kind_of(ref) == "http":
            self.fetcher.check_url(ref, param)
            return None, ("url", ref)
        data = await self._fetch(ref, kind, param, max_bytes, budget)
        if self.cache.max_bytes <= 0:  # no cache: no key to hash for (~0.1 ms per 100 kB)
            return data, ("uncached",)
        return data, ("sha256", hashlib.sha256(data).hexdigest())

    async def _fetch_cached_url(self, ref: str, kind: str, param: str, max_bytes: int, budget: MediaBudget) -> bytes:
        key = ("bytes", ref)
        data = self.cache.get(key)
        if data is None:
            data = self.cache.put(key, await self._fetch(ref, kind, param, max_bytes, budget))
        return data

    async def resolve(self, images: list[MediaItem], videos: list[MediaItem]) -> tuple[list[Any], list[Any]]:
        """Every item of a request, concurrently, in order, within one budget; the first
        failure (or the deadline) cancels the rest."""
        if not images and not videos:
            return [], []
        budget = MediaBudget(self.config)
        items = [(self._image, item) for item in images] + [(self._video, item) for item in videos]
        tasks = [asyncio.ensure_future(work(*item, budget)) for work, item in items]
        try:
            async with asyncio.timeout(budget.remaining_s()):
                resolved = await asyncio.gather(*tasks)
        except TimeoutError:
            # the first item still at work (cancelled by the timeout) names the error
            late = next((i for i, task in enumerate(tasks) if task.cancelled() or not task.done()), 0)
            error = budget.timeout(items[late][1].param)
            record_media_refusal("image" if late < len(images) else "video", error.code)
            raise error from None
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
        return list(resolved[: len(images)]), list(resolved[len(images):])

    async def image(self, ref: Any, options: dict[str, Any], param: str) -> np.ndarray:
        """An image reference -> resized RGB uint8 (H, W, 3) (a request of its own)."""
        images, _ = await self.resolve([MediaItem(ref, options, param)], [])
        return images[0]

    async def video(self, ref: Any, options: dict[str, Any], param: str) -> VideoItem:
        """A video reference (URL/path/data URL, or a list of frame images) -> (frames, metadata)
        (a request of its own)."""
        _, videos = await self.resolve([], [MediaItem(ref, options, param)])
        return videos[0]

    async def _image(self, ref: Any, options: dict[str, Any], param: str, budget: MediaBudget) -> np.ndarray:
        return await _counting_refusals("image", self._decode_image(ref, options, param, budget))

    async def _video(self, ref: Any, options: dict[str, Any], param: str, budget: MediaBudget) -> VideoItem:
        return await _counting_refusals("video", self._decode_video(ref, options, param, budget))

    async def _decode_image(self, ref: Any, options: dict[str, Any], param: str, budget: MediaBudget) -> np.ndarray:
        check_pixel_bounds(options, param)
        sizing, max_pixels = sizing_from(options), self.config.max_image_pixels
        return await self._decoded(
            "image", ref, options, param, self.config.max_image_bytes, budget,
            lambda data: prepare_image(data, sizing, param, max_pixels, budget),
        )

    async def _decode_video(self, ref: Any, options: dict[str, Any], param: str, budget: MediaBudget) -> VideoItem:
        check_pixel_bounds(options, param)
        if isinstance(ref, list):
            return await self._frame_list(ref, options, param, budget)
        return await self._decoded(
            "video", ref, options, param, self.config.max_video_bytes, budget,
            lambda data: decode_video(data, options, param, self.config, budget),
        )

    async def _decoded(
        self, kind: str, ref: Any, options: dict[str, Any], param: str, max_bytes: int, budget: MediaBudget,
        decode: Callable[[bytes], T],
    ) -> T:
        """Fetch (or find in the cache) and `decode` one item; the decoded result is cached."""
        data, source = await self._bytes(ref, kind, param, max_bytes, budget)
        key = (kind, source, _options_key(options))
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        if data is None:
            data = await self._fetch_cached_url(ref, kind, param, max_bytes, budget)
        item, seconds = await self._in_decoder(decode, data)
        record_media_decode(kind, seconds)
        return self.cache.put(key, item)

    async def _frame_list(self, refs: list[Any], options: dict[str, Any], param: str, budget: MediaBudget) -> VideoItem:
        if not refs:
            raise MediaRefusedError("A video given as frames needs at least one frame", param)
        limit = min(self.config.max_video_list_frames, self.config.max_video_frames)
        if len(refs) > limit:
            raise MediaRefusedError(f"At most {limit} frames per video", param, code="too_many_frames")

        async def one(i: int, ref: Any) -> tuple[np.ndarray, float]:
            frame_param = f"{param}[{i}]"
            data = await self._fetch(ref, "video", frame_param, self.config.max_image_bytes, budget)
            return await self._in_decoder(list_frame, data, options, frame_param, self.config.max_image_pixels, budget)

        tasks = [asyncio.ensure_future(one(i, r)) for i, r in enumerate(refs)]
        try:
            opened = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
        item, seconds = await self._in_decoder(frames_video, [frame for frame, _ in opened], options, param)
        record_media_decode("video", seconds + sum(s for _, s in opened))  # one video, all its frames
        return item


async def _counting_refusals(kind: str, work: Awaitable[T]) -> T:
    """`work`, recording a refusal (by its code) when it refuses the item."""
    try:
        return await work
    except MediaRefusedError as error:
        record_media_refusal(kind, error.code)
        raise
