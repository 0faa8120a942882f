"""`GET /ui`: a chat page to try the models in a browser, with no code and no internet.

Three static files shipped in the package (ingress/ui/static: one HTML, one JS, one CSS; no
framework, no CDN) talk to this same server's OpenAI API from the browser: `/v1/models`,
then `/v1/chat/completions` streamed. The page is open (it holds no data); the API calls it
makes carry the key the user types when keys are configured. Every URL in the page is
relative, so it works under any route prefix.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parents[1] / "ui" / "static"

# The page runs only its own script and talks only to this server; pictures and videos may
# come from anywhere the user points (they are shown as the user attached them).
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data: blob: http: https:; media-src 'self' data: blob: http: https:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def register(app: FastAPI) -> None:
    """The page at `/ui/` (`/ui` redirects there) and its assets under `/ui/static/`."""

    @app.get("/ui", include_in_schema=False)
    async def to_page() -> RedirectResponse:
        return RedirectResponse("ui/", status_code=308)  # relative: keeps any route prefix

    @app.get("/ui/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_PAGE_HEADERS)

    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
