"""Videos (ingress/media/video.py): frame sampling and resizing as qwen-vl-utils' fetch_video,
videos given as frame lists, and the caps on length, bytes and frames."""

from __future__ import annotations

import pytest

from deployments.config import MediaConfig
from ingress.media import MediaResolver
from tests.helpers import data_url, image_data_url, refused
from tests.media_reference import VIDEO_MAX_DIFF, VIDEO_MAX_MEAN, assert_close, make_video, use_pyav_decord


@pytest.fixture(scope="module")
def video_bytes() -> bytes:
    return make_video(seconds=3.0, fps=10)


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
    for ref in (data_url(video_bytes, "video/mp4"), str(path)):
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


async def test_video_caps(video_bytes):
    url = data_url(video_bytes, "video/mp4")
    await refused(MediaResolver(MediaConfig(max_video_duration_s=1)).video(url, {}, "p"), 400, "media_too_large")
    await refused(MediaResolver(MediaConfig(max_video_bytes=100)).video(url, {}, "p"), 400, "media_too_large")
    frames, _ = await MediaResolver(MediaConfig(max_video_frames=4)).video(url, {"fps": 10.0}, "p")
    assert frames.shape[0] == 4
    await refused(MediaResolver().video(url, {"video_start": 2.9, "video_end": 1.0}, "p"), 400)


@pytest.mark.parametrize("options", [{"fps": 2.0}, {"nframes": 4, "min_pixels": 32 * 32 * 2, "max_pixels": 32 * 32 * 4},
                                     {"fps": 4.0, "total_pixels": 32 * 32 * 40}])
async def test_qwen3_vl_videos_match_fetch_video_with_patch_16(options, video_bytes, tmp_path):
    from qwen_vl_utils import fetch_video

    use_pyav_decord()
    path = tmp_path / "v.mp4"
    path.write_bytes(video_bytes)
    expected, meta = fetch_video({"video": f"file://{path}", **options}, image_patch_size=16,
                                 return_video_metadata=True)
    frames, metadata = await MediaResolver().video(data_url(video_bytes, "video/mp4"),
                                                   {**options, "image_patch_size": 16}, "p")
    assert frames.shape[1] % 32 == 0 and frames.shape[2] % 32 == 0
    assert_close(frames, expected.permute(0, 2, 3, 1).numpy(), VIDEO_MAX_DIFF, VIDEO_MAX_MEAN)
    assert metadata["frames_indices"] == list(meta["frames_indices"]) and metadata["fps"] == meta["fps"]


async def test_qwen3_vl_frame_list_video_matches_fetch_video_with_patch_16():
    """qwen-vl-utils resizes listed frames with factor 64 (2 x 32) first, then the video resize."""
    from qwen_vl_utils import fetch_video

    urls = [image_data_url(150, 90, seed=i) for i in range(3)]
    options = {"min_pixels": 32 * 32 * 4, "max_pixels": 32 * 32 * 16}
    expected = fetch_video({"video": urls, **options}, image_patch_size=16)
    frames, _ = await MediaResolver().video(urls, {**options, "image_patch_size": 16}, "p")
    assert frames.shape[0] == 4 and frames.shape[1] % 32 == 0
    assert_close(frames, expected.permute(0, 2, 3, 1).numpy(), VIDEO_MAX_DIFF, VIDEO_MAX_MEAN)


# -- hostile videos (docs/reliability.md, Limits) --------------------------------------------------


def _gif(frames: int = 4) -> bytes:
    import io

    import av
    import numpy as np

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="gif") as container:
        stream = container.add_stream("gif", rate=4)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "rgb8"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((64, 96, 3), i * 40, np.uint8), format="rgb24")
            for packet in stream.encode(frame.reformat(format="rgb8")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "codec"),
    [("mp4", "mpeg4"), ("mov", "mpeg4"), ("matroska", "mpeg4"), ("webm", "libvpx"), ("avi", "mpeg4"),
     ("mpegts", "mpeg2video"), ("mpeg", "mpeg2video"), ("flv", "flv"), ("gif", "gif")],
)
async def test_real_container_formats_are_read(fmt, codec):
    data = _gif() if fmt == "gif" else make_video(seconds=1.0, fps=4, codec=codec, fmt=fmt)
    frames, _ = await MediaResolver().video(data_url(data, "video/mp4"), {"nframes": 2}, "p")
    assert frames.shape[0] == 2


