"""Fetching media safely (ingress/media/fetch.py): private addresses, schemes, local paths,
redirects and byte caps; every refusal a 4xx naming the part, never echoing a path."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from deployments.config import MediaConfig
from ingress.media import MediaResolver
from tests.helpers import data_url, png_bytes, refused
from tests.unit.ingress.media.conftest import Route


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


# -- hostile servers and isolation between clients (docs/reliability.md, Limits) ------------------


def _gzip_bomb(unpacked: int) -> bytes:
    """`Content-Encoding: gzip, gzip` bytes that unpack to `unpacked` zero bytes."""
    import gzip

    return gzip.compress(gzip.compress(b"\0" * unpacked, 9), 9)


async def test_compressed_downloads_are_refused_and_identity_is_asked_for(recording_server):
    """A double-gzip body of a few kB unpacked to gigabytes before the byte cap was checked."""
    server = recording_server
    bomb = _gzip_bomb(32 * 1024 * 1024)
    assert len(bomb) < 4096
    server.routes["/bomb.png"] = Route(200, {"content-encoding": "gzip, gzip"}, bomb)
    server.routes["/br.png"] = Route(200, {"content-encoding": "br"}, b"x" * 10)
    server.routes["/plain.png"] = Route(200, {"content-encoding": "identity"}, png_bytes(Image.new("RGB", (56, 56))))
    resolver = _local(max_image_bytes=1024 * 1024)
    for path in ("/bomb.png", "/br.png"):
        error = await refused(resolver.image(f"{server.base}{path}", {}, "messages[0].content[1].image_url"),
                              400, "unsupported_content_encoding", param="messages[0].content[1].image_url")
        assert "Content-Encoding" in error.message
    assert (await resolver.image(f"{server.base}/plain.png", {}, "p")).shape == (56, 56, 3)
    assert {headers["accept-encoding"] for _, headers in server.seen} == {"identity"}


async def test_downloads_keep_no_cookies(recording_server):
    """One client fetches for every user: a cookie set for one must not be sent for another."""
    server = recording_server
    png = png_bytes(Image.new("RGB", (28, 28)))
    server.routes["/set"] = Route(200, {"set-cookie": "session=alice; Path=/"}, png)
    server.routes["/get"] = Route(200, {}, png)
    resolver = _local(cache_max_bytes=0)
    await resolver.image(f"{server.base}/set", {}, "p")
    await resolver.image(f"{server.base}/get", {}, "p")
    assert [path for path, _ in server.seen] == ["/set", "/get"]
    assert all("cookie" not in headers for _, headers in server.seen)
    assert len(resolver.fetcher._http().cookies) == 0


async def test_downloads_per_host_are_bounded():
    import asyncio

    from ingress.media.fetch import _HostSlots

    slots, running, most = _HostSlots(2), {"a": 0, "b": 0}, {"a": 0, "b": 0}

    async def fetch(host: str) -> None:
        async with slots.slot(host):
            running[host] += 1
            most[host] = max(most[host], running[host])
            await asyncio.sleep(0.01)
            running[host] -= 1

    await asyncio.gather(*(fetch(h) for h in "aaaaabbb"))
    assert most == {"a": 2, "b": 2}
    assert len(slots) == 0  # no semaphore kept per host once idle


async def test_dns_lookups_run_on_the_fetchers_own_pool(recording_server, monkeypatch):
    import socket
    import threading

    server = recording_server
    server.routes["/a.png"] = Route(200, {}, png_bytes(Image.new("RGB", (28, 28))))
    threads, real = [], socket.getaddrinfo

    def lookup(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - socket.getaddrinfo's
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    port = server.base.rsplit(":", 1)[1]
    await _local().image(f"http://localhost:{port}/a.png", {}, "p")
    assert threads and all(name.startswith("media-io") for name in threads)


async def test_a_cancelled_download_is_cancelled_not_turned_into_an_error(recording_server):
    """The fetch timeout (asyncio.timeout, not wait_for) must not swallow the caller's cancellation."""
    import asyncio

    server = recording_server
    server.routes["/slow.png"] = Route(200, {}, png_bytes(Image.new("RGB", (28, 28))), delay_s=1.0)
    resolver = _local()
    task = asyncio.ensure_future(resolver.fetcher.fetch(f"{server.base}/slow.png", "p", 1 << 20))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    slow = _local(fetch_timeout_s=0.2)
    await refused(slow.fetcher.fetch(f"{server.base}/slow.png", "p", 1 << 20), 400, "media_fetch_timeout")


@pytest.mark.parametrize(
    ("address", "allowed"),
    [("8.8.8.8", True), ("2001:4860:4860::8888", True), ("2002:808:808::1", True), ("64:ff9b::808:808", False),
     ("fec0::1", False),  # deprecated site-local: ipaddress' is_private and is_reserved miss it
     ("feff:ffff::1", False), ("fc00::1", False), ("fe80::1%eth0", False), ("ff0e::1", False), ("::1", False),
     ("::", False), ("::ffff:10.0.0.1", False), ("2002:7f00:1::", False), ("2002:a00:1::", False),
     ("64:ff9b::7f00:1", False), ("64:ff9b:1::808:808", False), ("2001:db8::1", False), ("2001::1", False),
     ("100.64.0.1", False), ("192.0.0.1", False), ("198.18.0.1", False), ("192.0.2.1", False),
     ("240.0.0.1", False), ("255.255.255.255", False), ("224.0.0.1", False), ("169.254.169.254", False)],
)
def test_address_policy_allows_only_global_unicast(address, allowed):
    import ipaddress

    from ingress.media.fetch import AddressPolicy

    assert AddressPolicy(False, ()).allows(address) is allowed
    if allowed:
        assert ipaddress.ip_address(address).is_global
    assert AddressPolicy(True, ()).allows(address)
    assert AddressPolicy(False, (ipaddress.ip_network("fec0::/10"),)).allows("fec0::1")
