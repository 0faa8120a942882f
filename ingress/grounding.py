"""Grounding in a Qwen-VL answer: boxes and points, in 0..1 of the image each refers to.

Qwen-VL models answer "where is X" with coordinates in their own systems, which `vllm
serve` hands back as raw text. Two syntaxes are read, from any vision family:
- Qwen2-VL's `<|object_ref_start|>label<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>`;
  with special tokens skipped (the default) the text keeps `label(x1,y1),(x2,y2)`, which is
  read as well (without a label).
- Qwen2.5-VL's JSON objects `{"bbox_2d": [x1, y1, x2, y2], "label": "cat"}` and
  `{"point_2d": [x, y], "label": "cat"}`, fenced or bare, one object or a list; every
  complete object counts, so an answer cut short by `max_tokens` keeps its finished ones.
What the numbers mean depends on the family (`COORDINATES_BY_FAMILY`, docs/grounding.md):
a 0..1000 grid over the image (Qwen2-VL, Qwen3-VL) or pixels of the image *as resized for the model*
(Qwen2.5-VL), a size the client never sees. Either becomes 0..1 of the image: multiply by
the original width and height to draw.

Which image: items refer to the conversation's images in order (`image_index`, from 0;
videos are not counted). An item belongs to the image the answer last named before it —
"Picture 2" (what Qwen2-VL's template writes with `add_vision_id`), "image 2", "the second
image", "图2", "第2张" — and, when the answer names none before it, to the conversation's
last image (the one the question is nearest to). Names of images the conversation does not
have are ignored.

Items come back in the order the answer wrote them, as `{"label", "box": [x1, y1, x2, y2],
"image_index"}` or `{"label", "point": [x, y], "image_index"}`. Boxes are clipped to the
image and dropped when empty or reversed; points outside the image are dropped.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple


@dataclass(frozen=True)
class CoordinateSystem:
    """How a family's numbers map onto an image: a fixed grid, or the resized image's pixels."""

    grid: float | None  # the grid's extent (1000: relative 0..1000); None: resized-image pixels

    def extent(self, width: int, height: int) -> tuple[float, float]:
        """What x and y are divided by to land in 0..1, for an image of this (resized) size."""
        return (self.grid, self.grid) if self.grid else (float(width), float(height))


RELATIVE_1000 = CoordinateSystem(grid=1000.0)
RESIZED_PIXELS = CoordinateSystem(grid=None)

# One line per vision family; a family missing here gets no grounding.
COORDINATES_BY_FAMILY: dict[str, CoordinateSystem] = {
    "qwen2-vl": RELATIVE_1000,
    "qwen2.5-vl": RESIZED_PIXELS,
    "qwen3-vl": RELATIVE_1000,
}

Grounder = Callable[[str], list[dict[str, Any]]]

_NUMBER = r"\s*(-?\d{1,5}(?:\.\d+)?)\s*"
_QWEN2_BOX = re.compile(
    r"(?:<\|object_ref_start\|>(?P<label>.{0,200}?)<\|object_ref_end\|>)?\s*(?:<\|box_start\|>)?"
    rf"\({_NUMBER},{_NUMBER}\)\s*,\s*\({_NUMBER},{_NUMBER}\)(?:<\|box_end\|>)?",
    re.S,
)
# Flat JSON objects (boxes and points never nest braces): linear to scan, whatever the text.
_FLAT_OBJECT = re.compile(r"\{[^{}]*\}")
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
_IMAGE_WORDS = r"(?:picture|image|img|photo|figure|pic)"
_IMAGE_NAME = re.compile(
    rf"\b{_IMAGE_WORDS}\s*(?:#|no\.?|number)?\s*(?P<number>\d{{1,3}})\b"
    rf"|\b(?P<ordinal>{'|'.join(_ORDINALS)})\s+{_IMAGE_WORDS}"
    r"|图片?\s*(?P<cn_number>\d{1,3})|第\s*(?P<cn_nth>\d{1,3})\s*张",
    re.I,
)


class ImageSize(NamedTuple):
    width: int
    height: int


class _Mark(NamedTuple):
    """One box or point the answer wrote, in the model's own numbers, at `start` in the text."""

    start: int
    end: int
    label: str | None
    kind: str  # "box" or "point"
    values: tuple[float, ...]