async def test_playlists_and_network_demuxers_are_refused(tmp_path, monkeypatch):
    """FFmpeg's concat demuxer read files relative to the replica's cwd (past
    allowed_local_dirs); sdp binds UDP ports; hls fetches URLs past the SSRF guard."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.mp4").write_bytes(make_video(seconds=1.0, fps=4))
    hostile = {
        "concat": b"ffconcat version 1.0\nfile secret.mp4\n",
        "sdp": b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=video 5004 RTP/AVP 96\n"
               b"a=rtpmap:96 H264/90000\n",
        "hls": b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nsecret.mp4\n#EXT-X-ENDLIST\n",
    }
    for data in hostile.values():
        error = await refused(MediaResolver().video(data_url(data, "video/mp4"), {}, "p"), 422, "invalid_video")
        assert "mp4" in error.message  # names the containers it reads


async def test_every_decoded_frame_is_held_to_the_pixel_cap():
    """The header (and first frame) says 64x48; the stream then switches to 640x480."""
    data = make_video(1.0, 4, width=64, height=48, codec="mpeg2video", fmt="mpegts")
    data += make_video(1.0, 4, width=640, height=480, codec="mpeg2video", fmt="mpegts")
    resolver = MediaResolver(MediaConfig(max_image_pixels=64 * 48 * 4))
    error = await refused(resolver.video(data_url(data, "video/mp4"), {"nframes": 2}, "p"), 400, "media_too_large")
    assert "640x480" in error.message
    await refused(MediaResolver().video(data_url(data, "video/mp4"), {"nframes": 6}, "p"), 422, "invalid_video")


def test_sampled_frames_are_resized_as_they_are_decoded():
    """One full-size frame at a time: the old code converted every sampled frame at full
    size and stacked them before resizing (a 14 kB 200-frame 1080p file took 2.9 GB)."""
    import tracemalloc

    from ingress.media.budget import MediaBudget
    from ingress.media.video import decode_video

    config = MediaConfig()
    data = make_video(seconds=4.0, fps=10, width=640, height=480)
    tracemalloc.start()
    try:
        options = {"nframes": 40, "min_pixels": 28 * 28 * 4, "max_pixels": 28 * 28 * 16}
        frames, metadata = decode_video(data, options, "p", config, MediaBudget(config))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert frames.shape[0] == 40 and frames.shape[1] * frames.shape[2] <= 28 * 28 * 16
    full_frame = 640 * 480 * 3
    assert peak < 8 * full_frame, peak  # 40 full-size frames stacked would be 40 (and 80 with the stack)


async def test_frame_lists_are_bounded_in_length_and_fetched_a_few_at_a_time(monkeypatch):
    import asyncio

    frames = [image_data_url(56, 56, seed=s) for s in range(6)]
    await refused(MediaResolver(MediaConfig(max_video_list_frames=5)).video(frames, {}, "p"), 400, "too_many_frames")
    resolver = MediaResolver(MediaConfig(max_fetches_per_request=2))
    running, most, real = [0], [0], resolver.fetcher.fetch

    async def counting(ref, param, max_bytes):  # noqa: ANN001, ANN202 - MediaFetcher.fetch's signature
        running[0] += 1
        most[0] = max(most[0], running[0])
        await asyncio.sleep(0.01)
        running[0] -= 1
        return await real(ref, param, max_bytes)

    monkeypatch.setattr(resolver.fetcher, "fetch", counting)
    video, _ = await resolver.video(frames, {}, "p")
    assert video.shape[0] == 6 and most[0] == 2


async def test_source_frames_are_counted_only_up_to_the_cap():
    """mpeg-ts has no frame count in its header: packets are counted, up to the cap."""
    data = make_video(seconds=3.0, fps=10, codec="mpeg2video", fmt="mpegts")
    resolver = MediaResolver(MediaConfig(max_video_source_frames=5))
    await refused(resolver.video(data_url(data, "video/mp4"), {}, "p"), 400, "media_too_large")
