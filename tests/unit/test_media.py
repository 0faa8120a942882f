"""Media on the ingress: parity with qwen-vl-utils (sizes exact, values within a level or two),
safety refusals, options, cache (no Ray)."""

from __future__ import annotations

import base64
import http.server
import io
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from deployments.config import MediaConfig
from deployments.errors import InvalidRequestError, UnprocessableMediaError
from ingress.media.resolve import MediaResolver
from tests.helpers import image_data_url, image_part
from tests.media_reference import (
    IMAGE_MAX_DIFF,
    IMAGE_MAX_MEAN,
    VIDEO_MAX_DIFF,
    VIDEO_MAX_MEAN,
    assert_close,
    make_video,
    use_pyav_decord,
)


def _png(image: Image.Image, fmt: str = "PNG", **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def _data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def video_bytes() -> bytes:
    return make_video(seconds=3.0, fps=10)


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict, bytes]] = {}

    def do_GET(self) -> None:  # noqa: N802
        status, headers, body = self.routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, dict]]:
    routes: dict[str, tuple[int, dict, bytes]] = {}
    handler = type("H", (_Handler,), {"routes": routes})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    httpd.shutdown()


def _local(**kwargs) -> MediaResolver:
    return MediaResolver(MediaConfig(allow_private_hosts=["127.0.0.1/32"], **kwargs))


# -- parity with qwen-vl-utils --------------------------------------------------------------

@pytest.mark.parametrize(
    "options",
    [{}, {"max_pixels": 28 * 28 * 4}, {"min_pixels": 28 * 28 * 64}, {"resized_height": 100, "resized_width": 60},
     {"min_pixels": 28 * 28 * 8, "max_pixels": 28 * 28 * 20}],
)
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
async def test_images_match_qwen_vl_utils_fetch_image(options, mode, tmp_path):
    from qwen_vl_utils import fetch_image

    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (70, 130, 4), dtype=np.uint8), "RGBA").convert(mode)
    data = _png(image)
    (tmp_path / "a.png").write_bytes(data)
    resolver = MediaResolver(MediaConfig(allowed_local_dirs=[str(tmp_path)]))
    expected = np.asarray(fetch_image({"image": _data_url(data), **options}))
    for ref in (_data_url(data), f"file://{tmp_path}/a.png", str(tmp_path / "a.png")):
        got = await resolver.image(ref, options, "p")
        assert_close(got, expected, IMAGE_MAX_DIFF, IMAGE_MAX_MEAN)
        assert got.shape[0] % 28 == 0 and got.shape[1] % 28 == 0


