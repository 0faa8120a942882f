"""A bounded LRU of fetched bytes and decoded media, keyed by URL or content hash: bounded
in bytes (values and keys: a URL key may be long), in entries, and in age (`ttl_s`, so a
URL's content is refetched after a while)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np


def size_of(value: Any) -> int:
    """Bytes a cached value holds (arrays, bytes, and tuples of them)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (bytes, bytearray, str)):
        return len(value)
    if isinstance(value, tuple):
        return sum(size_of(v) for v in value) + 256
    return 256


def frozen(value: Any) -> Any:
    """Make an array read-only before it is shared between requests."""
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, tuple):
        for v in value:
            frozen(v)
    return value


class MediaCache:
    """Least recently used entries are dropped once `max_bytes` or `max_entries` is exceeded;
    an entry older than `ttl_s` is not served (and is dropped).

    Used from the event loop only (no locking needed); an entry larger than a quarter of
    the budget is not kept.
    """

    def __init__(
        self, max_bytes: int, max_entries: int = 4096, ttl_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self.bytes = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int, float]] = OrderedDict()  # value, size, expiry
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        entry = self._entries.get(key)
        if entry is not None and entry[2] <= self._clock():
            self._drop(key)
            entry = None
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[0]

    def put(self, key: Hashable, value: Any) -> Any:
        size = size_of(value) + size_of(key)
        if self.max_bytes <= 0 or size > self.max_bytes // 4:
            return value
        frozen(value)
        self._drop(key)
        self._entries[key] = (value, size, self._clock() + self.ttl_s)
        self.bytes += size
        while (self.bytes > self.max_bytes or len(self._entries) > self.max_entries) and self._entries:
            self._drop(next(iter(self._entries)))
        return value

    def _drop(self, key: Hashable) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]

    def __len__(self) -> int:
        return len(self._entries)
