"""qwen-vl-utils' own `fetch_image` / `fetch_video` as the reference, runnable offline here.

torchvision here has no `io.read_video` and torchcodec's native libraries cannot load, so
qwen-vl-utils' video readers fail; `use_pyav_decord()` installs a minimal `decord` module
backed by PyAV and makes qwen-vl-utils pick it, so its own `_read_video_decord` (frame
range, `smart_nframes`, index rounding) and `fetch_video` resize run unchanged.
Also makes small test videos with PyAV.
"""

from __future__ import annotations

import io
import sys
import types

import numpy as np


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
