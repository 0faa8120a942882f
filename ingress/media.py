"""Media resolution on the ingress: turn an image reference into RGB pixels.

Runs on the ingress (CPU) replicas so model replicas receive ready pixel arrays. Decoding
happens in a worker thread, concurrently across the parts of a request, so the event loop
keeps serving. This first version accepts base64 `data:` URLs; other schemes are refused
with a 400 that names the content part.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deployments.errors import InvalidRequestError, UnprocessableMediaError


@dataclass(frozen=True)
class MediaLimits:
    """Bounds on what one request may make the ingress decode."""

    max_images: int = 16
    max_data_url_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 64 * 1024 * 1024


def _decode_data_url(url: str, param: str, limits: MediaLimits) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or not header.startswith("data:"):
        raise InvalidRequestError("Malformed data URL: expected data:<mime>;base64,<data>", param)
    if not header.endswith(";base64"):
        raise InvalidRequestError("Only base64 data URLs are supported", param)
    if len(payload) * 3 // 4 > limits.max_data_url_bytes:
        raise InvalidRequestError(
            f"Data URL larger than {limits.max_data_url_bytes} bytes", param, code="media_too_large"
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError("Data URL is not valid base64", param) from None


def decode_image(data: bytes, param: str, limits: MediaLimits) -> np.ndarray:
    """Bytes -> RGB uint8 array, EXIF orientation applied; pixel cap checked before decode."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > limits.max_pixels:
                raise InvalidRequestError(
                    f"Image of {width}x{height} pixels exceeds the limit of {limits.max_pixels}",
                    param,
                    code="media_too_large",
                )
            return np.asarray(_to_rgb(ImageOps.exif_transpose(image)), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError):
        raise UnprocessableMediaError("The image cannot be decoded", param, code="invalid_image") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB as qwen-vl-utils makes it: transparency composited onto white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


async def resolve_image(url: str, param: str, limits: MediaLimits) -> np.ndarray:
    """An `image_url.url` value -> RGB pixels, decoded off the event loop."""
    if not isinstance(url, str) or not url:
        raise InvalidRequestError("image_url.url must be a non-empty string", param)
    if url.startswith("data:"):
        data = _decode_data_url(url, param, limits)
        return await asyncio.to_thread(decode_image, data, param, limits)
    scheme = url.split(":", 1)[0] if ":" in url else "path"
    raise InvalidRequestError(
        f"Image URLs of scheme {scheme!r} are not supported yet; send a base64 data URL",
        param,
        code="unsupported_media_source",
    )
