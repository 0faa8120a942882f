"""The browser page `/ui` in a real headless Chromium (Debian's `chromium` + `chromium-driver`,
driven by Selenium) against the real app: the page uploads a picture, streams the answer of
the real vLLM engine, and draws the answer's grounding where the picture shows it.

The random-weight model is made to answer in Qwen2.5-VL's box JSON by structured outputs,
typed into the page's "Request JSON overrides" like a user would. The picture is sent with
`max_pixels` a quarter of its size, so the model's pixel coordinates are those of a smaller
image than the one the browser shows: the box lands on the red ball only if the whole
coordinate chain (resize, `grounding`, drawing) is right. Set `UI_SCREENSHOT=docs/ui.png` to
refresh the README's screenshot from this test.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from tests.helpers import ROOT
from tests.ui_page import ask, attach, fraction_of, headless_chromium, wait

pytestmark = pytest.mark.e2e

VL25 = "tiny-qwen2.5-vl"
# The first picture: 448x336 sent with max_pixels 224*168, so the model sees 224x168.
BALL_CENTER, BALL_RADIUS = (300, 200), 60
SEEN_SIZE = (224, 168)
BALL_BOX_SEEN = [120, 70, 180, 130]  # the ball's box in the pixels of the image the model saw
# The second picture: 224x224, kept at its size; Qwen2-VL's "Picture 2:" names it.
SECOND_ANSWER = 'Picture 2: {"point_2d": [112, 56], "label": "green dot"}'


def _box_schema() -> dict:
    """JSON schema admitting exactly one box: the ball's, labelled."""
    corners = [{"enum": [value]} for value in BALL_BOX_SEEN]
    item = {
        "type": "object",
        "properties": {
            "bbox_2d": {"type": "array", "prefixItems": corners, "items": False, "minItems": 4},
            "label": {"enum": ["red ball"]},
        },
        "required": ["bbox_2d", "label"],
        "additionalProperties": False,
    }
    return {"type": "array", "minItems": 1, "maxItems": 1, "items": item}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("ui-pictures")
    first = Image.new("RGB", (448, 336), (236, 232, 220))
    draw = ImageDraw.Draw(first)
    draw.rectangle((40, 60, 150, 170), fill=(60, 90, 200))
    (x, y), r = BALL_CENTER, BALL_RADIUS
    draw.ellipse((x - r, y - r, x + r, y + r), fill=(210, 40, 40))
    second = Image.new("RGB", (224, 224), (240, 240, 240))
    ImageDraw.Draw(second).ellipse((102, 46, 122, 66), fill=(40, 170, 60))
    paths = folder / "ball.png", folder / "dot.png"
    first.save(paths[0])
    second.save(paths[1])
    return paths


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with headless_chromium() as driver:
        yield driver


def test_the_page_streams_answers_and_draws_their_grounding(browser, serve_url: str, pictures, tmp_path: Path):
    browser.get(f"{serve_url}/ui")
    assert browser.current_url == f"{serve_url}/ui/"
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"#model option[value='{VL25}']"))
    Select(browser.find_element(By.ID, "model")).select_by_value(VL25)

    # Turn 1: one picture, resized for the model by max_pixels; the answer forced into box JSON.
    attach(browser, pictures[0], max_pixels=SEEN_SIZE[0] * SEEN_SIZE[1])
    schema_format = {"type": "json_schema", "json_schema": {"name": "boxes", "schema": _box_schema()}}
    first = ask(browser, "Where is the red ball?", {"response_format": schema_format, "seed": 7, "max_tokens": 60})
    assert json.loads(first.find_element(By.CLASS_NAME, "text").text) == [{"bbox_2d": BALL_BOX_SEEN, "label": "red ball"}]
    assert int(first.get_attribute("data-chunks")) >= 2  # the text arrived in pieces, and the page showed each
    stats = first.find_element(By.CLASS_NAME, "stats").text
    assert "first token" in stats and "prompt +" in stats and "1 grounding item" in stats
    figure = first.find_element(By.CSS_SELECTOR, "figure.ground[data-image-index='0']")
    box = figure.find_element(By.CSS_SELECTOR, ".mark.box")
    assert box.text == "red ball"
    image = figure.find_element(By.TAG_NAME, "img")
    assert image.get_property("naturalWidth") == 448  # drawn over the picture as uploaded, not as resized
    expected = [BALL_BOX_SEEN[i] / SEEN_SIZE[i % 2] for i in range(4)]
    drawn = fraction_of(box, image)
    assert all(abs(d - e) < 0.02 for d, e in zip(drawn, expected, strict=True)), (drawn, expected)
    browser.save_screenshot(str(tmp_path / "ui-turn1.png"))
    if os.environ.get("UI_SCREENSHOT"):
        shutil.copy(tmp_path / "ui-turn1.png", ROOT / os.environ["UI_SCREENSHOT"])

    # Turn 2: a second picture in the same conversation; the answer names it as "Picture 2".
    attach(browser, pictures[1])
    second = ask(browser, "Compare the two pictures.", {"structured_outputs": {"choice": [SECOND_ANSWER]}})
    assert second.find_element(By.CLASS_NAME, "text").text == SECOND_ANSWER
    captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, ".msg.user figcaption")]
    assert captions == [f"image 1 · max_pixels {SEEN_SIZE[0] * SEEN_SIZE[1]}", "image 2"]  # what answers name
    figure = second.find_element(By.CSS_SELECTOR, "figure.ground[data-image-index='1']")
    point, image = figure.find_element(By.CSS_SELECTOR, ".mark.point"), figure.find_element(By.TAG_NAME, "img")
    x, y = point.rect["x"] + point.rect["width"] / 2, point.rect["y"] + point.rect["height"] / 2
    assert abs((x - image.rect["x"]) / image.rect["width"] - 0.5) < 0.03
    assert abs((y - image.rect["y"]) / image.rect["height"] - 0.25) < 0.03
    first_prompt = _prompt_tokens(first)
    assert _prompt_tokens(second) > first_prompt  # the history, its picture included, was sent again
    assert not browser.find_elements(By.CSS_SELECTOR, ".msg .error:not(:empty)")


def _prompt_tokens(answer: WebElement) -> int:
    stats = answer.find_element(By.CLASS_NAME, "stats").text
    return int(stats.split(" prompt +")[0].rsplit(" ", 1)[-1])
