"""Resizing and sampling options of media items: validated once, then merged per item.

Keys are qwen-vl-utils' (`min_pixels`, `max_pixels`, `resized_height`, `resized_width`; for
videos also `fps`, `nframes`, `min_frames`, `max_frames`, `video_start`, `video_end`,
`total_pixels`). ingress/request.py validates them where the client wrote them (the content
part, its `image_url` / `video_url` object, the request's `mm_processor_kwargs`) and merges
them per item; precedence: the part, then `mm_processor_kwargs`, then the model's `media`
config, then qwen-vl-utils' defaults. OpenAI's `image_url.detail` sits between the request's
options and the part's: `low` gives the image the model's `low_detail_max_pixels`.

Client values are capped at the model's limits (`VisionLimits`: per family, from its resize
factor and qwen-vl-utils' token bounds, or the operator's higher configured values), so no
client can make the ingress upscale a small image into a huge array; beyond them is a 400
naming the field. The family table (`VISION`) follows `deployments.config.PATCH_SIZES`, the
one place a new family's patch size goes; the family also adds qwen-vl-utils'
`image_patch_size` to every item's options (`family_options`), which sets the resize factor
and is part of the cache key; clients cannot set it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deployments.config import PATCH_SIZES, MediaConfig, MediaDefaults, ModelConfig
from deployments.errors import InvalidRequestError
from qwen_vl_utils.vision_process import (
    IMAGE_MAX_TOKEN_NUM,
    IMAGE_MIN_TOKEN_NUM,
    MODEL_SEQ_LEN,
    VIDEO_MAX_TOKEN_NUM,
    VIDEO_MIN_TOKEN_NUM,
)

_INT_KEYS = ("min_pixels", "max_pixels", "resized_height", "resized_width")
_VIDEO_INT_KEYS = ("nframes", "min_frames", "max_frames", "total_pixels")
_VIDEO_FLOAT_KEYS = ("fps", "video_start", "video_end", "sample_fps", "raw_fps")
IMAGE_KEYS = frozenset(_INT_KEYS)
VIDEO_KEYS = frozenset(_INT_KEYS + _VIDEO_INT_KEYS + _VIDEO_FLOAT_KEYS)
REQUEST_KEYS = frozenset(_INT_KEYS + _VIDEO_INT_KEYS + ("fps", "sample_fps"))
_EXCLUSIVE = ("fps", "nframes")
DETAILS = ("auto", "low", "high")


@dataclass(frozen=True)
class VisionSpec:
    """How a family's vision tower cuts pixels: its resize factor (patch size x spatial merge)."""

    factor: int

    def pixels(self, tokens: float) -> int:
        """Pixels of `tokens` merged patches."""
        return int(tokens * self.factor**2)


SPATIAL_MERGE = 2  # every Qwen-VL generation merges 2 x 2 patches into one token
# One row per vision family, from its patch size (14: 28-pixel tokens; Qwen3-VL's 16: 32).
VISION: dict[str, VisionSpec] = {family: VisionSpec(factor=patch * SPATIAL_MERGE) for family, patch in PATCH_SIZES.items()}


@dataclass(frozen=True)
class VisionLimits:
    """The most pixels a client may ask of one model: per image, per video frame, per video."""

    spec: VisionSpec
    image_min: int  # the model's default smallest image area (qwen-vl-utils' or configured)
    image_max: int
    frame_min: int
    frame_max: int
    video_total_max: int

    @classmethod
    def of(cls, model: ModelConfig) -> VisionLimits:
        """qwen-vl-utils' bounds for the family, raised (never lowered) by the model's `media` config."""
        spec, media = VISION.get(model.family, VISION["qwen2-vl"]), model.media
        return cls(
            spec=spec,
            image_min=media.min_pixels or spec.pixels(IMAGE_MIN_TOKEN_NUM),
            image_max=max(media.max_pixels or 0, spec.pixels(IMAGE_MAX_TOKEN_NUM)),
            frame_min=media.video_min_pixels or spec.pixels(VIDEO_MIN_TOKEN_NUM),
            frame_max=max(media.video_max_pixels or 0, spec.pixels(VIDEO_MAX_TOKEN_NUM)),
            video_total_max=max(media.video_total_pixels or 0, spec.pixels(MODEL_SEQ_LEN * 0.9)),
        )

    def check(self, options: dict[str, Any], kind: str, params: dict[str, str]) -> None:
        """400 naming the field when a client's pixel option exceeds this model's limit."""
        area_max = self.image_max if kind == "image" else self.frame_max
        caps = {"min_pixels": area_max, "max_pixels": area_max, "total_pixels": self.video_total_max}
        for key, cap in caps.items():
            if options.get(key, 0) > cap:
                raise InvalidRequestError(
                    f"{key} exceeds this model's limit of {cap} pixels", params.get(key), code="invalid_value"
                )
        height, width = options.get("resized_height"), options.get("resized_width")
        if height is not None and width is not None and height * width > area_max:
            raise InvalidRequestError(
                f"resized_height x resized_width exceeds this model's limit of {area_max} pixels",
                params.get("resized_height"), code="invalid_value",
            )

    def detail(self, detail: str | None, defaults: MediaDefaults, min_pixels: int | None) -> dict[str, Any]:
        """The options OpenAI's `detail` stands for: `low` a small fixed budget (never below the
        image's min_pixels); `auto` and `high` none (the model's own limits)."""
        if detail != "low":
            return {}
        return {"max_pixels": max(defaults.low_detail_max_pixels, min_pixels or self.image_min)}


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
    """min_pixels at most max_pixels; resized sizes given as a pair."""
    if options.get("min_pixels", 0) > options.get("max_pixels", float("inf")):
        raise InvalidRequestError("min_pixels must not exceed max_pixels", f"{param}.min_pixels")
    if ("resized_height" in options) != ("resized_width" in options):
        raise InvalidRequestError("Give both resized_height and resized_width", f"{param}.resized_height")


KEYS = {"image": IMAGE_KEYS, "video": VIDEO_KEYS}


def only(options: dict[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    """The entries of `options` named in `keys`."""
    return {k: v for k, v in options.items() if k in keys}
