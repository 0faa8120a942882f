"""Grounding: boxes and points parsed from both Qwen syntaxes into 0..1 coordinates of the
image each refers to (ingress/grounding.py), and attached to answers as `message.grounding`."""

from __future__ import annotations

import numpy as np
import pytest

from ingress.grounding import COORDINATES_BY_FAMILY, grounder_for
from tests.helpers import image_data_url, image_part, sse_payloads

IMAGE_56x112 = [np.zeros((56, 112, 3), dtype=np.uint8)]  # height 56, width 112 as the model saw it
TWO_IMAGES = [np.zeros((56, 112, 3), dtype=np.uint8), np.zeros((280, 28, 3), dtype=np.uint8)]


def test_qwen2_vl_boxes_with_and_without_special_tokens():
    parse = grounder_for("qwen2-vl", IMAGE_56x112)
    raw = "<|object_ref_start|>the cat<|object_ref_end|><|box_start|>(100,200),(500,1000)<|box_end|>"
    assert parse(raw) == [{"label": "the cat", "box": [0.1, 0.2, 0.5, 1.0], "image_index": 0}]
    assert parse("the cat(100,200),(500,1000) and (0, 0), (10, 20)") == [
        {"label": None, "box": [0.1, 0.2, 0.5, 1.0], "image_index": 0},
        {"label": None, "box": [0.0, 0.0, 0.01, 0.02], "image_index": 0},
    ]


def test_qwen25_vl_json_boxes_and_points_are_scaled_by_the_resized_image():
    parse = grounder_for("qwen2.5-vl", IMAGE_56x112)
    text = 'Here:\n```json\n[{"bbox_2d": [28, 14, 84, 56], "label": "dog"}, {"point_2d": [56, 28]}]\n```'
    assert parse(text) == [
        {"label": "dog", "box": [0.25, 0.25, 0.75, 1.0], "image_index": 0},
        {"label": None, "point": [0.5, 0.5], "image_index": 0},
    ]
    assert parse('{"bbox_2d": [0, 0, 200, 28]}') == [{"label": None, "box": [0.0, 0.0, 1.0, 0.5], "image_index": 0}]


def test_the_family_decides_the_coordinate_system():
    """The same JSON on Qwen2-VL's 0..1000 grid and on Qwen2.5-VL's resized pixels."""
    text = '{"bbox_2d": [10, 10, 50, 50], "label": "a"}'
    assert grounder_for("qwen2-vl", IMAGE_56x112)(text)[0]["box"] == [0.01, 0.01, 0.05, 0.05]
    assert grounder_for("qwen2.5-vl", IMAGE_56x112)(text)[0]["box"] == [0.0893, 0.1786, 0.4464, 0.8929]
    assert grounder_for("qwen3-vl", IMAGE_56x112)(text)[0]["box"] == [0.01, 0.01, 0.05, 0.05]
    assert set(COORDINATES_BY_FAMILY) == {"qwen2-vl", "qwen2.5-vl", "qwen3-vl"}


@pytest.mark.parametrize(
    "text,indexes",
    [
        ('{"bbox_2d": [1, 1, 20, 20]} {"bbox_2d": [2, 2, 20, 20]}', [1, 1]),  # none named: the last image
        ('Picture 1: {"bbox_2d": [1, 1, 20, 20]}\nPicture 2: {"bbox_2d": [2, 2, 20, 20]}', [0, 1]),
        ('In image 1 the cat (10,10),(20,20); in the second image the dog (3,30),(20,40)', [0, 1]),
        ('图1: {"point_2d": [5, 5]} 第2张: {"point_2d": [6, 6]}', [0, 1]),
        ('Picture 7 is not there: {"bbox_2d": [1, 1, 20, 20]}', [1]),  # a name beyond the images is ignored
        ('[{"bbox_2d": [1, 1, 20, 20], "label": "image 1"}, {"bbox_2d": [2, 2, 20, 20]}]', [1, 1]),  # labels name nothing
    ],
    ids=["default-last", "picture-n", "words", "chinese", "unknown-image", "label-inside"],
)
def test_each_item_refers_to_the_image_named_before_it(text, indexes):
    assert [item["image_index"] for item in grounder_for("qwen2.5-vl", TWO_IMAGES)(text)] == indexes


def test_pixels_are_scaled_by_the_image_each_item_refers_to():
    text = 'Picture 1: {"bbox_2d": [0, 0, 56, 28]} Picture 2: {"bbox_2d": [0, 0, 14, 140]}'
    boxes = [item["box"] for item in grounder_for("qwen2.5-vl", TWO_IMAGES)(text)]
    assert boxes == [[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5]]


def test_an_answer_cut_short_keeps_its_finished_items():
    cut = '```json\n[{"bbox_2d": [28, 14, 84, 56], "label": "dog"}, {"bbox_2d": [1, 2, 3'
    assert grounder_for("qwen2.5-vl", IMAGE_56x112)(cut) == [
        {"label": "dog", "box": [0.25, 0.25, 0.75, 1.0], "image_index": 0}]
    assert grounder_for("qwen2-vl", IMAGE_56x112)("a (1,2),(30,40) b (5,6),(7") == [
        {"label": None, "box": [0.001, 0.002, 0.03, 0.04], "image_index": 0}]


