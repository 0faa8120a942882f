"""The media cache (ingress/media/cache.py): bounded in bytes (keys included), entries and age."""

from __future__ import annotations

import numpy as np

from ingress.media.cache import MediaCache


def test_entries_are_bounded_and_least_recently_used_go_first():
    cache = MediaCache(max_bytes=1 << 20, max_entries=2)
    cache.put("a", b"1")
    cache.put("b", b"2")
    assert cache.get("a") == b"1"  # "b" is now the least recently used
    cache.put("c", b"3")
    assert len(cache) == 2 and cache.get("b") is None and cache.get("a") == b"1"


def test_keys_count_towards_the_byte_budget():
    """An http(s) URL is a key: a long one must not be free."""
    cache = MediaCache(max_bytes=40_000)
    long_url = "https://example.com/" + "x" * 8000
    cache.put(("url", long_url), b"")
    assert cache.bytes >= 8000
    for i in range(10):
        cache.put(("url", long_url + str(i)), b"")
    assert cache.bytes <= 40_000 and len(cache) < 5


def test_entries_expire():
    now = [1000.0]
    cache = MediaCache(max_bytes=1 << 20, ttl_s=60, clock=lambda: now[0])
    value = cache.put("k", np.zeros(4, np.uint8))
    now[0] += 59
    assert cache.get("k") is value
    now[0] += 2
    assert cache.get("k") is None and len(cache) == 0 and cache.bytes == 0
