"""Shared test setup: an isolated cache for tiny checkpoints, loopback-only Ray, a media server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import serving

# Ray must listen on loopback only (this machine's other addresses are off limits), and
# nothing may try to reach a model hub.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny checkpoints are cached per test session (or in QWEN_VL_SERVE_CACHE if set)."""
    if "QWEN_VL_SERVE_CACHE" not in os.environ:
        os.environ["QWEN_VL_SERVE_CACHE"] = str(tmp_path_factory.mktemp("qwen-vl-serve-cache"))
    return Path(os.environ["QWEN_VL_SERVE_CACHE"])


@pytest.fixture(scope="session")
def media_server() -> Iterator[tuple[str, dict]]:
    """A loopback HTTP server for media tests: (base URL, routes tests may add to)."""
    routes: dict[str, tuple[int, dict, bytes]] = {}
    with serving(routes) as base:
        yield base, routes
