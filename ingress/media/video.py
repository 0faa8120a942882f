"""Video decoding (PyAV), frame sampling exactly as qwen-vl-utils' `fetch_video`, and its resize.

Sampling follows qwen-vl-utils' decord/torchcodec readers: `calculate_video_frame_range`
(`video_start`/`video_end`), `smart_nframes` (`fps` or `nframes`, `min_frames`,
`max_frames`), indices `linspace(start, end, n).round()`; resizing follows its per-frame
pixel budget (`min_pixels`, `max_pixels`, `total_pixels`, `resized_height/width`) with an
antialiased bicubic resize. Only the frames sampled are converted to RGB. Frames come back
as uint8 (T, H, W, 3) with the metadata vLLM's Qwen processors take.

qwen-vl-utils resizes with torchvision on float32 frames; we run the same filter with
torch's uint8 kernel, 20x faster. It rounds to uint8 between its two passes, so values
differ slightly (about 0.1 level on average; up to ~15-20 levels at hard edges, where
float overshoot survives the first pass but uint8 clips it). Sizes and indices are exact.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from deployments.config import MediaConfig
from deployments.errors import MediaRefusedError, UnprocessableMediaError
from ingress.media.image import FACTOR, ImageSizing, interpolate_bicubic, open_image, resize_image
from qwen_vl_utils.vision_process import (
    FPS_MAX_FRAMES,
    FRAME_FACTOR,
    MODEL_SEQ_LEN,
    VIDEO_MAX_TOKEN_NUM,
    VIDEO_MIN_TOKEN_NUM,
    calculate_video_frame_range,
    ceil_by_factor,
    smart_nframes,
    smart_resize,
)

VIDEO_FRAME_MIN_PIXELS = VIDEO_MIN_TOKEN_NUM * FACTOR * FACTOR
VIDEO_FRAME_MAX_PIXELS = VIDEO_MAX_TOKEN_NUM * FACTOR * FACTOR
DEFAULT_TOTAL_PIXELS = MODEL_SEQ_LEN * FACTOR * FACTOR * 0.9
VideoItem = tuple[np.ndarray, dict[str, Any]]


def _sampling_ele(options: dict[str, Any], config: MediaConfig) -> dict[str, Any]:
    """The qwen-vl-utils `ele` for sampling, with the server's frame cap as max_frames."""
    ele = {k: options[k] for k in ("fps", "nframes", "min_frames", "max_frames", "video_start", "video_end")
           if k in options}
    if "nframes" in ele and ele["nframes"] > config.max_video_frames:
        raise MediaRefusedError(
            f"nframes exceeds this server's limit of {config.max_video_frames}", None, code="too_many_frames"
        )
    return ele


def sample_indices(ele: dict[str, Any], total_frames: int, video_fps: float, cap: int) -> tuple[list[int], int]:
    """Frame indices qwen-vl-utils samples, and the frame count it reports as total."""
    import torch

    start, end, count = calculate_video_frame_range(ele, total_frames, video_fps)
    if "nframes" not in ele:
        ele = {**ele, "max_frames": min(ele.get("max_frames", min(FPS_MAX_FRAMES, count)), cap)}
    nframes = smart_nframes(ele, total_frames=count, video_fps=video_fps)
    return torch.linspace(start, end, nframes).round().long().tolist(), count


def frame_size(nframes: int, height: int, width: int, options: dict[str, Any], param: str = "") -> tuple[int, int]:
    """qwen-vl-utils' video frame size: a per-frame budget from total_pixels, then smart_resize."""
    min_pixels = options.get("min_pixels", VIDEO_FRAME_MIN_PIXELS)
    total_pixels = options.get("total_pixels", DEFAULT_TOTAL_PIXELS)
    max_pixels = max(min(VIDEO_FRAME_MAX_PIXELS, total_pixels / nframes * FRAME_FACTOR), int(min_pixels * 1.05))
    max_pixels = min(options.get("max_pixels", max_pixels), max_pixels)
    try:
        if "resized_height" in options and "resized_width" in options:
            return smart_resize(options["resized_height"], options["resized_width"], factor=FACTOR)
        return smart_resize(height, width, factor=FACTOR, min_pixels=min_pixels, max_pixels=max_pixels)
    except AssertionError:  # max_pixels below the (default) min_pixels
        raise MediaRefusedError(
            f"max_pixels must be at least min_pixels ({int(min_pixels)} for video frames by default)",
            param, code="invalid_video_options",
        ) from None
    except ValueError:  # aspect ratio beyond 200:1
        raise UnprocessableMediaError("The video's frame size cannot be resized", param, code="invalid_video") from None


def resize_frames(frames: np.ndarray, options: dict[str, Any], param: str) -> np.ndarray:
    """qwen-vl-utils' video resize: per-frame budget from total_pixels, bicubic antialias (uint8)."""
    nframes, height, width, _ = frames.shape
    target = frame_size(nframes, height, width, options, param)
    if target == (height, width):
        return np.ascontiguousarray(frames)
    return interpolate_bicubic(np.ascontiguousarray(frames), *target)


def _checked_probe(data: bytes, param: str, config: MediaConfig) -> tuple[int, float, int, int]:
    """(frames, fps, width, height) from the container, refused beyond the server's limits."""
    import av

    try:
        total, fps, width, height = _probe(data)
    except (av.FFmpegError, IndexError, ValueError, ZeroDivisionError, TypeError, OSError):
        raise UnprocessableMediaError("The video cannot be decoded", param, code="invalid_video") from None
    if width * height > config.max_image_pixels:
        raise MediaRefusedError(
            f"Video frames of {width}x{height} pixels exceed the limit of {config.max_image_pixels}",
            param, code="media_too_large",
        )
    if total > config.max_video_source_frames or total / fps > config.max_video_duration_s:
        raise MediaRefusedError(
            f"The video is longer than this server accepts ({config.max_video_source_frames} frames, "
            f"{config.max_video_duration_s:g} s)", param, code="media_too_large",
        )
    return total, fps, width, height