def grounder_for(family: str, images: list[Any]) -> Grounder | None:
    """The grounding parser for an answer about `images` (resized arrays, in conversation
    order); None without images or for a family without grounding."""
    system = COORDINATES_BY_FAMILY.get(family)
    if system is None or not images:
        return None
    sizes = [ImageSize(width=int(image.shape[1]), height=int(image.shape[0])) for image in images]
    return lambda text: parse_grounding(text, system, sizes)


def parse_grounding(text: str, system: CoordinateSystem, sizes: list[ImageSize]) -> list[dict[str, Any]]:
    """Every usable box and point of `text`, normalized to the image it refers to."""
    marks = sorted([*_tuple_boxes(text), *_json_marks(text)], key=lambda mark: mark.start)
    names = _image_names(text, marks, len(sizes))
    found: list[dict[str, Any]] = []
    image, next_name = len(sizes) - 1, 0
    for mark in marks:
        while next_name < len(names) and names[next_name][0] < mark.start:
            image = names[next_name][1]
            next_name += 1
        item = _normalized(mark, system.extent(*sizes[image]), image)
        if item is not None:
            found.append(item)
    return found


def _tuple_boxes(text: str) -> Iterator[_Mark]:
    for match in _QWEN2_BOX.finditer(text):
        label = match["label"].strip() if match["label"] else None
        yield _Mark(match.start(), match.end(), label or None, "box", tuple(float(v) for v in match.groups()[1:]))


def _json_marks(text: str) -> Iterator[_Mark]:
    for match in _FLAT_OBJECT.finditer(text):
        try:
            item = json.loads(match[0])
        except ValueError:
            continue
        label = item.get("label") if isinstance(item.get("label"), str) else None
        for key, kind, length in (("bbox_2d", "box", 4), ("point_2d", "point", 2)):
            values = item.get(key)
            if isinstance(values, list) and len(values) == length and all(_is_number(v) for v in values):
                yield _Mark(match.start(), match.end(), label, kind, tuple(float(v) for v in values))
                break


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _image_names(text: str, marks: list[_Mark], image_count: int) -> list[tuple[int, int]]:
    """(position, image index) of each image the text names outside a box or point, in order."""
    starts = [mark.start for mark in marks]
    names = []
    for match in _IMAGE_NAME.finditer(text):
        inside = bisect.bisect_right(starts, match.start()) - 1
        if inside >= 0 and match.start() < marks[inside].end:
            continue  # a label such as "image 2" inside an item names nothing
        if match["ordinal"]:
            number = _ORDINALS.index(match["ordinal"].lower()) + 1
        else:
            number = int(match["number"] or match["cn_number"] or match["cn_nth"])
        if 1 <= number <= image_count:
            names.append((match.start(), number - 1))
    return names


def _normalized(mark: _Mark, extent: tuple[float, float], image: int) -> dict[str, Any] | None:
    """A box clipped to the image (None when empty or reversed), or a point (None outside it)."""
    width, height = extent
    scaled = [value / (width if i % 2 == 0 else height) for i, value in enumerate(mark.values)]
    if mark.kind == "point":
        if not all(0.0 <= value <= 1.0 for value in scaled):
            return None
        return {"label": mark.label, "point": [round(v, 4) for v in scaled], "image_index": image}
    x1, y1, x2, y2 = (min(max(value, 0.0), 1.0) for value in scaled)
    if x2 <= x1 or y2 <= y1:
        return None
    return {"label": mark.label, "box": [round(x1, 4), round(y1, 4), round(x2, 4), round(y2, 4)], "image_index": image}
