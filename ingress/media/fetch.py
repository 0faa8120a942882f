"""Getting media bytes safely: http(s) downloads, data URLs and allowed local files.

SSRF defence: every connection (the first hop and every redirect) goes through
`_GuardedBackend`, which resolves the host itself, refuses private, loopback, link-local,
multicast, reserved and metadata addresses unless the config allows them, and connects to
the very address it checked (no second resolution an attacker could rebind). Redirects are
followed by hand, re-checking scheme and domain each hop, up to `max_redirects`. Proxies
from the environment are ignored (a proxy would hide the real destination). Downloads are
streamed and cut at the byte cap; the whole download is bounded by `fetch_timeout_s`.

Isolation between clients: downloads ask for `Accept-Encoding: identity` and refuse any
other encoding (a 1.8 kB double-gzip body would otherwise unpack a whole network chunk at a
time, gigabytes, before the byte cap is checked); the client keeps no cookies (one client
serves every user); at most `max_fetches_per_host` downloads run per host at once; DNS
look-ups and local file reads run on their own bounded thread pool (`io_threads`), never on
the event loop's default one that decoding and other work share.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import http.cookiejar
import ipaddress
import os
import socket
import urllib.parse
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpcore
import httpx

from deployments.config import MediaConfig
from deployments.errors import MediaRefusedError

_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})
_METADATA_IPS = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)


class ForbiddenAddressError(Exception):
    """A host resolved to an address the config does not allow (never shown to clients)."""


class _FetchRefused(Exception):
    """Internal: a download was refused (with a client-safe message and code)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class AddressPolicy:
    """Which resolved addresses may be connected to."""

    allow_all_private: bool
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def from_config(cls, config: MediaConfig) -> AddressPolicy:
        value = config.allow_private_hosts
        if isinstance(value, bool):
            return cls(value, ())
        return cls(False, tuple(ipaddress.ip_network(n, strict=False) for n in value))

    def allows(self, address: str) -> bool:
        """Only globally routable unicast addresses (ipaddress' `is_global`), unless allowed.

        On top of `is_global`: multicast, reserved (NAT64's 64:ff9b::/96 among them),
        deprecated site-local (fec0::/10, which `is_global` lets through) and cloud metadata
        addresses are refused, and the IPv4 address inside a 6to4 one must itself be allowed.
        """
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if self.allow_all_private or any(ip in net for net in self.allowed_networks):
            return True
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.is_site_local or (ip.sixtofour is not None and not self.allows(str(ip.sixtofour))):
                return False
        return ip.is_global and not (
            ip in _METADATA_IPS or ip.is_private or ip.is_loopback or ip.is_link_local
            or ip.is_multicast or ip.is_reserved or ip.is_unspecified
        )


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves (on `resolver`, a bounded pool), checks, and connects to the checked address
    (no DNS rebinding window)."""

    def __init__(self, policy: AddressPolicy, resolver: ThreadPoolExecutor | None = None) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):  # noqa: ANN001, ANN201
        lookup = functools.partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        infos = await asyncio.get_running_loop().run_in_executor(self._resolver, lookup)
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        if not addresses:
            raise ForbiddenAddressError("no address")
        if not all(self._policy.allows(a) for a in addresses):
            raise ForbiddenAddressError("address not allowed")
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        raise ForbiddenAddressError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _NoCookies(http.cookiejar.CookiePolicy):
    """Keeps and sends no cookies: one client downloads for every user of the replica."""

    netscape, rfc2965, hide_cookie2 = True, False, True

    def set_ok(self, cookie, request) -> bool:  # noqa: ANN001 - http.cookiejar's signature
        return False

    def return_ok(self, cookie, request) -> bool:  # noqa: ANN001
        return False

    def domain_return_ok(self, domain, request) -> bool:  # noqa: ANN001
        return False

    def path_return_ok(self, path, request) -> bool:  # noqa: ANN001
        return False


def _guarded_client(
    policy: AddressPolicy, timeout_s: float, max_connections: int = 64, resolver: ThreadPoolExecutor | None = None
) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(trust_env=False, retries=0)
    # httpx does not expose httpcore's network backend; swap its private pool for one that
    # uses ours (tests/unit/ingress/media/test_fetch.py fails if httpx renames `_pool`).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=max_connections,
        max_keepalive_connections=min(16, max_connections),
        keepalive_expiry=5.0,
        network_backend=_GuardedBackend(policy, resolver),
    )
    return httpx.AsyncClient(
        transport=transport, trust_env=False, follow_redirects=False, timeout=httpx.Timeout(timeout_s),
        headers={"accept-encoding": "identity"}, cookies=http.cookiejar.CookieJar(policy=_NoCookies()),
    )


class _HostSlots:
    """At most `limit` downloads per host name at once; a host's semaphore lives while used."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._hosts: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        semaphore, users = self._hosts.setdefault(host, (asyncio.Semaphore(self._limit), [0]))
        users[0] += 1
        try:
            async with semaphore:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._hosts[host]

    def __len__(self) -> int:
        return len(self._hosts)


