"""Grounding boxes in a Qwen-VL answer, as normalized coordinates a client can draw.

Qwen-VL models answer "where is X" with boxes in their own coordinate systems, which
`vllm serve` hands back as raw text:
- Qwen2-VL writes `<|object_ref_start|>label<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>`
  on a 0..1000 grid; with special tokens skipped (the default) the text keeps
  `label(x1,y1),(x2,y2)`, which is parsed as well.
- Qwen2.5-VL writes JSON such as `[{"bbox_2d": [x1, y1, x2, y2], "label": "cat"}]` in pixels
  of the image *as resized for the model* (smart_resize), a size the client never sees.
- Qwen3-VL writes the same JSON, on Qwen2-VL's relative 0..1000 grid again.
All become `{"label", "box": [x1, y1, x2, y2]}` with coordinates in 0..1 of the image
(multiply by the original width and height to draw), attached to the answer's message as
`grounding`. Boxes refer to the conversation's last image.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_QWEN2_BOX = re.compile(
    r"(?:<\|object_ref_start\|>(?P<label>.*?)<\|object_ref_end\|>)?\s*(?:<\|box_start\|>)?"
    r"\(\s*(?P<x1>\d{1,4})\s*,\s*(?P<y1>\d{1,4})\s*\)\s*,\s*\(\s*(?P<x2>\d{1,4})\s*,\s*(?P<y2>\d{1,4})\s*\)"
)
_QWEN2_GRID = 1000.0
_JSON_BLOCK = re.compile(r"```(?:json)?\s*(.*?)```", re.S)

Grounder = Callable[[str], list[dict[str, Any]]]


def grounder_for(family: str, images: list[Any]) -> Grounder | None:
    """The box parser for an answer about `images` (resized arrays), or None without images."""
    if not images:
        return None
    height, width = images[-1].shape[:2]
    if family == "qwen2-vl":
        return lambda text: _qwen2_boxes(text)
    if family == "qwen3-vl":
        return lambda text: _qwen25_boxes(text, _QWEN2_GRID, _QWEN2_GRID)
    return lambda text: _qwen25_boxes(text, width, height)


def _qwen2_boxes(text: str) -> list[dict[str, Any]]:
    boxes = []
    for match in _QWEN2_BOX.finditer(text):
        coords = [int(match[k]) / _QWEN2_GRID for k in ("x1", "y1", "x2", "y2")]
        label = match["label"]
        boxes.append(_box(label.strip() if label else None, coords))
    return [b for b in boxes if b is not None]


def _qwen25_boxes(text: str, width: float, height: float) -> list[dict[str, Any]]:
    boxes = []
    for item in _json_objects(text):
        bbox = item.get("bbox_2d")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            continue
        label = item.get("label")
        coords = [bbox[0] / width, bbox[1] / height, bbox[2] / width, bbox[3] / height]
        boxes.append(_box(label if isinstance(label, str) else None, coords))
    return [b for b in boxes if b is not None]


def _json_objects(text: str) -> list[dict[str, Any]]:
    """The objects of the answer's JSON (a fenced block, else the whole text), if any."""
    candidates = _JSON_BLOCK.findall(text) or [text]
    found: list[dict[str, Any]] = []
    for candidate in candidates:
        try:
            value = json.loads(candidate.strip())
        except ValueError:
            continue
        items = value if isinstance(value, list) else [value]
        found.extend(item for item in items if isinstance(item, dict))
    return found


def _box(label: str | None, coords: list[float]) -> dict[str, Any] | None:
    """A box clipped to the image, or None when it is empty or reversed."""
    x1, y1, x2, y2 = (min(max(c, 0.0), 1.0) for c in coords)
    if x2 <= x1 or y2 <= y1:
        return None
    return {"label": label, "box": [round(x1, 4), round(y1, 4), round(x2, 4), round(y2, 4)]}
