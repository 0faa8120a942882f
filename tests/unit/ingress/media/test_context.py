"""Media planned against the model's context (ingress/media/context.py), through the HTTP API over
fake engines (context 4,096 tokens): a large photo is fitted and the answer says so, OpenAI's
`detail` is honoured, a part's own max_pixels wins, and what cannot fit is a 400 that says why."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image
from qwen_vl_utils.vision_process import smart_resize

from ingress.app import create_api
from ingress.routes.chat import FITTED_HEADER
from tests.helpers import data_url, png_bytes
from tests.unit.conftest import BASE_URL, unit_config

MODEL = "tiny-qwen2-vl"
CONTEXT = 4096  # the fake engine's max_model_len
PHOTO = data_url(png_bytes(Image.new("RGB", (4032, 3024), "teal")))  # a phone photo's size, a small body


def _ask(*parts: dict, **extra) -> dict:  # noqa: ANN003 - request fields
    content = [*parts, {"type": "text", "text": "What is in this picture?"}]
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}


def _photo(**image_url) -> dict:  # noqa: ANN003 - image_url fields (detail, max_pixels)
    return {"type": "image_url", "image_url": {"url": PHOTO, **image_url}}


def _tokens(servers) -> list[int]:  # noqa: ANN001 - the fake model servers
    images = servers[MODEL]._engine.prompts[-1]["multi_modal_data"]["image"]
    return [(image.shape[0] // 28) * (image.shape[1] // 28) for image in images]


async def test_a_phone_photo_is_fitted_to_the_context_and_the_answer_says_so(http, servers, recorded):
    response = await http.post("/v1/chat/completions", json=_ask(_photo()))
    assert response.status_code == 200, response.text
    (tokens,) = _tokens(servers)
    assert tokens <= CONTEXT - 1024 - 100  # the answer's room (answer_tokens) and the text's
    assert tokens > CONTEXT / 2  # as large as fits
    header = response.headers[FITTED_HEADER]
    assert header.startswith("count=1; scale=0.") and header.endswith(f"tokens=15552->{tokens}")
    assert recorded["media_fitted"].calls == [(1, {"model": MODEL})]


async def test_a_small_max_tokens_leaves_the_images_more_room(http, servers):
    await http.post("/v1/chat/completions", json=_ask(_photo()))
    default = _tokens(servers)[0]
    response = await http.post("/v1/chat/completions", json=_ask(_photo(), max_tokens=16))
    assert response.status_code == 200 and _tokens(servers)[0] > default
    large = await http.post("/v1/chat/completions", json=_ask(_photo(), max_tokens=4000))  # room capped at answer_tokens
    assert large.status_code == 200 and _tokens(servers)[0] == default
    beyond = await http.post("/v1/chat/completions", json=_ask(_photo(), max_tokens=100_000))  # past the context
    assert beyond.status_code == 400 and beyond.json()["error"]["param"] == "max_tokens"


async def test_detail_low_costs_a_few_hundred_tokens_and_high_is_the_default(http, servers):
    small = data_url(png_bytes(Image.new("RGB", (1024, 768), "olive")))  # fits the context as it is
    sizes = {}
    for detail in ("low", "high", "auto", None):
        image_url = {"url": small} | ({"detail": detail} if detail else {})
        response = await http.post("/v1/chat/completions", json=_ask({"type": "image_url", "image_url": image_url}))
        assert response.status_code == 200, response.text
        assert FITTED_HEADER not in response.headers
        sizes[detail] = _tokens(servers)[0]
    assert sizes["low"] <= 256 < sizes[None] == sizes["high"] == sizes["auto"] == 27 * 37


async def test_a_parts_own_max_pixels_wins_over_detail_and_gives_smart_resizes_tokens(http, servers):
    max_pixels = 28 * 28 * 600
    response = await http.post("/v1/chat/completions", json=_ask(_photo(detail="low", max_pixels=max_pixels)))
    assert response.status_code == 200, response.text
    height, width = smart_resize(3024, 4032, factor=28, max_pixels=max_pixels)
    assert _tokens(servers) == [(height // 28) * (width // 28)]
    assert FITTED_HEADER not in response.headers


async def test_images_that_cannot_fit_even_at_their_smallest_are_a_400_saying_how_many_tokens(http):
    small = data_url(png_bytes(Image.new("RGB", (64, 48), "teal")))
    parts = [{"type": "image_url", "image_url": {"url": small, "min_pixels": 28 * 28 * 400}}] * 12  # 4,800 tokens
    response = await http.post("/v1/chat/completions", json=_ask(*parts))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    height, width = smart_resize(48, 64, factor=28, min_pixels=28 * 28 * 400)  # upscaled: min_pixels kept
    needed = 12 * (height // 28) * (width // 28)
    assert f"at least {needed} tokens" in error["message"] and f"context of {CONTEXT} tokens" in error["message"]
    assert (await http.post("/v1/chat/completions", json=_ask(_photo()))).status_code == 200


@pytest.fixture
async def configured(router) -> AsyncIterator[callable]:
    """An HTTP client over the app built from `unit_config()` changed by `change(config)`."""
    clients = []

    async def build(change) -> httpx.AsyncClient:  # noqa: ANN001 - AppConfig -> None
        config = unit_config()
        change(config)
        for route in router.routes.values():  # the routes carry the model configs the plan reads
            route.config = next(m for m in config.models if m.name == route.config.name)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_api(config, router)), base_url=BASE_URL)
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


async def test_fitting_can_be_switched_off(configured, servers):
    def off(config) -> None:  # noqa: ANN001
        config.models[0].media.fit_to_context = False

    http = await configured(off)
    response = await http.post("/v1/chat/completions", json=_ask(_photo()))
    assert response.status_code == 200 and FITTED_HEADER not in response.headers
    assert _tokens(servers) == [15552]  # the engine's own context check is left to answer


async def test_a_request_past_the_pixel_budget_is_a_400(configured):
    def tight(config) -> None:  # noqa: ANN001
        config.ingress.media.max_request_pixels = 500_000

    http = await configured(tight)
    response = await http.post("/v1/chat/completions", json=_ask(_photo(max_pixels=28 * 28 * 1000)))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "media_too_large" and "pixels" in response.json()["error"]["message"]
    assert (await http.post("/v1/chat/completions", json=_ask(_photo(max_pixels=28 * 28 * 500)))).status_code == 200


async def test_images_come_within_the_engines_per_item_limit(http, servers):
    small = data_url(png_bytes(Image.new("RGB", (1024, 768), "olive")))  # 999 tokens: fits the context
    servers[MODEL]._engine.max_media_item_tokens = 500  # vLLM's encoder cache, as the engine reports it
    response = await http.post("/v1/chat/completions", json=_ask({"type": "image_url", "image_url": {"url": small}}))
    assert response.status_code == 200, response.text
    (tokens,) = _tokens(servers)
    assert 400 < tokens <= 500 and response.headers[FITTED_HEADER].endswith(f"tokens=999->{tokens}")
