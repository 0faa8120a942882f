"""Resizing and sampling options of media items: validated once, then merged per item.

Keys are qwen-vl-utils' (`min_pixels`, `max_pixels`, `resized_height`, `resized_width`; for
videos also `fps`, `nframes`, `min_frames`, `max_frames`, `video_start`, `video_end`,
`total_pixels`). ingress/request.py validates them where the client wrote them (the content
part, its `image_url` / `video_url` object, the request's `mm_processor_kwargs`) and merges
them per item; precedence: the part, then `mm_processor_kwargs`, then the model's `media`
config, then qwen-vl-utils' defaults. The model's family adds qwen-vl-utils'
`image_patch_size` (`family_options`), which sets the resize factor and is part of the cache
key; clients cannot set it.
"""

from __future__ import annotations

from typing import Any

from deployments.config import PATCH_SIZES, MediaConfig, MediaDefaults
from deployments.errors import InvalidRequestError

_INT_KEYS = ("min_pixels", "max_pixels", "resized_height", "resized_width")
_VIDEO_INT_KEYS = ("nframes", "min_frames", "max_frames", "total_pixels")
_VIDEO_FLOAT_KEYS = ("fps", "video_start", "video_end", "sample_fps", "raw_fps")
IMAGE_KEYS = frozenset(_INT_KEYS)
VIDEO_KEYS = frozenset(_INT_KEYS + _VIDEO_INT_KEYS + _VIDEO_FLOAT_KEYS)
REQUEST_KEYS = frozenset(_INT_KEYS + _VIDEO_INT_KEYS + ("fps", "sample_fps"))
_EXCLUSIVE = ("fps", "nframes")


def validate_options(raw: dict[str, Any], keys: frozenset[str], param: str, config: MediaConfig,
                     strict: bool = False) -> dict[str, Any]:
    """The resizing/sampling keys of `raw`, type-checked; `strict` refuses unknown keys."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in keys:
            if strict:
                raise InvalidRequestError(
                    f"Unsupported key {key!r}; supported: {sorted(keys)}", f"{param}.{key}",
                    code="unsupported_parameter",
                )
            continue
        if value is None:
            continue
        if key in _VIDEO_FLOAT_KEYS:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
            ok = ok and (value > 0 or key in ("video_start", "video_end")) and value < 1e7
            if not ok:
                raise InvalidRequestError(f"{key} must be a non-negative number", f"{param}.{key}")
            out[key] = float(value)
        else:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidRequestError(f"{key} must be a positive integer", f"{param}.{key}")
            limit = {"nframes": config.max_video_frames, "min_frames": config.max_video_frames,
                     "max_frames": 1 << 20, "total_pixels": 1 << 40}.get(key, config.max_image_pixels)
            if value > limit:
                raise InvalidRequestError(f"{key} exceeds this server's limit of {limit}", f"{param}.{key}")
            out[key] = value
    if "fps" in out and "nframes" in out:
        raise InvalidRequestError("Give either fps or nframes, not both", f"{param}.nframes")
    return out


def merge_options(*layers: dict[str, Any]) -> dict[str, Any]:
    """Later layers win; a layer naming fps or nframes drops the other from earlier ones."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key in _EXCLUSIVE:
            if key in layer:
                for other in _EXCLUSIVE:
                    if other != key:
                        merged.pop(other, None)
        merged.update(layer)
    return merged


def model_defaults(defaults: MediaDefaults, kind: str) -> dict[str, Any]:
    """A model's `media` config as qwen-vl-utils keys for images or videos."""
    if kind == "image":
        pairs = {"min_pixels": defaults.min_pixels, "max_pixels": defaults.max_pixels}
    else:
        pairs = {
            "min_pixels": defaults.video_min_pixels,
            "max_pixels": defaults.video_max_pixels,
            "total_pixels": defaults.video_total_pixels,
            "fps": defaults.fps,
            "max_frames": defaults.max_frames,
        }
    return {k: v for k, v in pairs.items() if v is not None}


def family_options(family: str) -> dict[str, Any]:
    """The family's vision patch size as qwen-vl-utils' `image_patch_size` (none for text models)."""
    patch = PATCH_SIZES.get(family)
    return {"image_patch_size": patch} if patch is not None else {}


def check_pixel_bounds(options: dict[str, Any], param: str) -> None:
    if options.get("min_pixels", 0) > options.get("max_pixels", float("inf")):
        raise InvalidRequestError("min_pixels must not exceed max_pixels", f"{param}.min_pixels")
    if ("resized_height" in options) != ("resized_width" in options):
        raise InvalidRequestError("Give both resized_height and resized_width", f"{param}.resized_height")


KEYS = {"image": IMAGE_KEYS, "video": VIDEO_KEYS}


def only(options: dict[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    """The entries of `options` named in `keys`."""
    return {k: v for k, v in options.items() if k in keys}