def _checked_indices(ele: dict[str, Any], total: int, fps: float, config: MediaConfig,
                     param: str) -> tuple[list[int], int]:
    try:
        return sample_indices(ele, total, fps, config.max_video_frames)
    except (ValueError, AssertionError):
        raise MediaRefusedError(
            "The video's sampling options do not fit this video (video_start/video_end, fps or nframes)",
            param, code="invalid_video_options",
        ) from None


def probe_video(data: bytes, options: dict[str, Any], param: str, config: MediaConfig) -> tuple[int, int, int]:
    """(frames sampled, height, width) a video file will give, from its container's header."""
    total, fps, width, height = _checked_probe(data, param, config)
    indices, _ = _checked_indices(_sampling_ele(options, config), total, fps, config, param)
    return len(indices), height, width


def decode_video(data: bytes, options: dict[str, Any], param: str, config: MediaConfig) -> VideoItem:
    """Video bytes -> sampled, resized frames and metadata; runs in a worker thread."""
    import av

    ele = _sampling_ele(options, config)
    total, fps, width, height = _checked_probe(data, param, config)
    for _ in range(2):  # a second pass when the container misreported its frame count
        indices, count = _checked_indices(ele, total, fps, config, param)
        try:
            frames, decoded = _decode_frames(data, indices)
        except (av.FFmpegError, ValueError, OSError):
            raise UnprocessableMediaError("The video cannot be decoded", param, code="invalid_video") from None
        if frames is not None:
            break
        total = decoded
        if total < FRAME_FACTOR:
            break
    if frames is None:
        raise UnprocessableMediaError("The video has too few decodable frames", param, code="invalid_video")
    frames = resize_frames(frames, options, param)
    metadata = {
        "fps": fps,
        "frames_indices": indices,
        "total_num_frames": count,
        "duration": count / fps,
        "video_backend": "pyav",
        "do_sample_frames": False,
    }
    return frames, metadata


def _probe(data: bytes) -> tuple[int, float, int, int]:
    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate)
        if not fps > 0:
            raise ValueError("no frame rate")
        width, height = stream.codec_context.width, stream.codec_context.height
        total = stream.frames
        if total <= 0:  # not in the header: count packets (no decoding)
            total = sum(1 for packet in container.demux(stream) if packet.size)
    return int(total), fps, int(width), int(height)


def _decode_frames(data: bytes, indices: list[int]) -> tuple[np.ndarray | None, int]:
    """RGB frames at `indices` (repeats allowed); (None, frames decoded) if the video ran short."""
    import av

    wanted: dict[int, int] = {}
    for i in indices:
        wanted[i] = wanted.get(i, 0) + 1
    last = max(indices)
    out: list[np.ndarray] = []
    count = 0
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if count in wanted:
                array = frame.to_ndarray(format="rgb24")
                out.extend([array] * wanted[count])
            count += 1
            if count > last:
                return np.stack(out), count
    return None, count


def frames_video(images: list[np.ndarray], options: dict[str, Any], param: str) -> VideoItem:
    """A video given as a list of frame images (from `open_frame`), processed as qwen-vl-utils does.

    qwen-vl-utils 0.0.14 resizes each frame with `fetch_image(..., image_factor)`, i.e. a
    factor of 56, with the part's own min/max_pixels, before the video resize; kept, so the
    sizes match (and the pixels, within the resize's tolerance).
    """
    sizing = _frame_list_sizing(options)
    arrays = [resize_image(image, sizing, param, FRAME_LIST_FACTOR) for image in images]
    if len({a.shape for a in arrays}) != 1:
        raise UnprocessableMediaError("The frames of a video must all have the same size", param,
                                      code="invalid_video")
    nframes = ceil_by_factor(len(arrays), FRAME_FACTOR)
    arrays.extend([arrays[-1]] * (nframes - len(arrays)))
    frames = resize_frames(np.stack(arrays), options, param)
    sample_fps = options.get("sample_fps", 2.0)
    raw_fps = options.get("raw_fps", sample_fps)
    total = nframes / sample_fps * raw_fps
    metadata = {
        "fps": raw_fps,
        "frames_indices": list(range(len(frames))),
        "total_num_frames": int(round(total)),
        "duration": total / raw_fps,
        "video_backend": "pyav",
        "do_sample_frames": False,
    }
    return frames, metadata


FRAME_LIST_FACTOR = FACTOR * 2


def _frame_list_sizing(options: dict[str, Any]) -> ImageSizing:
    from qwen_vl_utils.vision_process import IMAGE_MAX_TOKEN_NUM, IMAGE_MIN_TOKEN_NUM

    return ImageSizing(
        min_pixels=options.get("min_pixels", IMAGE_MIN_TOKEN_NUM * FRAME_LIST_FACTOR**2),
        max_pixels=options.get("max_pixels", IMAGE_MAX_TOKEN_NUM * FRAME_LIST_FACTOR**2),
        resized_height=options.get("resized_height"),
        resized_width=options.get("resized_width"),
    )


def frame_list_size(height: int, width: int, options: dict[str, Any]) -> tuple[int, int]:
    """The size `frames_video` first resizes each frame image to (before the video resize)."""
    return _frame_list_sizing(options).target(height, width, FRAME_LIST_FACTOR)


def open_frame(data: bytes, param: str, max_source_pixels: int) -> np.ndarray:
    """One frame image of a frame-list video, as RGB uint8 (H, W, 3)."""
    return open_image(data, param, max_source_pixels)