class MediaFetcher:
    """Gets the bytes a media reference names, or raises a client-safe 400."""

    def __init__(self, config: MediaConfig) -> None:
        self.config = config
        self.policy = AddressPolicy.from_config(config)
        self._client: httpx.AsyncClient | None = None
        self._local_dirs = [Path(os.path.realpath(d)) for d in config.allowed_local_dirs]
        self._io = ThreadPoolExecutor(config.io_threads, thread_name_prefix="media-io")
        self.hosts = _HostSlots(config.max_fetches_per_host)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = _guarded_client(
                self.policy, self.config.fetch_timeout_s, self.config.max_connections, self._io
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._io.shutdown(wait=False, cancel_futures=True)

    # -- public ---------------------------------------------------------------------------

    @staticmethod
    def kind_of(ref: str) -> str:
        """'data', 'http' or 'file' (a `file://` URL or a plain path)."""
        lower = ref[:8].lower()
        if lower.startswith("data:"):
            return "data"
        if lower.startswith(("http://", "https://")):
            return "http"
        if lower.startswith("file://") or "://" not in ref[:16]:
            return "file"
        return "other"

    async def fetch(self, ref: Any, param: str, max_bytes: int) -> bytes:
        """The bytes behind `ref` (data URL, http(s) URL, or allowed local file)."""
        if not isinstance(ref, str) or not ref:
            raise MediaRefusedError("The media reference must be a non-empty string", param)
        kind = self.kind_of(ref)
        if kind == "data":
            return decode_data_url(ref, param, max_bytes)
        if kind == "http":
            return await self._download(ref, param, max_bytes)
        if kind == "file":
            return await asyncio.get_running_loop().run_in_executor(self._io, self._read_local, ref, param, max_bytes)
        scheme = ref.split(":", 1)[0]
        raise MediaRefusedError(
            f"Media URLs of scheme {scheme[:16]!r} are not supported; use http(s), data or an allowed local path",
            param, code="unsupported_media_source",
        )

    def check_url(self, url: str, param: str) -> None:
        """Scheme and domain checks of a URL (addresses are checked when connecting)."""
        try:
            self._check_url(url)
        except _FetchRefused as exc:
            raise MediaRefusedError(exc.message, param, code=exc.code) from None

    # -- local files ----------------------------------------------------------------------

    def _read_local(self, ref: str, param: str, max_bytes: int) -> bytes:
        if not self._local_dirs:
            raise MediaRefusedError(
                "Local media paths are not allowed by this server", param, code="media_path_forbidden"
            )
        raw = urllib.parse.unquote(ref[7:]) if ref[:7].lower() == "file://" else ref
        if raw.startswith("localhost/"):
            raw = raw[len("localhost"):]
        if "\x00" in raw or not os.path.isabs(raw):
            raise MediaRefusedError("Local media paths must be absolute", param, code="media_path_forbidden")
        real = Path(os.path.realpath(raw))
        if not any(real == d or d in real.parents for d in self._local_dirs):
            raise MediaRefusedError(
                "The path is outside the directories this server allows", param, code="media_path_forbidden"
            )
        try:
            size = real.stat().st_size
            if not real.is_file():
                raise FileNotFoundError
            if size > max_bytes:
                raise MediaRefusedError(
                    f"The file is larger than {max_bytes} bytes", param, code="media_too_large"
                )
            with real.open("rb") as handle:
                data = handle.read(max_bytes + 1)
        except OSError:
            raise MediaRefusedError("The file cannot be read", param, code="media_not_found") from None
        if len(data) > max_bytes:
            raise MediaRefusedError(f"The file is larger than {max_bytes} bytes", param, code="media_too_large")
        return data

    # -- http(s) --------------------------------------------------------------------------

    def _check_url(self, url: str) -> httpx.URL:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError):
            raise _FetchRefused("The URL is malformed", "invalid_media_url") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise _FetchRefused("Only http(s) URLs with a host can be fetched", "unsupported_media_source")
        if parsed.userinfo:
            raise _FetchRefused("URLs with credentials are not fetched", "invalid_media_url")
        host = parsed.host.rstrip(".").lower()
        if host in _METADATA_HOSTS and not self.policy.allow_all_private:
            raise _FetchRefused("The URL's host is not allowed", "media_url_forbidden")
        allowed = self.config.allowed_domains
        if allowed is not None and not any(
            host == d.lower().rstrip(".") or host.endswith("." + d.lower().strip(".")) for d in allowed
        ):
            raise _FetchRefused("The URL's domain is not in this server's allowlist", "media_url_forbidden")
        return parsed

    async def _download(self, url: str, param: str, max_bytes: int) -> bytes:
        try:
            async with asyncio.timeout(self.config.fetch_timeout_s):  # not wait_for: see batching.py
                return await self._follow(url, max_bytes)
        except _FetchRefused as exc:
            raise MediaRefusedError(exc.message, param, code=exc.code) from None
        except ForbiddenAddressError:
            raise MediaRefusedError(
                "The URL resolves to an address this server does not fetch from "
                "(private, loopback, link-local or metadata)",
                param, code="media_url_forbidden",
            ) from None
        except (TimeoutError, httpx.TimeoutException):
            raise MediaRefusedError("Fetching the media timed out", param, code="media_fetch_timeout") from None
        except (httpx.HTTPError, OSError, UnicodeError, ValueError):
            raise MediaRefusedError("The media could not be fetched", param, code="media_fetch_failed") from None

    async def _follow(self, url: str, max_bytes: int) -> bytes:
        current = self._check_url(url)
        for _ in range(self.config.max_redirects + 1):
            async with self.hosts.slot(current.host), self._http().stream("GET", current) as response:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise _FetchRefused("The media URL redirected nowhere", "media_fetch_failed")
                    current = self._check_url(str(current.join(location)))
                    continue
                return await _body(response, max_bytes)
        raise _FetchRefused(
            f"The media URL redirected more than {self.config.max_redirects} times", "media_too_many_redirects"
        )


