"""A byte-bounded LRU of fetched bytes and decoded media, keyed by URL or content hash."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np


def size_of(value: Any) -> int:
    """Bytes a cached value holds (arrays, bytes, and tuples of them)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (bytes, bytearray)):
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
    """Least recently used entries are dropped once `max_bytes` is exceeded.

    Used from the event loop only (no locking needed); an entry larger than a quarter of
    the budget is not kept.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[0]

    def put(self, key: Hashable, value: Any) -> Any:
        size = size_of(value)
        if self.max_bytes <= 0 or size > self.max_bytes // 4:
            return value
        frozen(value)
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._entries[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes and self._entries:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped
        return value

    def __len__(self) -> int:
        return len(self._entries)
