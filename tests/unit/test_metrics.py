"""ingress/metrics.py: bounded tag values, the request timer and the media recording of
ingress/media.py, without Ray (metric objects replaced by recorders)."""

from __future__ import annotations

import base64
import http.server
import threading
from collections import defaultdict
from collections.abc import Iterator

import pytest
from fastapi.responses import JSONResponse, StreamingResponse

from deployments.config import AppConfig, MediaConfig
from deployments.errors import InvalidRequestError, UnprocessableMediaError
from ingress import metrics
from ingress.media.resolve import MediaResolver
from tests.helpers import image_data_url
from tests.media_reference import make_video


def _config() -> AppConfig:
    return AppConfig.model_validate(
        {"models": [{"name": "a", "family": "qwen2-vl", "source": "tiny://qwen2-vl"},
                    {"name": "b", "family": "qwen2", "source": "tiny://qwen2"}], "default_model": "b"}
    )


def test_tags_stay_bounded():
    assert metrics.status_class(404) == "4xx"
    assert metrics.model_tag("a", {"a", "b"}, "b") == "a"
    assert metrics.model_tag(None, {"a", "b"}, "b") == "b"
    assert metrics.model_tag("anything-a-client-sends", {"a", "b"}, "b") == "other"
    assert metrics.model_tag(["not", "a", "str"], {"a"}, "a") == "other"


def test_media_parts_are_counted_per_kind():
    messages = [
        {"role": "user", "content": [{"type": "image_url"}, {"type": "text"}, {"type": "image_url"}]},
        {"role": "user", "content": [{"type": "video_url"}]},
        {"role": "assistant", "content": "plain"},
        "garbage",
    ]
    assert metrics.count_media_parts(messages) == (2, 1)
    assert metrics.count_media_parts(None) == (0, 0)


def test_timer_records_answers_and_refusals_without_raising():
    timer = metrics.RequestTimer.start(_config())
    timer.read({"model": "a", "stream": False, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]})
    assert (timer.model, timer.stream, timer.media) == ("a", False, (1, 0))
    body = {"usage": {"prompt_tokens": 5, "completion_tokens": 0}}
    assert timer.answered(JSONResponse(body)).status_code == 200
    refused = metrics.RequestTimer.start(_config())
    refused.read({"stream": True})
    assert refused.model == "b" and refused.stream
    refused.failed(InvalidRequestError("bad image", "messages[0].content[0]", code="invalid_image"))


async def test_stream_timer_passes_events_through():
    async def events():
        yield "data: {}\n\n"
        yield 'data: {"error":{"code":"overloaded"}}\n\n'
        yield "data: [DONE]\n\n"

    timer = metrics.RequestTimer.start(_config())
    response = timer.answered(StreamingResponse(events()))
    assert [e async for e in response.body_iterator] == [
        "data: {}\n\n", 'data: {"error":{"code":"overloaded"}}\n\n', "data: [DONE]\n\n"
    ]


# -- media: ingress/media.py records each real fetch and decode ------------------------------

class _Recorder:
    """Stands in for one Ray metric: keeps (value, tags) of every observe/inc."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, dict[str, str]]] = []

    def observe(self, value: float, tags: dict[str, str]) -> None:
        self.calls.append((value, tags))

    inc = observe

    def tags(self) -> list[dict[str, str]]:
        return [tags for _, tags in self.calls]


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> defaultdict[str, _Recorder]:
    """Every IngressMetrics attribute as a recorder, by name (e.g. `recorded["media_fetch"]`)."""
    recorders: defaultdict[str, _Recorder] = defaultdict(_Recorder)

    class _Metrics:
        def __getattr__(self, name: str) -> _Recorder:
            return recorders[name]

    monkeypatch.setattr(metrics, "ingress_metrics", _Metrics)
    return recorders


def _png_bytes(url: str) -> bytes:
    return base64.b64decode(url.split(",", 1)[1])


@pytest.fixture
def image_server() -> Iterator[tuple[str, bytes]]:
    """A loopback server answering every GET with one PNG; (base URL, the PNG)."""
    png = _png_bytes(image_data_url(56, 56, seed=11))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("content-length", str(len(png)))
            self.end_headers()
            self.wfile.write(png)

        def log_message(self, *args) -> None:  # noqa: ANN002
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", png
    httpd.shutdown()


async def test_data_and_file_images_record_fetch_bytes_and_one_decode(recorded, tmp_path):
    url = image_data_url(56, 56, seed=12)
    png = _png_bytes(url)
    (tmp_path / "a.png").write_bytes(png)
    resolver = MediaResolver(MediaConfig(allowed_local_dirs=[str(tmp_path)]))
    await resolver.image(url, {}, "p")
    await resolver.image(url, {}, "p")  # base64-decoded again, pixels from the cache
    await resolver.image(str(tmp_path / "a.png"), {}, "p")  # same bytes: pixels from the cache
    data, file = {"kind": "image", "source": "data"}, {"kind": "image", "source": "file"}
    assert recorded["media_fetch"].tags() == [data, data, file]
    assert all(seconds >= 0 for seconds, _ in recorded["media_fetch"].calls)
    assert recorded["media_bytes"].calls == [(len(png), data), (len(png), data), (len(png), file)]
    assert recorded["media_decode"].tags() == [{"kind": "image"}]
    assert recorded["media_decode"].calls[0][0] > 0


async def test_http_image_is_fetched_and_decoded_once(recorded, image_server):
    base, png = image_server
    resolver = MediaResolver(MediaConfig(allow_private_hosts=["127.0.0.1/32"]))
    await resolver.image(f"{base}/b.png", {}, "p")
    await resolver.image(f"{base}/b.png", {}, "p")  # cached by URL: neither fetched nor decoded
    http_image = {"kind": "image", "source": "http"}
    assert recorded["media_fetch"].tags() == [http_image]
    assert recorded["media_bytes"].calls == [(len(png), http_image)]
    assert recorded["media_decode"].tags() == [{"kind": "image"}]


async def test_video_file_records_its_fetch_and_decode(recorded):
    video = make_video(seconds=1.0, fps=4)
    url = "data:video/mp4;base64," + base64.b64encode(video).decode()
    await MediaResolver().video(url, {"nframes": 2}, "p")
    assert recorded["media_bytes"].calls == [(len(video), {"kind": "video", "source": "data"})]
    assert recorded["media_decode"].tags() == [{"kind": "video"}]


async def test_video_frames_record_a_fetch_each_and_one_decode(recorded):
    frames = [image_data_url(56, 56, seed=s) for s in (13, 14)]
    await MediaResolver().video(frames, {}, "p")
    video_data = {"kind": "video", "source": "data"}
    assert recorded["media_fetch"].tags() == [video_data, video_data]
    assert sorted(n for n, _ in recorded["media_bytes"].calls) == sorted(len(_png_bytes(f)) for f in frames)
    assert recorded["media_decode"].tags() == [{"kind": "video"}]


async def test_refused_media_records_no_decode(recorded):
    with pytest.raises(UnprocessableMediaError):
        await MediaResolver().image("data:image/png;base64,AAAA", {}, "p")
    assert recorded["media_bytes"].calls == [(3, {"kind": "image", "source": "data"})]
    assert recorded["media_decode"].calls == []
