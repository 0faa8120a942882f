"""Media through the whole stack: sources, Qwen resizing and frame sampling seen in the
token counts, and every safety refusal as a 4xx while the server keeps serving."""

from __future__ import annotations

import gzip

import httpx
import pytest
from PIL import Image

from qwen_vl_utils import smart_resize
from tests.e2e.conftest import E2E_MAX_IMAGE_BYTES
from tests.helpers import data_url, png_bytes, random_image
from tests.media_reference import make_video, use_pyav_decord

pytestmark = pytest.mark.e2e

MODEL = "tiny-qwen2-vl"


IMAGE = png_bytes(random_image(200, 150, seed=7))


def _chat(serve_url: str, content: list, **extra) -> httpx.Response:
    body = {"model": MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": content}], **extra}
    return httpx.post(f"{serve_url}/v1/chat/completions", json=body, timeout=120)


def _tokens(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    return response.json()["usage"]["prompt_tokens"]


def _grid(height: int, width: int, **bounds) -> int:
    h, w = smart_resize(height, width, factor=28, **bounds)
    return (h // 28) * (w // 28)


def test_image_from_http_data_url_and_local_path_agree(serve_url, media_server, media_dir):
    base, routes = media_server
    routes["/img.png"] = (200, {"content-type": "image/png"}, IMAGE)
    (media_dir / "img.png").write_bytes(IMAGE)
    text = {"type": "text", "text": "What is it?"}
    counts = [
        _tokens(_chat(serve_url, [{"type": "image_url", "image_url": {"url": f"{base}/img.png"}}, text])),
        _tokens(_chat(serve_url, [{"type": "image_url", "image_url": {"url": data_url(IMAGE)}}, text])),
        _tokens(_chat(serve_url, [{"type": "image", "image": f"file://{media_dir}/img.png"}, text])),
        _tokens(_chat(serve_url, [{"type": "image", "image": str(media_dir / "img.png")}, text])),
    ]
    assert len(set(counts)) == 1


def test_max_pixels_changes_prompt_tokens_exactly_as_the_grid_predicts(serve_url):
    part = {"type": "image_url", "image_url": {"url": data_url(IMAGE)}}
    text = {"type": "text", "text": "Describe."}
    rest = set()
    for max_pixels in (28 * 28 * 4, 28 * 28 * 12, 28 * 28 * 30, 28 * 28 * 100):
        tokens = _tokens(_chat(serve_url, [part, text], mm_processor_kwargs={"max_pixels": max_pixels}))
        rest.add(tokens - _grid(150, 200, min_pixels=3136, max_pixels=max_pixels))
        # the same value given on the content part (qwen-vl-utils' place) counts the same
        assert _tokens(_chat(serve_url, [{**part, "max_pixels": max_pixels}, text])) == tokens
    assert len(rest) == 1  # text tokens constant: the image tokens are exactly the grid
    resized = _tokens(_chat(serve_url, [{**part, "resized_height": 56, "resized_width": 112}, text]))
    assert resized - rest.pop() == 2 * 4


def test_video_at_fps_2_gives_qwen_vl_utils_frame_count(serve_url, media_dir):
    from qwen_vl_utils import fetch_video

    use_pyav_decord()
    video = make_video(seconds=3.0, fps=10, width=96, height=64)
    (media_dir / "clip.mp4").write_bytes(video)
    expected = fetch_video({"video": f"file://{media_dir}/clip.mp4", "fps": 2.0})
    frames, _, height, width = expected.shape
    assert frames == 6
    per_grid = (height // 28) * (width // 28)
    text = {"type": "text", "text": "What happens?"}
    at_fps2 = _tokens(_chat(serve_url, [{"type": "video_url", "video_url": {"url": data_url(video, "video/mp4")}, "fps": 2.0}, text]))
    two = _tokens(_chat(serve_url, [{"type": "video", "video": str(media_dir / "clip.mp4"), "nframes": 2}, text]))
    # temporal patches of 2 frames: 6 frames -> 3 grids of tokens, 2 frames -> 1
    assert at_fps2 - two == (frames // 2 - 1) * per_grid
    both = _tokens(_chat(serve_url, [{"type": "video", "video": str(media_dir / "clip.mp4"), "fps": 2.0}, text],
                         model="tiny-qwen2.5-vl"))
    assert both > 0


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("loopback", 400, "media_url_forbidden"),
        ("redirect_to_loopback", 400, "media_url_forbidden"),
        ("outside_dir", 400, "media_path_forbidden"),
        ("oversize", 400, "media_too_large"),
        ("bomb", 400, "media_too_large"),
        ("corrupt", 422, "invalid_image"),
        ("too_many", 400, "too_many_images"),
        ("double_gzip", 400, "unsupported_content_encoding"),  # a few kB that unpack to 32 MiB
    ],
)
def test_safety_refusals(serve_url, media_server, media_dir, tmp_path, name, status, code):
    base, routes = media_server
    port = base.rsplit(":", 1)[1]
    routes["/redirect"] = (302, {"location": f"http://127.0.0.2:{port}/img.png"}, b"")
    routes["/big.png"] = (200, {}, b"\x89PNG" + b"\x00" * (E2E_MAX_IMAGE_BYTES + 10))
    routes["/bomb.png"] = (200, {}, png_bytes(Image.new("1", (12000, 12000))))
    routes["/corrupt.png"] = (200, {}, b"\x89PNG\r\n\x1a\n garbage")
    routes["/gzip.png"] = (200, {"content-encoding": "gzip, gzip"}, gzip.compress(gzip.compress(bytes(1 << 25))))
    (tmp_path / "secret.png").write_bytes(IMAGE)
    url = {
        "loopback": f"http://127.0.0.2:{port}/img.png",  # loopback, not the allowed 127.0.0.1
        "redirect_to_loopback": f"{base}/redirect",
        "outside_dir": f"file://{media_dir}/../{tmp_path.name}/secret.png",
        "oversize": f"{base}/big.png",
        "bomb": f"{base}/bomb.png",
        "corrupt": f"{base}/corrupt.png",
        "too_many": data_url(png_bytes(Image.new("RGB", (28, 28)))),
        "double_gzip": f"{base}/gzip.png",
    }[name]
    count = 17 if name == "too_many" else 1
    content = [{"type": "text", "text": "look"}] + [{"type": "image_url", "image_url": {"url": url}}] * count
    response = _chat(serve_url, content)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["param"] == ("messages[0].content[17]" if name == "too_many" else "messages[0].content[1].image_url.url")
    assert str(tmp_path) not in error["message"] and "127.0.0.2" not in error["message"]
    assert httpx.get(f"{serve_url}/health", timeout=30).status_code == 200


def test_a_concat_playlist_as_video_is_refused(serve_url, media_dir):
    """FFmpeg's concat demuxer would read files relative to the replica's working directory."""
    playlist = f"ffconcat version 1.0\nfile {media_dir}/clip.mp4\nfile clip.mp4\n".encode()
    (media_dir / "clip.mp4").write_bytes(make_video(seconds=1.0, fps=4))
    video = {"type": "video_url", "video_url": {"url": data_url(playlist, "video/mp4")}}
    content = [video, {"type": "text", "text": "?"}]
    response = _chat(serve_url, content)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_video", "messages[0].content[0].video_url.url")
    assert str(media_dir) not in error["message"]
    assert httpx.get(f"{serve_url}/health", timeout=30).status_code == 200
