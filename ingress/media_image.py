"""Image decoding and Qwen resizing, exactly as qwen-vl-utils' `fetch_image` does it.

Bytes -> PIL (pixel cap checked from the header, before the pixels are decoded) -> EXIF
orientation applied (qwen-vl-utils does not; a photo taken sideways should not reach the
model sideways) -> RGB via qwen-vl-utils' `to_rgb` -> `smart_resize` to multiples of 28
within `min_pixels`..`max_pixels` (or `resized_height`/`resized_width`) -> PIL's
`resize` with its default filter, the same call qwen-vl-utils makes, so the pixels match.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deployments.errors import InvalidRequestError, UnprocessableMediaError
from qwen_vl_utils.vision_process import (
    IMAGE_MAX_TOKEN_NUM,
    IMAGE_MIN_TOKEN_NUM,
    SPATIAL_MERGE_SIZE,
    smart_resize,
    to_rgb,
)

PATCH_SIZE = 14  # both Qwen2-VL and Qwen2.5-VL
FACTOR = PATCH_SIZE * SPATIAL_MERGE_SIZE  # 28
DEFAULT_MIN_PIXELS = IMAGE_MIN_TOKEN_NUM * FACTOR**2
DEFAULT_MAX_PIXELS = IMAGE_MAX_TOKEN_NUM * FACTOR**2


@dataclass(frozen=True)
class ImageSizing:
    """Resolved resizing options of one image (qwen-vl-utils' `ele` keys)."""

    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    resized_height: int | None = None
    resized_width: int | None = None

    def target(self, height: int, width: int, factor: int = FACTOR) -> tuple[int, int]:
        """(height, width) after resizing, as qwen-vl-utils computes it."""
        if self.resized_height is not None and self.resized_width is not None:
            return smart_resize(self.resized_height, self.resized_width, factor=factor)
        return smart_resize(height, width, factor=factor, min_pixels=self.min_pixels, max_pixels=self.max_pixels)


def open_image(data: bytes, param: str, max_source_pixels: int) -> Image.Image:
    """Decode bytes into an RGB PIL image, refusing bombs before decoding pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own cap decides
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_source_pixels:
                raise InvalidRequestError(
                    f"Image of {width}x{height} pixels exceeds the limit of {max_source_pixels}",
                    param, code="media_too_large",
                )
            image.load()
            image = ImageOps.exif_transpose(image)
            return to_rgb(image)
    except InvalidRequestError:
        raise
    except Image.DecompressionBombError:
        raise InvalidRequestError("The image is too large to decode", param, code="media_too_large") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, Image.UnidentifiedImageError):
        raise UnprocessableMediaError("The image cannot be decoded", param, code="invalid_image") from None


def resize_image(image: Image.Image, sizing: ImageSizing, param: str, factor: int = FACTOR) -> Image.Image:
    """qwen-vl-utils' resize: smart_resize target, PIL's default (bicubic) filter."""
    width, height = image.size
    try:
        resized_height, resized_width = sizing.target(height, width, factor)
    except ValueError:  # aspect ratio beyond qwen-vl-utils' MAX_RATIO
        raise UnprocessableMediaError(
            "The image's aspect ratio is too extreme (more than 200:1)", param, code="invalid_image"
        ) from None
    return image.resize((resized_width, resized_height))


def prepare_image(data: bytes, sizing: ImageSizing, param: str, max_source_pixels: int) -> np.ndarray:
    """Bytes -> resized RGB uint8 array (H, W, 3); runs in a worker thread."""
    image = open_image(data, param, max_source_pixels)
    return np.asarray(resize_image(image, sizing, param), dtype=np.uint8)


def sizing_from(options: dict[str, Any]) -> ImageSizing:
    """ImageSizing from merged options (already validated)."""
    return ImageSizing(
        min_pixels=int(options.get("min_pixels", DEFAULT_MIN_PIXELS)),
        max_pixels=int(options.get("max_pixels", DEFAULT_MAX_PIXELS)),
        resized_height=options.get("resized_height"),
        resized_width=options.get("resized_width"),
    )
