"""The resolver (ingress/media/resolve.py): decoded media cached, and its metrics recorded as
things happen: each real fetch and decode, and each refusal by its code."""

from __future__ import annotations

import base64

import pytest
from PIL import Image

from deployments.config import MediaConfig
from deployments.errors import MediaRefusedError, UnprocessableMediaError
from ingress.media import MediaResolver
from tests.helpers import bytes_of, data_url, image_data_url, png_bytes
from tests.media_reference import make_video


async def test_cache_reuses_decoded_media(media_server):
    base, routes = media_server
    routes["/c.png"] = (200, {}, png_bytes(Image.new("RGB", (56, 56), "green")))
    resolver = MediaResolver(MediaConfig(allow_private_hosts=["127.0.0.1/32"]))
    first = await resolver.image(f"{base}/c.png", {}, "p")
    del routes["/c.png"]
    second = await resolver.image(f"{base}/c.png", {}, "p")
    assert second is first and not first.flags.writeable
    assert resolver.cache.hits == 1 and 0 < resolver.cache.bytes <= resolver.config.cache_max_bytes


async def test_data_and_file_images_record_fetch_bytes_and_one_decode(recorded, tmp_path):
    url = image_data_url(56, 56, seed=12)
    png = bytes_of(url)
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


async def test_http_image_is_fetched_and_decoded_once(recorded, media_server):
    base, routes = media_server
    png = bytes_of(image_data_url(56, 56, seed=11))
    routes["/b.png"] = (200, {}, png)
    resolver = MediaResolver(MediaConfig(allow_private_hosts=["127.0.0.1/32"]))
    await resolver.image(f"{base}/b.png", {}, "p")
    await resolver.image(f"{base}/b.png", {}, "p")  # cached by URL: neither fetched nor decoded
    http_image = {"kind": "image", "source": "http"}
    assert recorded["media_fetch"].tags() == [http_image]
    assert recorded["media_bytes"].calls == [(len(png), http_image)]
    assert recorded["media_decode"].tags() == [{"kind": "image"}]


async def test_video_file_records_its_fetch_and_decode(recorded):
    video = make_video(seconds=1.0, fps=4)
    await MediaResolver().video(data_url(video, "video/mp4"), {"nframes": 2}, "p")
    assert recorded["media_bytes"].calls == [(len(video), {"kind": "video", "source": "data"})]
    assert recorded["media_decode"].tags() == [{"kind": "video"}]


async def test_video_frames_record_a_fetch_each_and_one_decode(recorded):
    frames = [image_data_url(56, 56, seed=s) for s in (13, 14)]
    await MediaResolver().video(frames, {}, "p")
    video_data = {"kind": "video", "source": "data"}
    assert recorded["media_fetch"].tags() == [video_data, video_data]
    assert sorted(n for n, _ in recorded["media_bytes"].calls) == sorted(len(bytes_of(f)) for f in frames)
    assert recorded["media_decode"].tags() == [{"kind": "video"}]


async def test_a_refused_image_records_its_fetch_its_refusal_and_no_decode(recorded):
    with pytest.raises(UnprocessableMediaError):
        await MediaResolver().image("data:image/png;base64,AAAA", {}, "p")
    assert recorded["media_bytes"].calls == [(3, {"kind": "image", "source": "data"})]
    assert recorded["media_decode"].calls == []
    assert recorded["media_refusals"].calls == [(1, {"kind": "image", "reason": "invalid_image"})]


@pytest.mark.parametrize("kind", ["image", "video"])
@pytest.mark.parametrize("code", sorted(MediaRefusedError.codes))
async def test_every_refusal_code_is_counted_by_kind(recorded, monkeypatch, kind, code):
    """Whatever step refuses an item (fetch here), the resolver counts it under its code."""

    async def refuse(ref, param, max_bytes):  # noqa: ANN001, ANN202 - MediaFetcher.fetch's signature
        raise MediaRefusedError("refused", param, code=code)

    resolver = MediaResolver()
    monkeypatch.setattr(resolver.fetcher, "fetch", refuse)
    with pytest.raises(MediaRefusedError):
        await getattr(resolver, kind)("data:x;base64,AAAA", {}, "p")
    assert recorded["media_refusals"].calls == [(1, {"kind": kind, "reason": code})]


