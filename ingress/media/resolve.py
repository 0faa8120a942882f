"""Media resolution on the ingress: image and video references -> ready pixel arrays.

Runs on the ingress (CPU) replicas so model replicas receive images already resized the
Qwen way and videos already sampled; vLLM is told not to resize or resample them again.
`resolve` takes the items ingress/request.py collected (reference, merged options, param)
and resolves them concurrently: first every item's size from its header (nothing decoded),
then a plan may change each item's options knowing them all (fitting to the context,
fitting.py), then each is decoded and resized. Fetching is async (fetch.py: SSRF-safe http(s), data URLs,
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
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

import numpy as np

from deployments.config import MediaConfig
from deployments.errors import MediaRefusedError
from ingress.media.budget import MediaBudget
from ingress.media.cache import MediaCache
from ingress.media.fetch import MediaFetcher
from ingress.media.fitting import MediaShape
from ingress.media.image import prepare_image, probe_image, sizing_from
from ingress.media.options import check_pixel_bounds
from ingress.media.video import VideoItem, decode_video, frames_video, list_frame, probe_video
from ingress.metrics import record_media_decode, record_media_fetch, record_media_refusal
from qwen_vl_utils.vision_process import FRAME_FACTOR, ceil_by_factor

T = TypeVar("T")
_SHAPE_CACHE_BYTES = 4 * 1024 * 1024  # ~16k entries of 256 bytes


class MediaItem(NamedTuple):
    """One image or video of a request: its reference, merged options, and its param."""

    ref: str | list[str]  # a URL or path; for a video also a list of frame images
    options: dict[str, Any]
    param: str


class Probed(NamedTuple):
    """An item's bytes (None: by URL, fetched when needed), its cache key, its size before resizing."""

    data: bytes | list[bytes] | None  # a list: the frame images of a video given as frames
    source: tuple
    shape: MediaShape


# (shapes, options) of every item, images first -> the options each item is resized with
Plan = Callable[[list[MediaShape], list[dict[str, Any]]], list[dict[str, Any]]]


def _options_key(options: dict[str, Any]) -> tuple:
    return tuple(sorted(options.items()))


