"""Fetching media safely (ingress/media/fetch.py): private addresses, schemes, local paths,
redirects and byte caps; every refusal a 4xx naming the part, never echoing a path."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from deployments.config import MediaConfig
from ingress.media import MediaResolver
from tests.helpers import data_url, png_bytes, refused


def _local(**kwargs) -> MediaResolver:
    return MediaResolver(MediaConfig(allow_private_hosts=["127.0.0.1/32"], **kwargs))


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/a.png", "http://localhost:9/a.png", "http://[::1]:9/a.png", "http://169.254.169.254/",
     "http://10.1.2.3/a.png", "http://0.0.0.0:9/", "http://[::ffff:127.0.0.1]:9/", "http://metadata.google.internal/"],
)
async def test_private_addresses_are_refused_by_default(url):
    await refused(MediaResolver().image(url, {}, "p"), 400, "media_url_forbidden")


async def test_other_schemes_and_local_paths_are_refused_by_default(tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes(Image.new("RGB", (28, 28))))
    resolver = MediaResolver()
    await refused(resolver.image("ftp://example.com/a.png", {}, "p"), 400, "unsupported_media_source")
    await refused(resolver.image(str(tmp_path / "a.png"), {}, "p"), 400, "media_path_forbidden")
    await refused(resolver.image(f"file://{tmp_path}/a.png", {}, "p"), 400, "media_path_forbidden")


async def test_paths_outside_allowed_dirs_are_refused(tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (tmp_path / "secret.png").write_bytes(png_bytes(Image.new("RGB", (28, 28))))
    (allowed / "link.png").symlink_to(tmp_path / "secret.png")
    resolver = MediaResolver(MediaConfig(allowed_local_dirs=[str(allowed)]))
    for ref in (str(tmp_path / "secret.png"), f"{allowed}/../secret.png", str(allowed / "link.png"), "/etc/passwd",
                "relative.png"):
        error = await refused(resolver.image(ref, {}, "p"), 400, "media_path_forbidden")
        assert str(tmp_path) not in error.message


async def test_local_http_fetch_when_allowed_and_redirect_checks(media_server):
    base, routes = media_server
    data = png_bytes(Image.new("RGB", (112, 56), "red"))
    routes["/a.png"] = (200, {"content-type": "image/png"}, data)
    routes["/to-a"] = (302, {"location": "/a.png"}, b"")
    port = base.rsplit(":", 1)[1]
    routes["/to-loopback2"] = (302, {"location": f"http://127.0.0.2:{port}/a.png"}, b"")
    routes["/to-file"] = (302, {"location": "file:///etc/passwd"}, b"")
    for i in range(5):
        routes[f"/loop{i}"] = (302, {"location": f"/loop{i + 1}"}, b"")
    resolver = _local()
    assert (await resolver.image(f"{base}/a.png", {}, "p")).shape == (56, 112, 3)
    assert (await resolver.image(f"{base}/to-a", {"max_pixels": 3136}, "p")).shape == (28, 56, 3)
    await refused(resolver.image(f"{base}/to-loopback2", {}, "p"), 400, "media_url_forbidden")
    await refused(resolver.image(f"{base}/to-file", {}, "p"), 400, "unsupported_media_source")
    await refused(resolver.image(f"{base}/loop0", {}, "p"), 400, "media_too_many_redirects")
    await refused(resolver.image(f"{base}/missing.png", {}, "p"), 400, "media_fetch_failed")
    await refused(MediaResolver().image(f"{base}/a.png", {}, "p"), 400, "media_url_forbidden")
    allow = MediaResolver(MediaConfig(allow_private_hosts=True, allowed_domains=["example.com"]))
    await refused(allow.image(f"{base}/a.png", {}, "p"), 400, "media_url_forbidden")


async def test_byte_caps(media_server):
    base, routes = media_server
    big = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)))
    routes["/big.png"] = (200, {}, big)
    resolver = _local(max_image_bytes=len(big) - 1)
    await refused(resolver.image(f"{base}/big.png", {}, "p"), 400, "media_too_large")
    await refused(resolver.image(data_url(big), {}, "p"), 400, "media_too_large")


def test_the_guarded_pool_replaces_httpx_private_transport_pool():
    """fetch.py swaps httpx's private `AsyncHTTPTransport._pool` for a pool on the guarded
    backend; if httpx renames it, the swap would silently do nothing."""
    import httpcore
    import httpx

    from ingress.media.fetch import _guarded_client, _GuardedBackend, AddressPolicy

    assert isinstance(vars(httpx.AsyncHTTPTransport()).get("_pool"), httpcore.AsyncConnectionPool)
    client = _guarded_client(AddressPolicy(False, ()), 1.0)
    assert isinstance(client._transport._pool._network_backend, _GuardedBackend)
