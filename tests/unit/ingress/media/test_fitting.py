"""Fitting media to the context (ingress/media/fitting.py): the sizes it asks for are the sizes
qwen-vl-utils' `smart_resize` gives, multiples of the factor, within the budget, never below
min_pixels, larger images staying larger; what it predicts is what the decode then produces."""

from __future__ import annotations

import numpy as np
import pytest
from qwen_vl_utils.vision_process import smart_resize

from deployments.config import MediaConfig
from ingress.media.fitting import ContextTooSmallError, MediaShape, fit_media, resized, text_token_bound, tokens_of
from ingress.media.image import prepare_image
from ingress.media.budget import MediaBudget
from ingress.media.video import decode_video, probe_video
from tests.helpers import png_bytes, random_image
from tests.media_reference import make_video

FACTOR = 28
MIN_PIXELS = 4 * FACTOR * FACTOR
FLOORS = {"image": MIN_PIXELS, "video": 128 * FACTOR * FACTOR}
PHOTO = MediaShape("image", 3024, 4032)


def _qwen_tokens(shape: MediaShape, options: dict) -> tuple[int, int, int]:
    """(height, width, tokens) straight from qwen-vl-utils' smart_resize."""
    height, width = smart_resize(shape.height, shape.width, factor=FACTOR,
                                 min_pixels=options.get("min_pixels", MIN_PIXELS),
                                 max_pixels=options.get("max_pixels", 16384 * FACTOR * FACTOR))
    return height, width, (height // FACTOR) * (width // FACTOR)


SETS = [
    [PHOTO],
    [PHOTO, MediaShape("image", 3024, 4032)],
    [MediaShape("image", 1080, 1920), PHOTO, MediaShape("image", 300, 200), MediaShape("image", 4000, 600)],
    [MediaShape("image", 5000, 40), MediaShape("image", 2048, 2048)],
]


@pytest.mark.parametrize("shapes", SETS)
@pytest.mark.parametrize("budget", [3000, 1200, 300])
def test_fitted_sizes_are_smart_resize_sizes_within_the_budget_in_order(shapes, budget):
    fitted = fit_media(shapes, [{}] * len(shapes), FACTOR, budget, FLOORS)
    assert len(fitted.options) == len(shapes) and fitted.changed and 0 < fitted.scale < 1
    sizes = [_qwen_tokens(s, o) for s, o in zip(shapes, fitted.options)]
    assert sum(tokens for _, _, tokens in sizes) == fitted.tokens <= budget
    assert fitted.tokens > 0.6 * budget  # as large as fits, not merely small
    for shape, options, (height, width, tokens) in zip(shapes, fitted.options, sizes):
        assert height % FACTOR == 0 and width % FACTOR == 0 and height * width >= MIN_PIXELS
        assert resized(shape, options, FACTOR) == (1, height, width)  # our prediction is smart_resize's
        assert tokens == tokens_of(shape, options, FACTOR)
    before = [_qwen_tokens(s, {})[2] for s in shapes]
    plain = [i for i, s in enumerate(shapes) if max(s.height, s.width) < 10 * min(s.height, s.width)]
    for i in plain:  # (a 125:1 strip cannot go below one factor across: held at its own floor)
        for j in plain:
            if before[i] > before[j]:  # one factor for all: a larger image stays at least as large
                assert sizes[i][2] >= sizes[j][2]


def test_media_that_fit_are_left_alone():
    options = [{"max_pixels": 200_000}, {}]
    fitted = fit_media([PHOTO, MediaShape("image", 100, 100)], options, FACTOR, 10_000, FLOORS)
    assert fitted.options == options and fitted.scale == 1 and not fitted.changed


def test_explicit_sizes_and_min_pixels_are_kept():
    shapes = [PHOTO, PHOTO]
    options = [{"resized_height": 280, "resized_width": 280}, {"min_pixels": 784 * 100}]
    fitted = fit_media(shapes, options, FACTOR, 250, FLOORS)
    assert fitted.options[0] == options[0]
    assert _qwen_tokens(shapes[1], fitted.options[1])[2] >= 100
    assert fitted.tokens == 100 + tokens_of(shapes[1], fitted.options[1], FACTOR) <= 250


def test_when_even_the_smallest_sizes_do_not_fit_it_says_how_many_tokens_they_need():
    with pytest.raises(ContextTooSmallError) as error:
        fit_media([PHOTO] * 3, [{}] * 3, FACTOR, 11, FLOORS)
    assert error.value.needed == 12  # three images of 4 tokens (min_pixels)
    assert fit_media([PHOTO] * 3, [{}] * 3, FACTOR, 12, FLOORS).tokens == 12


def test_the_decoded_image_has_the_predicted_size():
    image = png_bytes(random_image(1600, 1200, seed=3))
    shape = MediaShape("image", 1200, 1600)
    fitted = fit_media([shape], [{}], FACTOR, 500, FLOORS)
    from ingress.media.image import sizing_from

    array = prepare_image(image, sizing_from(fitted.options[0]), "p", 1 << 26)
    assert (1, *array.shape[:2]) == resized(shape, fitted.options[0], FACTOR)
    assert array.shape[0] // FACTOR * (array.shape[1] // FACTOR) == fitted.tokens <= 500


def test_videos_get_smaller_frames_then_fewer_and_the_decode_agrees():
    video, config = make_video(seconds=8.0, fps=10, width=640, height=480), MediaConfig()
    options = {"fps": 2.0}
    frames, height, width = probe_video(video, options, "p", config, MediaBudget(config))
    shape = MediaShape("video", height, width, frames, resamplable=True)
    assert frames == 16
    full = tokens_of(shape, options, FACTOR)
    smaller = fit_media([shape], [options], FACTOR, full // 2, FLOORS)  # smaller frames suffice
    fewer = fit_media([shape], [options], FACTOR, 300, FLOORS)  # 16 frames at their smallest are 1024 tokens
    assert smaller.frames_scale == 1 and smaller.tokens <= full // 2
    assert fewer.scale == 0 and fewer.frames_scale < 1 and fewer.tokens <= 300
    for fitted in (smaller, fewer):
        decoded, _ = decode_video(video, fitted.options[0], "p", config, MediaBudget(config))
        count, h, w = decoded.shape[:3]
        assert (count, h, w) == resized(shape, fitted.options[0], FACTOR)
        assert count // 2 * (h // FACTOR) * (w // FACTOR) == fitted.tokens


def test_a_video_with_fixed_frames_that_cannot_fit_is_refused():
    shape = MediaShape("video", 480, 640, 16)  # nframes given: frames cannot go
    with pytest.raises(ContextTooSmallError):
        fit_media([shape], [{"nframes": 16}], FACTOR, 300, FLOORS)


def test_the_text_bound_is_at_least_the_real_token_count(tiny_cache):
    from deployments.chat_template import ChatRenderer
    from deployments.checkpoints.sources import resolve_model_path
    from deployments.config import ModelConfig

    config = ModelConfig(name="m", family="qwen2.5-vl", source="tiny://qwen2.5-vl")
    renderer = ChatRenderer.from_pretrained(resolve_model_path(config), config)
    tools = [{"type": "function", "function": {"name": "look", "description": "Look closer at a region.",
                                               "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}}]
    texts = ["What is in this picture?", "naïve café ☕ 東京タワー " * 40, "a" * 3000, "<|im_start|>" * 20]
    rng = np.random.default_rng(0)
    texts.append("".join(chr(c) for c in rng.integers(32, 0x2FFF, 500)))
    for text in texts:
        for with_tools in (None, tools):
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]},
                        {"role": "assistant", "content": [{"type": "text", "text": text[:50]}]},
                        {"role": "user", "content": [{"type": "text", "text": "and?"}]}]
            prompt = renderer.render(messages, tools=with_tools)
            real = len(renderer.tokenizer(prompt)["input_ids"])
            assert real <= text_token_bound(messages, with_tools), (text[:20], with_tools is None)


def test_each_item_comes_within_the_engines_per_item_limit_first():
    shapes = [PHOTO, MediaShape("image", 300, 400)]
    fitted = fit_media(shapes, [{}, {}], FACTOR, 100_000, FLOORS, item_tokens=3840)
    big, small = (tokens_of(s, o, FACTOR) for s, o in zip(shapes, fitted.options))
    assert 3000 < big <= 3840 and fitted.options[1] == {} and fitted.tokens == big + small
    assert fitted.tokens_before == 15552 + small and fitted.changed