@pytest.mark.parametrize(
    ("source", "target"),
    [((120, 160), (112, 168)),  # height shrinks, width grows: PIL runs the vertical pass first
     ((120, 160), (56, 84)), ((70, 130), (140, 252)), ((90, 40), (84, 56)), ((64, 64), (28, 280)),
     ((33, 300), (28, 28))],
)
def test_bicubic_resize_follows_pil(source, target):
    from ingress.media.image import bicubic_resize

    array = np.random.default_rng(2).integers(0, 256, (*source, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(array).resize(target[::-1], Image.Resampling.BICUBIC))
    got = bicubic_resize(array, *target)
    assert got.flags.c_contiguous
    assert_close(got, expected, IMAGE_MAX_DIFF, IMAGE_MAX_MEAN)
    assert bicubic_resize(array, *source) is array


@pytest.mark.parametrize(
    "options",
    [{"fps": 2.0}, {"nframes": 4}, {"fps": 2.0, "video_start": 0.5, "video_end": 2.5},
     {"fps": 2.0, "min_pixels": 28 * 28 * 2, "max_pixels": 28 * 28 * 4}, {"fps": 4.0, "total_pixels": 28 * 28 * 40},
     {"nframes": 6, "resized_height": 56, "resized_width": 112}, {"fps": 1.0, "min_frames": 8}],
)
async def test_videos_match_qwen_vl_utils_fetch_video(options, video_bytes, tmp_path):
    from qwen_vl_utils import fetch_video

    use_pyav_decord()
    path = tmp_path / "v.mp4"
    path.write_bytes(video_bytes)
    expected, meta = fetch_video({"video": f"file://{path}", **options}, return_video_metadata=True)
    resolver = MediaResolver(MediaConfig(allowed_local_dirs=[str(tmp_path)]))
    for ref in (_data_url(video_bytes, "video/mp4"), str(path)):
        frames, metadata = await resolver.video(ref, options, "p")
        assert frames.flags.c_contiguous
        assert_close(frames, expected.permute(0, 2, 3, 1).numpy(), VIDEO_MAX_DIFF, VIDEO_MAX_MEAN)
        assert metadata["frames_indices"] == list(meta["frames_indices"])
        assert metadata["total_num_frames"] == meta["total_num_frames"] and metadata["fps"] == meta["fps"]
        assert metadata["do_sample_frames"] is False


async def test_frame_list_video_matches_qwen_vl_utils():
    from qwen_vl_utils import fetch_video

    urls = [image_data_url(100, 70, seed=i) for i in range(3)]
    options = {"min_pixels": 28 * 28 * 4, "max_pixels": 28 * 28 * 16}
    expected = fetch_video({"video": urls, **options})
    frames, metadata = await MediaResolver().video(urls, options, "p")
    assert frames.shape[0] == 4  # padded to an even count, as qwen-vl-utils does
    assert_close(frames, expected.permute(0, 2, 3, 1).numpy(), VIDEO_MAX_DIFF, VIDEO_MAX_MEAN)
    assert metadata["frames_indices"] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("mode", "save", "fast"),
    [("RGB", {"subsampling": 2}, True), ("RGB", {"subsampling": 1}, True), ("RGB", {"subsampling": 0}, True),
     ("RGB", {"progressive": True, "optimize": True}, True), ("L", {}, False), ("CMYK", {}, False),
     ("RGB", {"exif": b"orientation"}, False)],
)
def test_jpeg_decoding_matches_pil(mode, save, fast):
    from PIL import ImageOps

    from ingress.media.image import open_image

    rng = np.random.default_rng(4)
    image = Image.fromarray(rng.integers(0, 256, (77, 101, 3), dtype=np.uint8)).convert(mode)
    if save.get("exif") == b"orientation":
        exif = Image.Exif()
        exif[0x0112] = 8
        save = {"exif": exif}
    data = _png(image, "JPEG", quality=85, **save)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    got = open_image(data, "p", 10**8)
    assert got.dtype == np.uint8 and np.array_equal(got, expected)
    assert got.flags.writeable == fast  # simplejpeg's arrays are writable, Pillow's are not
    with pytest.raises(UnprocessableMediaError):
        open_image(data[: len(data) // 2], "p", 10**8)


async def test_exif_orientation_is_applied():
    image = Image.fromarray(np.zeros((56, 112, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    data = _png(image, "JPEG", exif=exif)
    got = await MediaResolver().image(_data_url(data, "image/jpeg"), {}, "p")
    assert got.shape[:2] == (112, 56)


# -- safety ----------------------------------------------------------------------------------

async def _refused(coro, status: int, code: str | None = None, param: str = "p"):
    with pytest.raises((InvalidRequestError, UnprocessableMediaError)) as caught:
        await coro
    assert caught.value.status_code == status
    assert caught.value.param == param
    if code:
        assert caught.value.code == code
    return caught.value


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/a.png", "http://localhost:9/a.png", "http://[::1]:9/a.png", "http://169.254.169.254/",
     "http://10.1.2.3/a.png", "http://0.0.0.0:9/", "http://[::ffff:127.0.0.1]:9/", "http://metadata.google.internal/"],
)
async def test_private_addresses_are_refused_by_default(url):
    await _refused(MediaResolver().image(url, {}, "p"), 400, "media_url_forbidden")


async def test_other_schemes_and_local_paths_are_refused_by_default(tmp_path):
    (tmp_path / "a.png").write_bytes(_png(Image.new("RGB", (28, 28))))
    resolver = MediaResolver()
    await _refused(resolver.image("ftp://example.com/a.png", {}, "p"), 400, "unsupported_media_source")
    await _refused(resolver.image(str(tmp_path / "a.png"), {}, "p"), 400, "media_path_forbidden")
    await _refused(resolver.image(f"file://{tmp_path}/a.png", {}, "p"), 400, "media_path_forbidden")


async def test_paths_outside_allowed_dirs_are_refused(tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (tmp_path / "secret.png").write_bytes(_png(Image.new("RGB", (28, 28))))
    (allowed / "link.png").symlink_to(tmp_path / "secret.png")
    resolver = MediaResolver(MediaConfig(allowed_local_dirs=[str(allowed)]))
    for ref in (str(tmp_path / "secret.png"), f"{allowed}/../secret.png", str(allowed / "link.png"), "/etc/passwd",
                "relative.png"):
        error = await _refused(resolver.image(ref, {}, "p"), 400, "media_path_forbidden")
        assert str(tmp_path) not in error.message


async def test_local_http_fetch_when_allowed_and_redirect_checks(server):
    base, routes = server
    data = _png(Image.new("RGB", (112, 56), "red"))
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
    await _refused(resolver.image(f"{base}/to-loopback2", {}, "p"), 400, "media_url_forbidden")
    await _refused(resolver.image(f"{base}/to-file", {}, "p"), 400, "unsupported_media_source")
    await _refused(resolver.image(f"{base}/loop0", {}, "p"), 400, "media_too_many_redirects")
    await _refused(resolver.image(f"{base}/missing.png", {}, "p"), 400, "media_fetch_failed")
    await _refused(MediaResolver().image(f"{base}/a.png", {}, "p"), 400, "media_url_forbidden")
    allow = MediaResolver(MediaConfig(allow_private_hosts=True, allowed_domains=["example.com"]))
    await _refused(allow.image(f"{base}/a.png", {}, "p"), 400, "media_url_forbidden")


async def test_byte_caps(server):
    base, routes = server
    big = _png(Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)))
    routes["/big.png"] = (200, {}, big)
    resolver = _local(max_image_bytes=len(big) - 1)
    await _refused(resolver.image(f"{base}/big.png", {}, "p"), 400, "media_too_large")
    await _refused(resolver.image(_data_url(big), {}, "p"), 400, "media_too_large")


async def test_bombs_and_corrupt_bytes():
    bomb = _png(Image.new("1", (12000, 12000)))  # 144 Mpx in a few kB
    resolver = MediaResolver()
    await _refused(resolver.image(_data_url(bomb), {}, "p"), 400, "media_too_large")
    await _refused(resolver.image(_data_url(b"not an image at all"), {}, "p"), 422, "invalid_image")
    truncated = _png(Image.new("RGB", (200, 200), "blue"))[:100]
    await _refused(resolver.image(_data_url(truncated), {}, "p"), 422, "invalid_image")
    await _refused(resolver.video(_data_url(b"\x00" * 1000, "video/mp4"), {}, "p"), 422, "invalid_video")
    await _refused(resolver.image("data:image/png;base64,@@@", {}, "p"), 400)


async def test_video_caps(video_bytes):
    url = _data_url(video_bytes, "video/mp4")
    await _refused(MediaResolver(MediaConfig(max_video_duration_s=1)).video(url, {}, "p"), 400, "media_too_large")
    await _refused(MediaResolver(MediaConfig(max_video_bytes=100)).video(url, {}, "p"), 400, "media_too_large")
    frames, _ = await MediaResolver(MediaConfig(max_video_frames=4)).video(url, {"fps": 10.0}, "p")
    assert frames.shape[0] == 4
    await _refused(MediaResolver().video(url, {"video_start": 2.9, "video_end": 1.0}, "p"), 400)


async def test_cache_reuses_decoded_media(server):
    base, routes = server
    routes["/c.png"] = (200, {}, _png(Image.new("RGB", (56, 56), "green")))
    resolver = _local()
    first = await resolver.image(f"{base}/c.png", {}, "p")
    del routes["/c.png"]
    second = await resolver.image(f"{base}/c.png", {}, "p")
    assert second is first and not first.flags.writeable
    assert resolver.cache.hits == 1 and 0 < resolver.cache.bytes <= resolver.config.cache_max_bytes


# -- through the HTTP API (fake engines) -----------------------------------------------------

def _image_tokens(image) -> int:  # noqa: ANN001 - PIL image given to the engine
    width, height = image.size
    return (width // 28) * (height // 28)


async def test_request_and_part_options_change_the_image_sent(http, servers):
    url = _data_url(_png(Image.new("RGB", (400, 300), "navy")))  # small body, many pixels
    body = {"model": "tiny-qwen2-vl", "max_tokens": 1,
            "messages": [{"role": "user", "content": [image_part(url), {"type": "text", "text": "hi"}]}]}
    sizes = []
    for max_pixels in (28 * 28 * 16, 28 * 28 * 64):
        response = await http.post("/v1/chat/completions", json={**body, "mm_processor_kwargs": {"max_pixels": max_pixels}})
        assert response.status_code == 200, response.text
        prompt = servers["tiny-qwen2-vl"]._engine.prompts[-1]
        (image,) = prompt["multi_modal_data"]["image"]
        assert _image_tokens(image) <= max_pixels // 784
        assert prompt["mm_processor_kwargs"]["min_pixels"] == prompt["mm_processor_kwargs"]["max_pixels"] == image.size[0] * image.size[1]
        sizes.append(image.size)
    assert sizes[0] != sizes[1]
    part = {"type": "image", "image": url, "resized_height": 56, "resized_width": 84}
    response = await http.post("/v1/chat/completions", json={**body, "mm_processor_kwargs": {"max_pixels": 784 * 4},
                                                             "messages": [{"role": "user", "content": [part]}]})
    assert response.status_code == 200, response.text
    assert servers["tiny-qwen2-vl"]._engine.prompts[-1]["multi_modal_data"]["image"][0].size == (84, 56)


async def test_video_parts_reach_the_engine(http, servers, video_bytes):
    url = _data_url(video_bytes, "video/mp4")
    content = [{"type": "video_url", "video_url": {"url": url}, "fps": 2.0}, {"type": "text", "text": "?"}]
    response = await http.post("/v1/chat/completions", json={
        "model": "tiny-qwen2.5-vl", "max_tokens": 1, "messages": [{"role": "user", "content": content}]})
    assert response.status_code == 200, response.text
    prompt = servers["tiny-qwen2.5-vl"]._engine.prompts[-1]
    ((frames, metadata),) = prompt["multi_modal_data"]["video"]
    assert frames.shape[0] == 6 and metadata["do_sample_frames"] is False
    assert "<|video_pad|>" in prompt["prompt"]


@pytest.mark.parametrize(
    ("body_update", "status", "param"),
    [
        ({"mm_processor_kwargs": {"bogus": 1}}, 400, "mm_processor_kwargs.bogus"),
        ({"mm_processor_kwargs": {"max_pixels": -3}}, 400, "mm_processor_kwargs.max_pixels"),
        ({"content": [{"type": "image_url", "image_url": {"url": "http://127.0.0.1/x.png"}}]}, 400,
         "messages[0].content[0].image_url.url"),
        ({"content": [{"type": "text", "text": "a"}, {"type": "image", "image": "data:image/png;base64,AAAA"}]}, 422,
         "messages[0].content[1].image"),
        ({"content": [{"type": "image_url", "image_url": {"url": image_data_url(8, 8)}}] * 17}, 400,
         "messages[0].content[16]"),
        ({"content": [{"type": "video", "video": "http://10.0.0.1/v.mp4", "fps": 1, "nframes": 4}]}, 400,
         "messages[0].content[0].nframes"),
    ],
)
async def test_refusals_name_the_part(http, body_update, status, param):
    body = {"model": "tiny-qwen2-vl", "messages": [{"role": "user", "content": "hi"}]}
    if "content" in body_update:
        body["messages"][0]["content"] = body_update.pop("content")
    body.update(body_update)
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param
    ok = await http.post("/v1/chat/completions", json={"model": "tiny-qwen2-vl", "messages": [{"role": "user", "content": "hi"}]})
    assert ok.status_code == 200  # and the server keeps serving
