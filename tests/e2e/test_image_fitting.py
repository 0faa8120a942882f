"""A user's first photo just works: a 4032x3024 phone photo to either tiny model (context 4,096
tokens; 15,552 image tokens at Qwen's default limits) is scaled to fit and answered, the answer
says so, the usage is the engine's real count; OpenAI's `detail` is honoured; an explicit
`max_pixels` still gives exactly smart_resize's tokens; what cannot fit is a clean 400."""

from __future__ import annotations

import functools
import io
import re
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from qwen_vl_utils import smart_resize
from tests.helpers import data_url, png_bytes, random_image
from tests.media_reference import make_video

pytestmark = pytest.mark.e2e

MODELS = ["tiny-qwen2-vl", "tiny-qwen2.5-vl"]
CONTEXT = 4096  # serve_config.cpu.yaml's max_model_len
FITTED = "x-images-fitted"


@functools.cache
def photo_url() -> str:
    """A 4032x3024 JPEG (a gradient with sensor-like noise), ~0.6 MB: a phone photo's size."""
    height, width = 3024, 4032
    ys, xs = np.mgrid[0:height, 0:width]
    pixels = np.stack([xs * 255 // width, ys * 255 // height, (xs + ys) * 255 // (width + height)], -1)
    pixels = pixels + np.random.default_rng(0).integers(-8, 9, size=pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=70)
    return data_url(buffer.getvalue(), "image/jpeg")


def _chat(serve_url: str, model: str, *parts: dict, **extra) -> httpx.Response:  # noqa: ANN003
    content = [*parts, {"type": "text", "text": "What is in this picture?"}]
    body = {"model": model, "max_tokens": 2, "messages": [{"role": "user", "content": content}], **extra}
    return httpx.post(f"{serve_url}/v1/chat/completions", json=body, timeout=300)


def _tokens(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    return response.json()["usage"]["prompt_tokens"]


def _photo(**image_url) -> dict:  # noqa: ANN003 - detail, max_pixels
    return {"type": "image_url", "image_url": {"url": photo_url(), **image_url}}


def _grid(height: int, width: int, **bounds) -> int:  # noqa: ANN003 - min/max_pixels
    h, w = smart_resize(height, width, factor=28, **bounds)
    return (h // 28) * (w // 28)


@pytest.mark.parametrize("model", MODELS)
def test_a_phone_photo_is_answered_within_the_context_with_the_real_usage(serve_url, client, model):
    small = {"type": "image_url", "image_url": {"url": data_url(png_bytes(random_image(56, 56)))}}
    text_tokens = _tokens(_chat(serve_url, model, small)) - 4  # a 56x56 image is 4 tokens
    response = _chat(serve_url, model, _photo())
    tokens = _tokens(response)
    fitted = re.fullmatch(r"count=1; scale=0\.(\d+); tokens=15552->(\d+)", response.headers[FITTED])
    assert fitted, response.headers[FITTED]
    assert tokens == int(fitted[2]) + text_tokens  # the usage is the engine's count of the fitted image
    assert CONTEXT / 2 < tokens <= CONTEXT - 2
    # the official client, streamed: the same photo, the same real usage
    stream = client.chat.completions.create(
        model=model, max_tokens=2, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": [_photo(), {"type": "text", "text": "What is in this picture?"}]}],
    )
    assert [chunk.usage for chunk in stream if chunk.usage][-1].prompt_tokens == tokens


def test_detail_low_costs_far_fewer_tokens_and_high_is_the_default(serve_url):
    model = MODELS[0]
    low = _chat(serve_url, model, _photo(detail="low"))
    high = _tokens(_chat(serve_url, model, _photo(detail="high")))
    default = _tokens(_chat(serve_url, model, _photo()))
    assert high == default == _tokens(_chat(serve_url, model, _photo(detail="auto")))
    assert FITTED not in low.headers and _tokens(low) < 300 and high > 8 * _tokens(low)
    small = {"type": "image_url", "image_url": {"url": data_url(png_bytes(random_image(56, 56)))}}
    text_tokens = _tokens(_chat(serve_url, model, small)) - 4
    assert _tokens(low) - text_tokens == _grid(3024, 4032, max_pixels=256 * 28 * 28)  # media.low_detail_max_pixels


def test_an_explicit_max_pixels_gives_exactly_smart_resizes_tokens(serve_url):
    model = MODELS[1]
    counts = {}
    for max_pixels in (28 * 28 * 300, 28 * 28 * 1200):
        response = _chat(serve_url, model, _photo(max_pixels=max_pixels, detail="low"))  # the part's own wins
        assert FITTED not in response.headers
        counts[max_pixels] = _tokens(response) - _grid(3024, 4032, max_pixels=max_pixels)
    assert len(set(counts.values())) == 1  # the rest is the text: the image costs exactly the grid


def test_a_long_video_gets_smaller_and_fewer_frames(serve_url):
    video = data_url(make_video(seconds=20.0, fps=5, width=640, height=480), "video/mp4")
    part = {"type": "video_url", "video_url": {"url": video}, "fps": 2.0}  # 40 frames of 644x476: ~7,800 tokens
    response = _chat(serve_url, MODELS[1], part)
    assert _tokens(response) <= CONTEXT - 2 and response.headers[FITTED].startswith("count=1; ")


def test_what_cannot_fit_even_at_its_smallest_is_a_400_saying_so(serve_url):
    small = data_url(png_bytes(random_image(64, 48)))
    parts = [{"type": "image_url", "image_url": {"url": small, "min_pixels": 28 * 28 * 400}}] * 12
    response = _chat(serve_url, MODELS[0], *parts)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert f"context of {CONTEXT} tokens" in error["message"]
    huge = {"type": "image_url", "image_url": {"url": small, "min_pixels": 67108864}}  # a 193 MiB array, once
    response = _chat(serve_url, MODELS[0], huge)
    assert response.status_code == 400 and response.json()["error"]["param"] == "messages[0].content[0].image_url.min_pixels"
    assert _tokens(_chat(serve_url, MODELS[0], _photo())) <= CONTEXT  # and the next request is served


def _fitted_counts(metrics_export_port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{metrics_export_port}/metrics", timeout=10).text
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("ray_qvs_media_fitted_requests_total{"):
            model = re.search(r'model="([^"]+)"', line)[1]
            counts[model] = counts.get(model, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def test_fitted_requests_are_counted_from_zero(serve_url, metrics_export_port):
    deadline = time.monotonic() + 60
    while set(_fitted_counts(metrics_export_port)) != set(MODELS) and time.monotonic() < deadline:
        time.sleep(1)
    before = _fitted_counts(metrics_export_port)
    assert set(before) == set(MODELS)  # every vision model's series exists (declared at 0: unit-tested)
    assert _chat(serve_url, MODELS[0], _photo()).status_code == 200
    while _fitted_counts(metrics_export_port)[MODELS[0]] < before[MODELS[0]] + 1 and time.monotonic() < deadline:
        time.sleep(1)
    # at least one more: a fit of an earlier test may still be on its way to the export (1 s)
    assert _fitted_counts(metrics_export_port)[MODELS[0]] >= before[MODELS[0]] + 1
