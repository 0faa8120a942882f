"""qwen-vl-utils' own `fetch_image` / `fetch_video` as the reference, runnable offline here.

torchvision here has no `io.read_video` and torchcodec's native libraries cannot load, so
qwen-vl-utils' video readers fail; `use_pyav_decord()` installs a minimal `decord` module
backed by PyAV and makes qwen-vl-utils pick it, so its own `_read_video_decord` (frame
range, `smart_nframes`, index rounding) and `fetch_video` resize run unchanged.
Also makes small test videos with PyAV, and `assert_close`: our resize is torch's uint8
bicubic kernel, so outputs match qwen-vl-utils' in size exactly and in value within a level
or two (see docs/benchmarks.md).
"""

from __future__ import annotations

import io
import sys
import types

import numpy as np


IMAGE_MAX_DIFF, IMAGE_MAX_MEAN = 2, 0.05  # vs PIL's bicubic: 16- vs 22-bit fixed-point weights
# vs torchvision's float bicubic: uint8 between the passes clips overshoot at hard edges.
VIDEO_MAX_DIFF, VIDEO_MAX_MEAN = 32, 0.5


def assert_close(got: np.ndarray, expected: np.ndarray, max_diff: int, max_mean: float) -> None:
    """Same shape and dtype; values within `max_diff` levels, and `max_mean` on average."""
    assert got.dtype == np.uint8 and got.shape == expected.shape, (got.dtype, got.shape, expected.shape)
    diff = np.abs(got.astype(np.int16) - expected.astype(np.int16))
    assert diff.max(initial=0) <= max_diff and diff.mean() <= max_mean, (int(diff.max()), float(diff.mean()))


class _Batch:
    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def asnumpy(self) -> np.ndarray:
        return self._array


class _PyAVVideoReader:
    """The part of `decord.VideoReader` qwen-vl-utils uses: len, get_avg_fps, get_batch."""

    def __init__(self, path: str) -> None:
        import av

        path = path[7:] if path.startswith("file://") else path
        with av.open(path) as container:
            stream = container.streams.video[0]
            self._fps = float(stream.average_rate)
            self._frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]

    def __len__(self) -> int:
        return len(self._frames)

    def get_avg_fps(self) -> float:
        return self._fps

    def get_batch(self, indices: list[int]) -> _Batch:
        return _Batch(np.stack([self._frames[i] for i in indices]))


def use_pyav_decord() -> None:
    """Make qwen-vl-utils read videos through its decord reader, backed by PyAV."""
    from qwen_vl_utils import vision_process

    module = types.ModuleType("decord")
    module.VideoReader = _PyAVVideoReader
    sys.modules["decord"] = module
    vision_process.get_video_reader_backend = lambda: "decord"


def make_video(seconds: float = 3.0, fps: int = 10, width: int = 96, height: int = 64,
               codec: str = "mpeg4", fmt: str = "mp4") -> bytes:
    """A small video whose frames differ (a moving gradient), encoded with PyAV."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        ys, xs = np.mgrid[0:height, 0:width]
        for i in range(int(seconds * fps)):
            frame = np.stack([(xs * 2 + i * 9) % 256, (ys * 3 + i * 5) % 256, (xs + ys + i * 17) % 256], -1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.astype(np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()