class MediaResolver:
    """Fetches, decodes, resizes and caches the media of requests (one per ingress replica)."""

    def __init__(self, config: MediaConfig | None = None) -> None:
        self.config = config or MediaConfig()
        self.fetcher = MediaFetcher(self.config)
        self.cache = MediaCache(self.config.cache_max_bytes, self.config.cache_max_entries, self.config.cache_ttl_s)
        self.shapes = MediaCache(_SHAPE_CACHE_BYTES, self.config.cache_max_entries, self.config.cache_ttl_s)
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

    async def resolve(self, images: list[MediaItem], videos: list[MediaItem],
                      plan: Plan | None = None) -> tuple[list[Any], list[Any]]:
        """Every item of a request, concurrently, in order, within one budget; the first
        failure (or the deadline) cancels the rest.

        Sizes come first (headers: nothing decoded yet); `plan` may then change each item's
        options knowing them all (fitting to the context, ingress/media/fitting.py)."""
        if not images and not videos:
            return [], []
        budget = MediaBudget(self.config)
        running: list[asyncio.Task] = []
        try:
            async with asyncio.timeout(budget.remaining_s()):
                probed = await _all([self._probe("image", item, budget) for item in images]
                                    + [self._probe("video", item, budget) for item in videos], running)
                if plan is not None:
                    options = plan([p.shape for p in probed], [item.options for item in (*images, *videos)])
                    images = [item._replace(options=o) for item, o in zip(images, options)]
                    videos = [item._replace(options=o) for item, o in zip(videos, options[len(images):])]
                resolved = await _all(
                    [self._decode("image", item, p, budget) for item, p in zip(images, probed)]
                    + [self._decode("video", item, p, budget) for item, p in zip(videos, probed[len(images):])],
                    running,
                )
        except TimeoutError:
            # the first item still at work (cancelled by the timeout) names the error
            late = next((i for i, task in enumerate(running) if task.cancelled() or not task.done()), 0)
            items = [*images, *videos]
            error = budget.timeout(items[min(late, len(items) - 1)].param)
            record_media_refusal("image" if late < len(images) else "video", error.code)
            raise error from None
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

    async def _probe(self, kind: str, item: MediaItem, budget: MediaBudget) -> Probed:
        """The item's bytes (None: fetch when needed) and its size before resizing."""
        check_pixel_bounds(item.options, item.param)
        if kind == "image":
            work = self._probe_image(item, budget)
        elif isinstance(item.ref, list):
            work = self._probe_frame_list(item, budget)
        else:
            work = self._probe_video(item, budget)
        return await _counting_refusals(kind, work)

    async def _probe_image(self, item: MediaItem, budget: MediaBudget) -> Probed:
        ref, _, param = item
        max_bytes = self.config.max_image_bytes
        data, source = await self._bytes(ref, "image", param, max_bytes, budget)
        key = ("image", source)
        size = self.shapes.get(key) if source != ("uncached",) else None
        if size is None:
            if data is None:
                data = await self._fetch_cached_url(ref, "image", param, max_bytes, budget)
            size = self.shapes.put(key, probe_image(data, param, self.config.max_image_pixels))
        return Probed(data, source, MediaShape("image", *size))

    async def _probe_video(self, item: MediaItem, budget: MediaBudget) -> Probed:
        ref, options, param = item
        max_bytes = self.config.max_video_bytes
        data, source = await self._bytes(ref, "video", param, max_bytes, budget)
        key = ("video", source, _options_key(options))
        size = self.shapes.get(key) if source != ("uncached",) else None
        if size is None:
            if data is None:
                data = await self._fetch_cached_url(ref, "video", param, max_bytes, budget)
            probed, _ = await self._in_decoder(probe_video, data, options, param, self.config, budget)
            size = self.shapes.put(key, probed)
        frames, height, width = size
        return Probed(data, source, MediaShape("video", height, width, frames, resamplable="nframes" not in options))

    async def _probe_frame_list(self, item: MediaItem, budget: MediaBudget) -> Probed:
        refs, _, param = item
        if not refs:
            raise MediaRefusedError("A video given as frames needs at least one frame", param)
        limit = min(self.config.max_video_list_frames, self.config.max_video_frames)
        if len(refs) > limit:
            raise MediaRefusedError(f"At most {limit} frames per video", param, code="too_many_frames")

        async def one(i: int, ref: Any) -> tuple[bytes, tuple[int, int]]:
            frame_param = f"{param}[{i}]"
            data = await self._fetch(ref, "video", frame_param, self.config.max_image_bytes, budget)
            return data, probe_image(data, frame_param, self.config.max_image_pixels)

        fetched = await _all([one(i, r) for i, r in enumerate(refs)])
        height, width = fetched[0][1]
        frames = ceil_by_factor(len(refs), FRAME_FACTOR)
        shape = MediaShape("video", height, width, frames, frame_list=True)
        return Probed([data for data, _ in fetched], ("frames",), shape)

    async def _decode(self, kind: str, item: MediaItem, probed: Probed, budget: MediaBudget) -> Any:
        """The item resized with its (final) options; cached by source and options."""
        ref, options, param = item
        check_pixel_bounds(options, param)
        if isinstance(probed.data, list):
            return await _counting_refusals(kind, self._frame_list(probed.data, options, param, budget))
        if kind == "image":
            sizing, max_pixels = sizing_from(options), self.config.max_image_pixels
            decode: Callable[[bytes], Any] = lambda data: prepare_image(data, sizing, param, max_pixels, budget)  # noqa: E731
            max_bytes = self.config.max_image_bytes
        else:
            decode = lambda data: decode_video(data, options, param, self.config, budget)  # noqa: E731
            max_bytes = self.config.max_video_bytes
        return await _counting_refusals(
            kind, self._decoded(kind, ref, probed, options, param, max_bytes, budget, decode)
        )

    async def _decoded(self, kind: str, ref: Any, probed: Probed, options: dict[str, Any], param: str,
                       max_bytes: int, budget: MediaBudget, decode: Callable[[bytes], T]) -> T:
        """`decode` one fetched item (or find it in the cache); the decoded result is cached."""
        key = (kind, probed.source, _options_key(options))
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        data = probed.data
        if data is None:
            data = await self._fetch_cached_url(ref, kind, param, max_bytes, budget)
        item, seconds = await self._in_decoder(decode, data)
        record_media_decode(kind, seconds)
        return self.cache.put(key, item)

    async def _frame_list(self, frames: list[bytes], options: dict[str, Any], param: str,
                          budget: MediaBudget) -> VideoItem:
        """Each listed frame decoded and resized on its own (list_frame: no full-size frame kept)."""
        max_pixels = self.config.max_image_pixels
        opened = await _all([self._in_decoder(list_frame, data, options, f"{param}[{i}]", max_pixels, budget)
                             for i, data in enumerate(frames)])
        item, seconds = await self._in_decoder(frames_video, [frame for frame, _ in opened], options, param)
        record_media_decode("video", seconds + sum(s for _, s in opened))  # one video, all its frames
        return item


async def _all(work: list[Awaitable[Any]], running: list[asyncio.Task] | None = None) -> list[Any]:
    """Results of `work` run concurrently, in order; the first failure (or a cancellation)
    cancels the rest. `running` receives the tasks, for naming the one a deadline caught."""
    tasks = [asyncio.ensure_future(w) for w in work]
    if running is not None:
        running[:] = tasks
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()


async def _counting_refusals(kind: str, work: Awaitable[T]) -> T:
    """`work`, recording a refusal (by its code) when it refuses the item."""
    try:
        return await work
    except MediaRefusedError as error:
        record_media_refusal(kind, error.code)
        raise
