"""Grounding boxes: parsed from both Qwen formats into 0..1 coordinates of the last image
(ingress/grounding.py), and attached to answers as `message.grounding`."""

from __future__ import annotations

import numpy as np
import pytest

from ingress.grounding import grounder_for
from tests.helpers import image_data_url, image_part, sse_payloads

IMAGE_56x112 = [np.zeros((56, 112, 3), dtype=np.uint8)]  # height 56, width 112 as the model saw it


def test_qwen2_vl_boxes_with_and_without_special_tokens():
    parse = grounder_for("qwen2-vl", IMAGE_56x112)
    raw = "<|object_ref_start|>the cat<|object_ref_end|><|box_start|>(100,200),(500,1000)<|box_end|>"
    assert parse(raw) == [{"label": "the cat", "box": [0.1, 0.2, 0.5, 1.0]}]
    assert parse("the cat(100,200),(500,1000) and (0, 0), (10, 20)") == [
        {"label": None, "box": [0.1, 0.2, 0.5, 1.0]}, {"label": None, "box": [0.0, 0.0, 0.01, 0.02]}]


def test_qwen25_vl_json_boxes_are_scaled_by_the_resized_image():
    parse = grounder_for("qwen2.5-vl", IMAGE_56x112)
    text = 'Here:\n```json\n[{"bbox_2d": [28, 14, 84, 56], "label": "dog"}, {"point_2d": [1, 2]}]\n```'
    assert parse(text) == [{"label": "dog", "box": [0.25, 0.25, 0.75, 1.0]}]
    assert parse('{"bbox_2d": [0, 0, 200, 28]}') == [{"label": None, "box": [0.0, 0.0, 1.0, 0.5]}]  # clipped


@pytest.mark.parametrize("text", ["no boxes here", "(5,5),(1,1)", '{"bbox_2d": [1, 2]}', "```json\n[1, 2\n```"])
def test_no_boxes_or_unusable_ones_give_nothing(text):
    assert grounder_for("qwen2-vl", IMAGE_56x112)(text) == []
    assert grounder_for("qwen2.5-vl", IMAGE_56x112)(text) == []


def test_no_image_no_grounding():
    assert grounder_for("qwen2.5-vl", []) is None


async def test_answers_carry_grounding_whole_and_streamed(http, servers):
    servers["tiny-qwen2.5-vl"]._engine.answer = '[{"bbox_2d": [0, 0, 28, 28], "label": "box"}]'
    body = {"model": "tiny-qwen2.5-vl", "messages": [{"role": "user", "content": [
        image_part(image_data_url(56, 56)), {"type": "text", "text": "Find the box"}]}]}
    whole = (await http.post("/v1/chat/completions", json=body)).json()
    assert whole["choices"][0]["message"]["grounding"] == [{"label": "box", "box": [0.0, 0.0, 0.5, 0.5]}]
    streamed = sse_payloads((await http.post("/v1/chat/completions", json={**body, "stream": True})).text)
    finishing = [p for p in streamed[:-1] if p["choices"] and p["choices"][0]["finish_reason"]]
    assert finishing[0]["choices"][0]["delta"]["grounding"] == whole["choices"][0]["message"]["grounding"]


async def test_text_only_answers_have_no_grounding_field(http, servers):
    servers["tiny-qwen2.5-vl"]._engine.answer = '[{"bbox_2d": [0, 0, 28, 28]}]'
    body = {"model": "tiny-qwen2.5-vl", "messages": [{"role": "user", "content": "no image"}]}
    assert "grounding" not in (await http.post("/v1/chat/completions", json=body)).json()["choices"][0]["message"]


def test_qwen3_vl_json_boxes_are_relative_to_a_1000_grid_whatever_the_image_size():
    """Qwen3-VL's bbox_2d is on 0..1000 of the image, not in the resized image's pixels."""
    text = '```json\n[{"bbox_2d": [250, 100, 750, 1000], "label": "dog"}]\n```'
    for image in (IMAGE_56x112, [np.zeros((640, 320, 3), dtype=np.uint8)]):
        assert grounder_for("qwen3-vl", image)(text) == [{"label": "dog", "box": [0.25, 0.1, 0.75, 1.0]}]
    assert grounder_for("qwen3-vl", IMAGE_56x112)('{"bbox_2d": [0, 0, 1200, 500]}') == [
        {"label": None, "box": [0.0, 0.0, 1.0, 0.5]}]  # clipped
    assert grounder_for("qwen3-vl", IMAGE_56x112)("(100,200),(500,1000)") == []  # not its format
