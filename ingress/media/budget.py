"""One request's media allowance: a deadline, decoded pixels, and downloads at once.

resolve.py makes one `MediaBudget` per request and hands it to every item of it. The event
loop side enforces the deadline with `asyncio.timeout`; the decoding threads (which asyncio
cannot interrupt) call `charge` per image and per decoded video frame, so they stop soon
after the deadline or once the request has decoded `max_request_decoded_pixels`.
"""

from __future__ import annotations

import asyncio
import threading
import time

from deployments.config import MediaConfig
from deployments.errors import MediaRefusedError, MediaTimeoutError


class MediaBudget:
    """Shared by an request's items and their decoding threads (`charge` is thread-safe)."""

    def __init__(self, config: MediaConfig) -> None:
        self.deadline_s = config.request_deadline_s
        self.deadline = time.monotonic() + config.request_deadline_s
        self.max_pixels = config.max_request_decoded_pixels
        self.fetches = asyncio.Semaphore(config.max_fetches_per_request)
        self._pixels = 0
        self._lock = threading.Lock()

    def remaining_s(self) -> float:
        return self.deadline - time.monotonic()

    def charge(self, pixels: int, param: str) -> None:
        """Count `pixels` decoded for `param`; refuse past the pixel budget or the deadline."""
        with self._lock:
            self._pixels += pixels
            over = self._pixels > self.max_pixels
        if over:
            raise MediaRefusedError(
                f"The request's media need more than this server's {self.max_pixels} decoded pixels",
                param, code="media_too_large",
            )
        if time.monotonic() > self.deadline:
            raise self.timeout(param)

    def timeout(self, param: str | None) -> MediaTimeoutError:
        return MediaTimeoutError(
            f"Processing the request's media took longer than this server allows ({self.deadline_s:g} s)",
            param, code="media_timeout",
        )