async def _body(response: httpx.Response, max_bytes: int) -> bytes:
    """The raw body of a 200 response, uncompressed only, cut at `max_bytes`."""
    if response.status_code != 200:
        raise _FetchRefused(f"Fetching the media failed with HTTP status {response.status_code}", "media_fetch_failed")
    if response.headers.get("content-encoding", "identity").strip().lower() not in ("", "identity"):
        raise _FetchRefused(
            "The media server sent a compressed response (Content-Encoding); only uncompressed "
            "(identity) downloads are accepted", "unsupported_content_encoding",
        )
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise _FetchRefused(f"The media is larger than {max_bytes} bytes", "media_too_large")
    body = bytearray()
    async for chunk in response.aiter_raw():  # raw: nothing is unpacked
        body += chunk
        if len(body) > max_bytes:
            raise _FetchRefused(f"The media is larger than {max_bytes} bytes", "media_too_large")
    return bytes(body)


def decode_data_url(url: str, param: str, max_bytes: int) -> bytes:
    """`data:<mime>;base64,<payload>` -> bytes, capped before decoding."""
    header, sep, payload = url.partition(",")
    if not sep or not header[:5].lower() == "data:":
        raise MediaRefusedError("Malformed data URL: expected data:<mime>;base64,<data>", param)
    if not header.lower().endswith(";base64"):
        raise MediaRefusedError("Only base64 data URLs are supported", param)
    if len(payload) * 3 // 4 > max_bytes + 3:
        raise MediaRefusedError(f"Data URL larger than {max_bytes} bytes", param, code="media_too_large")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise MediaRefusedError("Data URL is not valid base64", param) from None
    if len(data) > max_bytes:
        raise MediaRefusedError(f"Data URL larger than {max_bytes} bytes", param, code="media_too_large")
    return data
