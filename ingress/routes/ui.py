"""`GET /ui`: a chat page to try the models in a browser, with no code and no internet.

Three static files shipped in the package (ingress/ui/static: one HTML, one JS, one CSS; no
framework, no CDN) talk to this same server's OpenAI API from the browser: `/v1/models`,
then `/v1/chat/completions` streamed. The page is open (it holds no data); the API calls it
makes carry the key the user types when keys are configured. Every URL in the page is
relative, so it works under any route prefix.

The files are read once per replica and served from memory with a content-hash ETag and
`no-cache`: a browser revalidates (a 304 of a few bytes) and never runs a stale script
after an upgrade (file times in a wheel are fixed, so time-based validators would not move).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

STATIC_DIR = Path(__file__).resolve().parents[1] / "ui" / "static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}

# The page runs only its own script and talks only to this server; pictures and videos may
# come from anywhere the user points (they are shown as the user attached them).
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data: blob: http: https:; media-src 'self' data: blob: http: https:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


@dataclass(frozen=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str

    @classmethod
    def read(cls, path: Path) -> _Asset:
        body = path.read_bytes()
        return cls(body, _TYPES[path.suffix], f'"{hashlib.sha256(body).hexdigest()[:32]}"')

    def response(self, request: Request, headers: dict[str, str] | None = None) -> Response:
        common = {"ETag": self.etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        common.update(headers or {})
        if request.headers.get("if-none-match") == self.etag:
            return Response(status_code=304, headers=common)
        return Response(self.body, media_type=self.media_type, headers=common)


def register(app: FastAPI) -> None:
    """The page at `/ui/` (`/ui` redirects there) and its assets under `/ui/static/`."""
    assets = {path.name: _Asset.read(path) for path in STATIC_DIR.iterdir() if path.suffix in _TYPES}
    page = assets.pop("index.html")

    @app.get("/ui", include_in_schema=False)
    async def to_page() -> RedirectResponse:
        return RedirectResponse("ui/", status_code=308)  # relative: keeps any route prefix

    @app.get("/ui/", include_in_schema=False)
    async def serve_page(request: Request) -> Response:
        return page.response(request, _PAGE_HEADERS)

    @app.get("/ui/static/{name}", include_in_schema=False)
    async def serve_asset(name: str, request: Request) -> Response:
        asset = assets.get(name)
        if asset is None:
            raise HTTPException(status_code=404, detail="No such file")
        return asset.response(request)
