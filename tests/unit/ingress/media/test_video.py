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
