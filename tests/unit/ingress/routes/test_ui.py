"""The browser page (ingress/routes/ui.py): served from the package, open, self-contained."""

from __future__ import annotations

import re

import httpx
import pytest

from deployments.config import AppConfig
from ingress.app import create_api
from ingress.routes.ui import STATIC_DIR
from tests.unit.conftest import BASE_URL, unit_config

ASSETS = ("app.js", "app.css")


async def test_ui_redirects_to_the_page_relatively(http):
    response = await http.get("/ui")
    assert response.status_code == 308 and response.headers["location"] == "ui/"  # keeps a route prefix


async def test_the_page_and_its_assets_are_served(http):
    page = await http.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    linked = [url for url in re.findall(r'(?:src|href)="([^"]+)"', page.text) if url != "data:,"]  # no favicon
    assert sorted(linked) == sorted(f"static/{name}" for name in ASSETS)
    for name, kind in zip(ASSETS, ("javascript", "text/css"), strict=True):
        asset = await http.get(f"/ui/static/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"] and asset.headers.get("etag")
        cached = await http.get(f"/ui/static/{name}", headers={"if-none-match": asset.headers["etag"]})
        assert cached.status_code == 304
    assert (await http.get("/ui/static/missing.js")).status_code == 404
    assert (await http.get("/ui/static/%2e%2e/%2e%2e/routes/ui.py")).status_code == 404


async def test_the_page_is_open_when_keys_are_set_and_the_api_is_not(router):
    config = AppConfig.model_validate({**unit_config().model_dump(), "ingress": {"api_keys": ["sk-test"]}})
    transport = httpx.ASGITransport(app=create_api(config, router))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as keyed_http:
        await _page_open_api_closed(keyed_http)


async def _page_open_api_closed(keyed_http: httpx.AsyncClient) -> None:
    assert (await keyed_http.get("/ui/")).status_code == 200
    assert (await keyed_http.get("/ui/static/app.js")).status_code == 200
    assert (await keyed_http.get("/v1/models")).status_code == 401  # what makes the page ask for a key


@pytest.mark.parametrize("name", ["index.html", *ASSETS])
def test_nothing_is_fetched_from_outside(name):
    """No CDN, no font service: the page works with no internet."""
    text = (STATIC_DIR / name).read_text()
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I)
    assert "@import" not in text and "import(" not in text


async def test_the_page_is_not_in_the_api_document(http):
    paths = (await http.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith("/ui")]