@pytest.mark.parametrize(
    "text",
    [
        "no boxes here",
        "(5,5),(1,1)",  # reversed
        '{"bbox_2d": [1, 2]}',  # too few numbers
        '{"bbox_2d": [1, 2, "3", 4]}',  # not numbers
        '{"bbox_2d": [true, 2, 3, 4]}',
        '{"point_2d": [1, 2, 3]}',
        '{"point_2d": [5000, 10]}',  # outside the image
        "```json\n[1, 2\n```",
        '{"bbox_2d": [1, 2, 3, 4]',  # never closed
        "{'bbox_2d': [1, 2, 3, 4]}",  # not JSON
    ],
)
def test_no_items_or_unusable_ones_give_nothing(text):
    assert grounder_for("qwen2-vl", IMAGE_56x112)(text) == []
    assert grounder_for("qwen2.5-vl", IMAGE_56x112)(text) == []


def test_no_image_or_no_grounding_family_no_grounder():
    assert grounder_for("qwen2.5-vl", []) is None
    assert grounder_for("qwen2", IMAGE_56x112) is None


@pytest.mark.parametrize(
    "hostile,count",
    [('{"a":' * 30_000, 0), ("<|object_ref_start|>" * 20_000 + "(1,2),(3,4)", 1),
     ("image 1 " * 20_000 + '{"point_2d": [1, 1]}' * 5_000, 5_000)],
    ids=["open-braces", "open-refs", "many-names"],
)
def test_hostile_answers_are_read_in_one_pass(hostile, count):
    """Answers built to make a backtracking or per-position parser quadratic (minutes at
    these sizes) are read like any other."""
    found = grounder_for("qwen2.5-vl", TWO_IMAGES)(hostile)
    assert len(found) == count and all(item["image_index"] in (0, 1) for item in found)


async def test_answers_carry_grounding_whole_and_streamed(http, servers):
    servers["tiny-qwen2.5-vl"]._engine.answer = '[{"bbox_2d": [0, 0, 28, 28], "label": "box"}, {"point_2d": [14, 14]}]'
    body = {"model": "tiny-qwen2.5-vl", "messages": [{"role": "user", "content": [
        image_part(image_data_url(56, 56)), {"type": "text", "text": "Find the box"}]}]}
    whole = (await http.post("/v1/chat/completions", json=body)).json()
    assert whole["choices"][0]["message"]["grounding"] == [
        {"label": "box", "box": [0.0, 0.0, 0.5, 0.5], "image_index": 0},
        {"label": None, "point": [0.25, 0.25], "image_index": 0},
    ]
    streamed = sse_payloads((await http.post("/v1/chat/completions", json={**body, "stream": True})).text)
    finishing = [p for p in streamed[:-1] if p["choices"] and p["choices"][0]["finish_reason"]]
    assert finishing[0]["choices"][0]["delta"]["grounding"] == whole["choices"][0]["message"]["grounding"]


async def test_items_refer_to_the_images_of_the_whole_conversation(http, servers):
    """Image indexes count every image of every message, in order."""
    servers["tiny-qwen2.5-vl"]._engine.answer = 'Picture 1: {"bbox_2d": [0, 0, 28, 28]} Picture 3: {"point_2d": [56, 28]}'
    body = {"model": "tiny-qwen2.5-vl", "messages": [
        {"role": "user", "content": [image_part(image_data_url(56, 56)), {"type": "text", "text": "What?"}]},
        {"role": "assistant", "content": "A picture."},
        {"role": "user", "content": [image_part(image_data_url(56, 56, seed=1)), image_part(image_data_url(112, 56)),
                                     {"type": "text", "text": "Compare"}]},
    ]}
    grounding = (await http.post("/v1/chat/completions", json=body)).json()["choices"][0]["message"]["grounding"]
    assert grounding == [
        {"label": None, "box": [0.0, 0.0, 0.5, 0.5], "image_index": 0},
        {"label": None, "point": [0.5, 0.5], "image_index": 2},
    ]


async def test_text_only_answers_have_no_grounding_field(http, servers):
    servers["tiny-qwen2.5-vl"]._engine.answer = '[{"bbox_2d": [0, 0, 28, 28]}]'
    body = {"model": "tiny-qwen2.5-vl", "messages": [{"role": "user", "content": "no image"}]}
    assert "grounding" not in (await http.post("/v1/chat/completions", json=body)).json()["choices"][0]["message"]


def test_qwen3_vl_json_boxes_are_relative_to_a_1000_grid_whatever_the_image_size():
    """Qwen3-VL's bbox_2d is on 0..1000 of the image, not in the resized image's pixels."""
    text = '```json\n[{"bbox_2d": [250, 100, 750, 1000], "label": "dog"}]\n```'
    for image in (IMAGE_56x112, [np.zeros((640, 320, 3), dtype=np.uint8)]):
        assert grounder_for("qwen3-vl", image)(text) == [
            {"label": "dog", "box": [0.25, 0.1, 0.75, 1.0], "image_index": 0}]
    assert grounder_for("qwen3-vl", IMAGE_56x112)('{"bbox_2d": [0, 0, 1200, 500]}') == [
        {"label": None, "box": [0.0, 0.0, 1.0, 0.5], "image_index": 0}]  # clipped