async def test_resolve_keeps_the_order_and_raises_the_first_refusal(recorded):
    from ingress.media.resolve import MediaItem

    urls = [image_data_url(40 + 28 * i, 40, seed=i) for i in range(3)]
    images, videos = await MediaResolver().resolve([MediaItem(u, {}, f"p{i}") for i, u in enumerate(urls)], [])
    assert [im.shape[1] for im in images] == [56, 84, 112] and videos == []  # in order
    bad = [MediaItem(urls[0], {}, "a"), MediaItem("data:image/png;base64," + base64.b64encode(b"x").decode(), {}, "b")]
    with pytest.raises(UnprocessableMediaError) as caught:
        await MediaResolver().resolve(bad, [])
    assert caught.value.param == "b"


# -- per-request budget and the decode pool (docs/reliability.md, Limits) -------------------------


async def test_a_slow_download_ends_at_the_request_deadline_with_a_504(recording_server, recorded):
    import time

    from tests.helpers import refused
    from tests.unit.ingress.media.conftest import Route

    server = recording_server
    server.routes["/slow.png"] = Route(200, {}, png_bytes(Image.new("RGB", (56, 56))), delay_s=2.0)
    resolver = MediaResolver(MediaConfig(allow_private_hosts=["127.0.0.1/32"], request_deadline_s=0.3))
    started = time.monotonic()
    error = await refused(resolver.image(f"{server.base}/slow.png", {}, "p"), 504, "media_timeout")
    assert time.monotonic() - started < 1.5 and "0.3 s" in error.message
    assert recorded["media_refusals"].calls == [(1, {"kind": "image", "reason": "media_timeout"})]


async def test_decoding_stops_at_the_deadline_and_frees_its_thread():
    """asyncio cannot interrupt a decoding thread: the decoder checks the budget per frame."""
    import time

    from ingress.media.budget import MediaBudget
    from ingress.media.video import decode_video
    from tests.helpers import refused

    config = MediaConfig(request_deadline_s=0.05)
    video = make_video(seconds=2.0, fps=10)
    budget = MediaBudget(config)
    time.sleep(0.06)
    with pytest.raises(MediaRefusedError) as caught:
        decode_video(video, {"nframes": 4}, "p", config, budget)
    assert (caught.value.status_code, caught.value.code) == (504, "media_timeout")
    resolver = MediaResolver(MediaConfig(request_deadline_s=0.001, decode_threads=1))
    await refused(resolver.video(data_url(video, "video/mp4"), {"nframes": 4}, "p"), 504, "media_timeout")
    resolver.config.request_deadline_s = 30.0  # the one decode thread is free again
    frames, _ = await resolver.video(data_url(video, "video/mp4"), {"nframes": 4}, "p")
    assert frames.shape[0] == 4


async def test_a_request_decodes_at_most_its_pixel_budget():
    from ingress.media.resolve import MediaItem
    from tests.helpers import refused

    config = MediaConfig(max_request_decoded_pixels=100 * 100 + 50 * 50)
    items = [MediaItem(image_data_url(100, 100, seed=1), {}, "a"), MediaItem(image_data_url(60, 60, seed=2), {}, "b")]
    await MediaResolver(config).resolve(items[:1], [])  # each alone fits
    await MediaResolver(config).resolve(items[1:], [])
    with pytest.raises(MediaRefusedError) as caught:
        await MediaResolver(config).resolve(items, [])
    assert caught.value.code == "media_too_large" and "decoded pixels" in caught.value.message
    video = data_url(make_video(seconds=2.0, fps=10), "video/mp4")  # 96x64 frames
    small = MediaResolver(MediaConfig(max_request_decoded_pixels=96 * 64 * 10))
    await refused(small.video(video, {"nframes": 2}, "p"), 400, "media_too_large")  # 20 frames decoded


async def test_decodes_run_on_their_own_bounded_pool(monkeypatch):
    import threading
    import time

    from ingress.media import resolve
    from ingress.media.resolve import MediaItem

    running, most, names, real = [0], [0], set(), resolve.prepare_image
    lock = threading.Lock()

    def counting(*args):  # noqa: ANN002, ANN202 - prepare_image's
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            names.add(threading.current_thread().name)
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return real(*args)

    monkeypatch.setattr(resolve, "prepare_image", counting)
    items = [MediaItem(image_data_url(56, 56, seed=s), {}, f"p{s}") for s in range(6)]
    images, _ = await MediaResolver(MediaConfig(decode_threads=2)).resolve(items, [])
    assert len(images) == 6 and most[0] == 2
    assert all(name.startswith("media-decode") for name in names)
