"""Images (ingress/media/image.py): parity with qwen-vl-utils' fetch_image (sizes exact, values
within a level or two), the resize filter, JPEG decoding, EXIF, and refusals of bad images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from deployments.config import MediaConfig
from deployments.errors import MediaRefusedError, UnprocessableMediaError
from ingress.media import MediaResolver
from tests.helpers import data_url, png_bytes, refused
from tests.media_reference import IMAGE_MAX_DIFF, IMAGE_MAX_MEAN, assert_close


@pytest.mark.parametrize(
    "options",
    [{}, {"max_pixels": 28 * 28 * 4}, {"min_pixels": 28 * 28 * 64}, {"resized_height": 100, "resized_width": 60},
     {"min_pixels": 28 * 28 * 8, "max_pixels": 28 * 28 * 20}],
)
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
async def test_images_match_qwen_vl_utils_fetch_image(options, mode, tmp_path):
    from qwen_vl_utils import fetch_image

    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (70, 130, 4), dtype=np.uint8), "RGBA").convert(mode)
    data = png_bytes(image)
    (tmp_path / "a.png").write_bytes(data)
    resolver = MediaResolver(MediaConfig(allowed_local_dirs=[str(tmp_path)]))
    expected = np.asarray(fetch_image({"image": data_url(data), **options}))
    for ref in (data_url(data), f"file://{tmp_path}/a.png", str(tmp_path / "a.png")):
        got = await resolver.image(ref, options, "p")
        assert_close(got, expected, IMAGE_MAX_DIFF, IMAGE_MAX_MEAN)
        assert got.shape[0] % 28 == 0 and got.shape[1] % 28 == 0


@pytest.mark.parametrize(
    ("source", "target"),
    [((120, 160), (112, 168)),  # height shrinks, width grows: PIL runs the vertical pass first
     ((120, 160), (56, 84)), ((70, 130), (140, 252)), ((90, 40), (84, 56)), ((64, 64), (28, 280)),
     ((33, 300), (28, 28))],
)
def test_bicubic_resize_follows_pil(source, target):
    from ingress.media.image import bicubic_resize

    array = np.random.default_rng(2).integers(0, 256, (*source, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(array).resize(target[::-1], Image.Resampling.BICUBIC))
    got = bicubic_resize(array, *target)
    assert got.flags.c_contiguous
    assert_close(got, expected, IMAGE_MAX_DIFF, IMAGE_MAX_MEAN)
    assert bicubic_resize(array, *source) is array


@pytest.mark.parametrize(
    ("mode", "save", "fast"),
    [("RGB", {"subsampling": 2}, True), ("RGB", {"subsampling": 1}, True), ("RGB", {"subsampling": 0}, True),
     ("RGB", {"progressive": True, "optimize": True}, True), ("L", {}, False), ("CMYK", {}, False),
     ("RGB", {"exif": b"orientation"}, False)],
)
def test_jpeg_decoding_matches_pil(mode, save, fast):
    from PIL import ImageOps

    from ingress.media.image import open_image

    rng = np.random.default_rng(4)
    image = Image.fromarray(rng.integers(0, 256, (77, 101, 3), dtype=np.uint8)).convert(mode)
    if save.get("exif") == b"orientation":
        exif = Image.Exif()
        exif[0x0112] = 8
        save = {"exif": exif}
    data = png_bytes(image, "JPEG", quality=85, **save)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    got = open_image(data, "p", 10**8)
    assert got.dtype == np.uint8 and np.array_equal(got, expected)
    assert got.flags.writeable == fast  # simplejpeg's arrays are writable, Pillow's are not
    with pytest.raises(UnprocessableMediaError):
        open_image(data[: len(data) // 2], "p", 10**8)


async def test_exif_orientation_is_applied():
    image = Image.fromarray(np.zeros((56, 112, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    data = png_bytes(image, "JPEG", exif=exif)
    got = await MediaResolver().image(data_url(data, "image/jpeg"), {}, "p")
    assert got.shape[:2] == (112, 56)


async def test_bombs_and_corrupt_bytes():
    bomb = png_bytes(Image.new("1", (12000, 12000)))  # 144 Mpx in a few kB
    resolver = MediaResolver()
    await refused(resolver.image(data_url(bomb), {}, "p"), 400, "media_too_large")
    await refused(resolver.image(data_url(b"not an image at all"), {}, "p"), 422, "invalid_image")
    truncated = png_bytes(Image.new("RGB", (200, 200), "blue"))[:100]
    await refused(resolver.image(data_url(truncated), {}, "p"), 422, "invalid_image")
    await refused(resolver.video(data_url(b"\x00" * 1000, "video/mp4"), {}, "p"), 422, "invalid_video")
    await refused(resolver.image("data:image/png;base64,@@@", {}, "p"), 400)


@pytest.mark.parametrize("options", [{}, {"max_pixels": 32 * 32 * 4}, {"min_pixels": 32 * 32 * 64},
                                     {"resized_height": 100, "resized_width": 60}])
async def test_qwen3_vl_images_match_fetch_image_with_patch_16(options):
    """Qwen3-VL's factor: qwen-vl-utils' `image_patch_size=16`, i.e. multiples of 32, and its
    default pixel range scales with it (4..16384 tokens of 32x32)."""
    from qwen_vl_utils import fetch_image

    data = png_bytes(Image.fromarray(np.random.default_rng(3).integers(0, 256, (70, 130, 3), dtype=np.uint8)))
    expected = np.asarray(fetch_image({"image": data_url(data), **options}, image_patch_size=16))
    got = await MediaResolver().image(data_url(data), {**options, "image_patch_size": 16}, "p")
    assert got.shape == expected.shape and got.shape[0] % 32 == 0 and got.shape[1] % 32 == 0
    assert_close(got, expected, IMAGE_MAX_DIFF, IMAGE_MAX_MEAN)


@pytest.mark.parametrize("size", [(70, 130), (1000, 30), (4000, 3000), (20, 20), (333, 517)])
@pytest.mark.parametrize("patch", [14, 16])
def test_sizing_targets_equal_smart_resize_with_the_patch_factor(size, patch):
    from qwen_vl_utils.vision_process import IMAGE_MAX_TOKEN_NUM, IMAGE_MIN_TOKEN_NUM, smart_resize

    from ingress.media.image import sizing_from

    factor = patch * 2
    expected = smart_resize(*size, factor=factor, min_pixels=IMAGE_MIN_TOKEN_NUM * factor**2,
                            max_pixels=IMAGE_MAX_TOKEN_NUM * factor**2)
    assert sizing_from({"image_patch_size": patch}).target(*size) == expected
    if patch == 14:  # no patch size named: Qwen2/2.5-VL's
        assert sizing_from({}).target(*size) == expected


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"])
async def test_real_image_formats_are_read(fmt):
    data = png_bytes(Image.new("RGB", (56, 56), "red"), fmt)
    assert (await MediaResolver().image(data_url(data), {}, "p")).shape == (56, 56, 3)


@pytest.mark.parametrize("fmt", ["PPM", "TGA", "PCX", "SGI", "ICO", "IM", "DDS"])
async def test_other_pillow_formats_are_refused(fmt):
    """Pillow opens some 40 formats (EPS through Ghostscript among them); clients get the usual few."""
    data = png_bytes(Image.new("RGB", (56, 56), "red"), fmt)
    Image.open(io.BytesIO(data)).load()  # Pillow itself reads it
    error = await refused(MediaResolver().image(data_url(data), {}, "p"), 422, "invalid_image")
    assert "PNG" in error.message


def test_decoding_does_not_touch_the_warning_filters(monkeypatch):
    """warnings.catch_warnings() swaps process-wide state: not safe in decoding threads. Here
    an image past Pillow's warning threshold but within our own cap decodes without it."""
    import warnings

    from ingress.media.image import open_image

    def forbidden(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("warnings.catch_warnings used while decoding")

    monkeypatch.setattr(warnings, "catch_warnings", forbidden)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 56 * 56 - 1)  # warns, and errors past twice that
    assert open_image(png_bytes(Image.new("RGB", (56, 56))), "p", 10**8).shape == (56, 56, 3)
    with pytest.raises(MediaRefusedError) as caught:
        open_image(png_bytes(Image.new("RGB", (56, 56))), "p", 56 * 56 - 1)
    assert caught.value.code == "media_too_large"
