"""Image decoding and Qwen resizing, as qwen-vl-utils' `fetch_image` does it, but faster.

Bytes -> PIL (real image formats only, `IMAGE_FORMATS`: Pillow can open some 40, EPS via
Ghostscript among them; pixel cap checked from the header, before the pixels are decoded; plain RGB
JPEGs then decoded by simplejpeg: same pixels, sooner) -> EXIF orientation applied
(qwen-vl-utils does not; a photo taken sideways should not reach the model sideways) -> RGB
via qwen-vl-utils' `to_rgb` -> `smart_resize` to multiples of the model's factor (its
`image_patch_size` x 2: 28 for Qwen2/2.5-VL, 32 for Qwen3-VL) within `min_pixels`..`max_pixels`
(or `resized_height`/`resized_width`) -> bicubic resize.

The resize is the same filter as PIL's default (Keys bicubic, a=-0.5, antialiased when
shrinking, uint8 between the two separable passes, in the pass order PIL picks), run by
torch's uint8 kernel, several times faster than PIL's. torch rounds its weights to 16-bit
fixed point where PIL uses 22 bits, so about 0.5% of the values differ from PIL's, by one
level (two where both passes round the same way); sizes are identical (docs/benchmarks.md).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL
from PIL import Image, ImageOps, UnidentifiedImageError

from deployments.errors import MediaRefusedError, UnprocessableMediaError
from ingress.media.budget import MediaBudget
from qwen_vl_utils.vision_process import (
    IMAGE_MAX_TOKEN_NUM,
    IMAGE_MIN_TOKEN_NUM,
    SPATIAL_MERGE_SIZE,
    smart_resize,
    to_rgb,
)

# torch.from_numpy warns (once) on the read-only arrays Pillow hands out; we only read them.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable", module=r"ingress\.media\.image")
# Our own cap (`max_source_pixels`, checked right after the header is read) decides, not
# Pillow's warning; set once here, at import: `warnings.catch_warnings()` is not thread-safe.
# Pillow's DecompressionBombError (twice Image.MAX_IMAGE_PIXELS, 179 Mpx) still refuses.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

# Formats clients may send; Pillow's others (EPS runs Ghostscript, FITS, PSD, ...) are refused.
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF")

PATCH_SIZE = 14  # Qwen2-VL and Qwen2.5-VL, when the options name no `image_patch_size`
FACTOR = PATCH_SIZE * SPATIAL_MERGE_SIZE  # 28
DEFAULT_MIN_PIXELS = IMAGE_MIN_TOKEN_NUM * FACTOR**2
DEFAULT_MAX_PIXELS = IMAGE_MAX_TOKEN_NUM * FACTOR**2
# Pillow 13 (python-pillow/Pillow#9549) resizes vertically first when the height shrinks much more.
_PIL_VERTICAL_FIRST = int(PIL.__version__.split(".")[0]) >= 13
_ORIENTATION = 0x0112  # EXIF tag


@dataclass(frozen=True)
class ImageSizing:
    """Resolved resizing options of one image (qwen-vl-utils' `ele` keys)."""

    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    resized_height: int | None = None
    resized_width: int | None = None
    factor: int = FACTOR  # sizes are multiples of it: image_patch_size x the merge size

    def target(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) after resizing, as qwen-vl-utils computes it."""
        if self.resized_height is not None and self.resized_width is not None:
            return smart_resize(self.resized_height, self.resized_width, factor=self.factor)
        return smart_resize(height, width, factor=self.factor, min_pixels=self.min_pixels, max_pixels=self.max_pixels)


def _formats() -> tuple[str, ...]:
    """IMAGE_FORMATS this Pillow has (Image.open fails on a format it does not know)."""
    Image.init()
    return tuple(f for f in IMAGE_FORMATS if f in Image.OPEN)


def open_image(data: bytes, param: str, max_source_pixels: int, budget: MediaBudget | None = None) -> np.ndarray:
    """Decode bytes into RGB uint8 (H, W, 3), refusing bombs before decoding pixels."""
    try:
        image = Image.open(io.BytesIO(data), formats=_formats())
        width, height = image.size
        if width * height > max_source_pixels:
            raise MediaRefusedError(
                f"Image of {width}x{height} pixels exceeds the limit of {max_source_pixels}",
                param, code="media_too_large",
            )
        if budget is not None:
            budget.charge(width * height, param)
        array = _decode_plain_jpeg(image, data)
        if array is not None:
            return array
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy when upright
        return np.asarray(image if image.mode == "RGB" else to_rgb(image))  # convert("RGB") would copy
    except MediaRefusedError:
        raise
    except Image.DecompressionBombError:
        raise MediaRefusedError("The image is too large to decode", param, code="media_too_large") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, Image.UnidentifiedImageError):
        raise UnprocessableMediaError(
            f"The image cannot be decoded (formats read: {', '.join(_formats())})", param, code="invalid_image"
        ) from None


def probe_image(data: bytes, param: str, max_source_pixels: int) -> tuple[int, int]:
    """(height, width) from the image's header, without decoding its pixels; the same refusals
    as `open_image`. The EXIF orientation is left alone: it swaps the sides, not the tokens."""
    try:
        with Image.open(io.BytesIO(data), formats=_formats()) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        raise MediaRefusedError("The image is too large to decode", param, code="media_too_large") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise UnprocessableMediaError(
            f"The image cannot be decoded (formats read: {', '.join(_formats())})", param, code="invalid_image"
        ) from None
    if width * height > max_source_pixels:
        raise MediaRefusedError(
            f"Image of {width}x{height} pixels exceeds the limit of {max_source_pixels}", param, code="media_too_large"
        )
    if width < 1 or height < 1:
        raise UnprocessableMediaError("The image cannot be decoded", param, code="invalid_image")
    return height, width


def _decode_plain_jpeg(image: Image.Image, data: bytes) -> np.ndarray | None:
    """An upright RGB JPEG decoded by simplejpeg, else None (PIL decodes it).

    Same libjpeg-turbo, same default (accurate) DCT and fancy upsampling as PIL, so the same
    pixels, 30% sooner: no PIL image to copy out of. Anything unusual (CMYK, grey, EXIF
    rotation, MPO, a decoding error: strict mode refuses what libjpeg only warns about) is
    left to PIL, whose errors and refusals stay the rule.
    """
    if image.format != "JPEG" or image.mode != "RGB" or image.getexif().get(_ORIENTATION, 1) != 1:
        return None
    try:
        import simplejpeg
    except ImportError:  # optional speed-up
        return None
    try:
        array = simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
    except ValueError:
        return None
    return array if array.shape == (image.height, image.width, 3) else None


def _target(array: np.ndarray, sizing: ImageSizing, param: str) -> tuple[int, int]:
    height, width = array.shape[:2]
    try:
        return sizing.target(height, width)
    except ValueError:  # aspect ratio beyond qwen-vl-utils' MAX_RATIO
        raise UnprocessableMediaError(
            "The image's aspect ratio is too extreme (more than 200:1)", param, code="invalid_image"
        ) from None


def resize_image(array: np.ndarray, sizing: ImageSizing, param: str) -> np.ndarray:
    """qwen-vl-utils' resize (smart_resize target, PIL's bicubic) of an RGB uint8 (H, W, 3) array."""
    height, width = _target(array, sizing, param)
    return bicubic_resize(array, height, width)


def bicubic_resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """PIL's `resize(BICUBIC)` of a uint8 (H, W, C) array, via torch's uint8 antialiased kernel.

    Both are separable, with uint8 in between, so the pass order matters: Pillow 13+ runs
    the vertical pass first when the height shrinks by more than twice as many pixels as
    the width does, and so do we; older Pillow, and a single torch call, go horizontal first.
    """
    in_height, in_width = array.shape[:2]
    if (in_height, in_width) == (height, width):
        return array
    frames = np.ascontiguousarray(array).reshape(1, in_height, in_width, -1)  # not [None]: see below
    shrink = in_height - height
    if _PIL_VERTICAL_FIRST and shrink > 0 and shrink > (in_width - width) * 2 and width != in_width:
        frames = interpolate_bicubic(frames, height, in_width)
    return interpolate_bicubic(frames, height, width)[0]


def interpolate_bicubic(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Antialiased bicubic resize of uint8 (N, H, W, C) frames with torch's uint8 kernel.

    Fed a channels-last view of the HWC frames (its fast path). It returns channels-last
    memory for a horizontal-only resize, otherwise planar (NCHW) memory, which cv2.merge
    interleaves back 20x faster than torch's or numpy's copies do.
    """
    import cv2
    import torch
    import torch.nn.functional as F

    # A size-1 axis must carry its full stride (np.ascontiguousarray/reshape, not `x[None]`,
    # which gives it stride 0): torch's kernel falls back to a path 2x slower otherwise.
    video = torch.from_numpy(frames).permute(0, 3, 1, 2)
    resized = F.interpolate(video, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    if resized.is_contiguous(memory_format=torch.channels_last):
        return resized.permute(0, 2, 3, 1).numpy()
    planar = resized.contiguous().numpy()
    out = np.empty((planar.shape[0], height, width, planar.shape[1]), dtype=np.uint8)
    for i, planes in enumerate(planar):
        out[i] = cv2.merge(list(planes))
    return out


def prepare_image(
    data: bytes, sizing: ImageSizing, param: str, max_source_pixels: int, budget: MediaBudget | None = None
) -> np.ndarray:
    """Bytes -> resized RGB uint8 array (H, W, 3); runs in a worker thread."""
    return resize_image(open_image(data, param, max_source_pixels, budget), sizing, param)


def factor_of(options: dict[str, Any]) -> int:
    """The resize factor of merged options: qwen-vl-utils' `image_patch_size` x the merge size."""
    return int(options.get("image_patch_size", PATCH_SIZE)) * SPATIAL_MERGE_SIZE


def sizing_from(options: dict[str, Any]) -> ImageSizing:
    """ImageSizing from merged options (already validated), defaults as `fetch_image`'s."""
    factor = factor_of(options)
    return ImageSizing(
        min_pixels=int(options.get("min_pixels", IMAGE_MIN_TOKEN_NUM * factor**2)),
        max_pixels=int(options.get("max_pixels", IMAGE_MAX_TOKEN_NUM * factor**2)),
        resized_height=options.get("resized_height"),
        resized_width=options.get("resized_width"),
        factor=factor,
    )
