"""Video decoding (PyAV), frame sampling exactly as qwen-vl-utils' `fetch_video`, and its resize.

Sampling follows qwen-vl-utils' decord/torchcodec readers: `calculate_video_frame_range`
(`video_start`/`video_end`), `smart_nframes` (`fps` or `nframes`, `min_frames`,
`max_frames`), indices `linspace(start, end, n).round()`; resizing follows its per-frame
pixel budget (`min_pixels`, `max_pixels`, `total_pixels`, `resized_height/width`), sizes in
multiples of the model's factor (`image_patch_size` x 2, as `fetch_video` takes it), with an
antialiased bicubic resize. Only the frames sampled are converted to RGB, each resized as
soon as it is decoded. Frames come back as uint8 (T, H, W, 3) with the metadata vLLM's Qwen
processors take.

Hostile files: only real container formats are read (`video_formats`, FFmpeg's
`format_whitelist`); every decoded frame is held to the pixel cap and charged to the
request's budget (budget.py: pixels and deadline); FFmpeg uses `video_codec_threads`.

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
from ingress.media.budget import MediaBudget
from ingress.media.image import ImageSizing, factor_of, interpolate_bicubic, open_image, resize_image
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
    """qwen-vl-utils' video frame size: a per-frame budget from total_pixels over `nframes`, then
    smart_resize (also what fitting.py predicts a video's tokens with)."""
    factor = factor_of(options)
    min_pixels = options.get("min_pixels", VIDEO_MIN_TOKEN_NUM * factor * factor)
    total_pixels = options.get("total_pixels", MODEL_SEQ_LEN * factor * factor * 0.9)
    frame_max_pixels = VIDEO_MAX_TOKEN_NUM * factor * factor
    max_pixels = max(min(frame_max_pixels, total_pixels / nframes * FRAME_FACTOR), int(min_pixels * 1.05))
    max_pixels = min(options.get("max_pixels", max_pixels), max_pixels)
    try:
        if "resized_height" in options and "resized_width" in options:
            return smart_resize(options["resized_height"], options["resized_width"], factor=factor)
        return smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    except AssertionError:  # max_pixels below the (default) min_pixels
        raise MediaRefusedError(
            f"max_pixels must be at least min_pixels ({int(min_pixels)} for video frames by default)",
            param, code="invalid_video_options",
        ) from None
    except ValueError:  # aspect ratio beyond 200:1
        raise UnprocessableMediaError("The video's frame size cannot be resized", param, code="invalid_video") from None


def resize_frames(frames: np.ndarray, options: dict[str, Any], param: str) -> np.ndarray:
    """qwen-vl-utils' video resize of stacked frames (bicubic antialias, uint8)."""
    target = frame_size(*frames.shape[:3], options, param)
    return _resized(frames, target)


def _resized(frames: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    if target == frames.shape[1:3]:
        return np.ascontiguousarray(frames)
    return interpolate_bicubic(np.ascontiguousarray(frames), *target)


def _checked_probe(data: bytes, param: str, config: MediaConfig, budget: MediaBudget) -> tuple[int, float, int, int]:
    """(frames, fps, width, height) from the container, refused beyond the server's limits."""
    import av

    try:
        total, fps, width, height = _probe(data, config, budget, param)
    except (av.FFmpegError, IndexError, ValueError, ZeroDivisionError, TypeError, OSError):
        raise _undecodable(param, config) from None
    _check_frame_size(width, height, config, param)
    if total > config.max_video_source_frames or total / fps > config.max_video_duration_s:
        raise MediaRefusedError(
            f"The video is longer than this server accepts ({config.max_video_source_frames} frames, "
            f"{config.max_video_duration_s:g} s)", param, code="media_too_large",
        )
    return total, fps, width, height


def _undecodable(param: str, config: MediaConfig) -> UnprocessableMediaError:
    return UnprocessableMediaError(
        f"The video cannot be decoded (containers read: {', '.join(config.video_formats)})", param,
        code="invalid_video",
    )


def _checked_indices(ele: dict[str, Any], total: int, fps: float, config: MediaConfig,
                     param: str) -> tuple[list[int], int]:
    try:
        return sample_indices(ele, total, fps, config.max_video_frames)
    except (ValueError, AssertionError):
        raise MediaRefusedError(
            "The video's sampling options do not fit this video (video_start/video_end, fps or nframes)",
            param, code="invalid_video_options",
        ) from None


def probe_video(
    data: bytes, options: dict[str, Any], param: str, config: MediaConfig, budget: MediaBudget
) -> tuple[int, int, int]:
    """(frames sampled, height, width) a video file will give, from its container's header."""
    total, fps, width, height = _checked_probe(data, param, config, budget)
    indices, _ = _checked_indices(_sampling_ele(options, config), total, fps, config, param)
    return len(indices), height, width


def decode_video(
    data: bytes, options: dict[str, Any], param: str, config: MediaConfig, budget: MediaBudget
) -> VideoItem:
    """Video bytes -> sampled, resized frames and metadata; runs in a worker thread."""
    import av

    ele = _sampling_ele(options, config)
    total, fps, width, height = _checked_probe(data, param, config, budget)
    for _ in range(2):  # a second pass when the container misreported its frame count
        indices, count = _checked_indices(ele, total, fps, config, param)
        try:
            frames, decoded = _decode_frames(data, indices, options, param, config, budget)
        except (av.FFmpegError, ValueError, OSError):
            raise _undecodable(param, config) from None
        if frames is not None:
            break
        total = decoded
        if total < FRAME_FACTOR:
            break
    if frames is None:
        raise UnprocessableMediaError("The video has too few decodable frames", param, code="invalid_video")
    metadata = {
        "fps": fps,
        "frames_indices": indices,
        "total_num_frames": count,
        "duration": count / fps,
        "video_backend": "pyav",
        "do_sample_frames": False,
    }
    return frames, metadata


def _check_frame_size(width: int, height: int, config: MediaConfig, param: str) -> None:
    if width * height > config.max_image_pixels:
        raise MediaRefusedError(
            f"Video frames of {width}x{height} pixels exceed the limit of {config.max_image_pixels}",
            param, code="media_too_large",
        )


def _open(data: bytes, config: MediaConfig):  # noqa: ANN202 - av.container.InputContainer
    """The container, read only by an allowed demuxer.

    FFmpeg's `format_whitelist` refuses any other demuxer before it reads a byte past the
    probe: a `concat` playlist would read the replica's files, `sdp` would bind UDP ports,
    `hls` would fetch URLs past the SSRF guard.
    """
    import av

    allowed = ",".join(config.video_formats)
    container = av.open(io.BytesIO(data), mode="r", container_options={"format_whitelist": allowed})
    if not set(container.format.name.split(",")) & set(config.video_formats):  # belt and braces
        container.close()
        raise ValueError("container format not allowed")
    return container


def _probe(data: bytes, config: MediaConfig, budget: MediaBudget, param: str) -> tuple[int, float, int, int]:
    with _open(data, config) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate)
        if not fps > 0:
            raise ValueError("no frame rate")
        width, height = stream.codec_context.width, stream.codec_context.height
        total = stream.frames
        if total <= 0:  # not in the header: count packets (no decoding), up to the cap
            for packet in container.demux(stream):
                total += 1 if packet.size else 0
                if total > config.max_video_source_frames:
                    break
                if total % 256 == 0:
                    budget.charge(0, param)  # the deadline
    return int(total), fps, int(width), int(height)


def _decode_frames(
    data: bytes, indices: list[int], options: dict[str, Any], param: str, config: MediaConfig, budget: MediaBudget
) -> tuple[np.ndarray | None, int]:
    """RGB frames at `indices` (repeats allowed), each resized as soon as it is decoded; (None,
    frames decoded) if the video ran short.

    Every decoded frame is checked against the pixel cap (a stream may grow mid-way) and
    charged to the request's budget (its deadline too); a sampled frame is converted at
    full size and resized at once, so only one full-size frame is held at a time.
    """
    slots: dict[int, list[int]] = {}  # source frame -> its positions in the output
    for position, index in enumerate(indices):
        slots.setdefault(index, []).append(position)
    last = max(indices)
    out: np.ndarray | None = None  # filled in place: no list of frames to stack
    count = 0
    with _open(data, config) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = config.video_codec_threads
        for frame in container.decode(stream):
            _check_frame_size(frame.width, frame.height, config, param)
            budget.charge(frame.width * frame.height, param)
            if count in slots:
                if out is None:
                    target = frame_size(len(indices), frame.height, frame.width, options, param)
                    size = (frame.height, frame.width)
                    out = np.empty((len(indices), *target, 3), np.uint8)
                elif size != (frame.height, frame.width):
                    raise UnprocessableMediaError(
                        "The video's frame size changes between sampled frames", param, code="invalid_video"
                    )
                rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
                out[slots[count]] = _resized(rgb.reshape(1, *rgb.shape), target)[0]
            count += 1
            if count > last:
                return out, count
    return None, count


def _frame_list_sizing(options: dict[str, Any]) -> ImageSizing:
    """qwen-vl-utils 0.0.14 resizes each listed frame with `fetch_image(..., image_factor)`: it
    passes the factor where the patch size goes, so frames are first resized to multiples of
    twice the factor (56; 64 for Qwen3-VL) with the part's own min/max_pixels, before the video
    resize; kept, so the sizes match (and the pixels, within the resize's tolerance)."""
    from qwen_vl_utils.vision_process import IMAGE_MAX_TOKEN_NUM, IMAGE_MIN_TOKEN_NUM

    frame_factor = factor_of(options) * 2
    return ImageSizing(
        min_pixels=options.get("min_pixels", IMAGE_MIN_TOKEN_NUM * frame_factor**2),
        max_pixels=options.get("max_pixels", IMAGE_MAX_TOKEN_NUM * frame_factor**2),
        resized_height=options.get("resized_height"),
        resized_width=options.get("resized_width"),
        factor=frame_factor,
    )


def frame_list_size(height: int, width: int, options: dict[str, Any]) -> tuple[int, int]:
    """The size `list_frame` first resizes each frame image to (before the video resize)."""
    return _frame_list_sizing(options).target(height, width)


def list_frame(
    data: bytes, options: dict[str, Any], param: str, max_source_pixels: int, budget: MediaBudget
) -> np.ndarray:
    """One frame image of a frame-list video, decoded and resized (`_frame_list_sizing`) in a
    worker thread: no full-size frame is kept."""
    return resize_image(open_image(data, param, max_source_pixels, budget), _frame_list_sizing(options), param)


def frames_video(arrays: list[np.ndarray], options: dict[str, Any], param: str) -> VideoItem:
    """A video given as a list of frame images (each from `list_frame`), as qwen-vl-utils makes it."""
    if len({a.shape for a in arrays}) != 1:
        raise UnprocessableMediaError("The frames of a video must all have the same size", param,
                                      code="invalid_video")
    nframes = ceil_by_factor(len(arrays), FRAME_FACTOR)
    arrays = arrays + [arrays[-1]] * (nframes - len(arrays))
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
