"""Draws docs/grounding.svg: what a Qwen-VL box's numbers mean, per family, and what
`grounding` turns them into. Plain SVG text, no plotting library:

    python docs/grounding_figure.py   # rewrites docs/grounding.svg

tests/unit/test_docs_figures.py checks the committed figure is this script's output.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

OUT = Path(__file__).with_name("grounding.svg")
PANEL_W, PANEL_H, GAP, TOP = 300, 225, 40, 70
ORIGINAL = (1280, 960)  # the picture the client sends
RESIZED = (448, 336)  # what smart_resize(max_pixels=150528) makes of it, multiples of 28
BOX01 = (0.25, 0.3, 0.6, 0.8)  # the object's box, in 0..1 of the picture
INK, MUTED, ACCENT, IMAGE = "#1c1f24", "#68707c", "#d62728", "#e9e4d6"


def _text(x: float, y: float, text: str, size: int = 13, color: str = INK, anchor: str = "start",
          weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{color}" text-anchor="{anchor}" '
            f'font-weight="{weight}">{escape(text)}</text>')


def _panel(left: float, title: str, subtitle: str, extent: tuple[int, int], ticks: str, box_text: str) -> list[str]:
    """One picture drawn PANEL_W x PANEL_H, its axes labelled in `extent` units, the box on it."""
    w, h = extent
    x1, y1, x2, y2 = BOX01
    bx, by = left + x1 * PANEL_W, TOP + y1 * PANEL_H
    parts = [
        _text(left, 24, title, 15, weight="bold"),
        _text(left, 44, subtitle, 12, MUTED),
        f'<rect x="{left}" y="{TOP}" width="{PANEL_W}" height="{PANEL_H}" fill="{IMAGE}" stroke="{MUTED}"/>',
        f'<circle cx="{left + 0.425 * PANEL_W:.1f}" cy="{TOP + 0.55 * PANEL_H:.1f}" r="50" fill="#c44"/>',
        f'<rect x="{bx:.1f}" y="{by:.1f}" width="{(x2 - x1) * PANEL_W:.1f}" height="{(y2 - y1) * PANEL_H:.1f}" '
        f'fill="none" stroke="{ACCENT}" stroke-width="2.5"/>',
        _text(bx, by - 6, box_text, 12, ACCENT, weight="bold"),
        _text(left - 4, TOP + 4, "0", 11, MUTED, "end"),
        _text(left + PANEL_W, TOP - 6, f"x = {w}", 11, MUTED, "end"),
        _text(left - 4, TOP + PANEL_H, f"{h}", 11, MUTED, "end"),
        _text(left, TOP + PANEL_H + 22, ticks, 12, MUTED),
    ]
    return parts


def render() -> str:
    """The figure's SVG text."""
    x1, y1, x2, y2 = BOX01
    grid = [round(v * 1000) for v in BOX01]
    pixels = [round(v * RESIZED[i % 2]) for i, v in enumerate(BOX01)]
    drawn = [round(v * ORIGINAL[i % 2]) for i, v in enumerate(BOX01)]
    lefts = [40 + i * (PANEL_W + GAP) for i in range(3)]
    width = lefts[-1] + PANEL_W + 20
    parts = [
        *_panel(lefts[0], "Qwen2-VL: a 0..1000 grid", "the same numbers for any image size", (1000, 1000),
                "(x1,y1),(x2,y2) = ({},{}),({},{})".format(*grid), "<|box_start|>"),
        *_panel(lefts[1], "Qwen2.5-VL: resized pixels",
                f"of the {RESIZED[0]}x{RESIZED[1]} image the model saw", RESIZED,
                'bbox_2d = [{}, {}, {}, {}]'.format(*pixels), "bbox_2d"),
        *_panel(lefts[2], "grounding: 0..1 of the image",
                f"x width, x height to draw on the {ORIGINAL[0]}x{ORIGINAL[1]} original", (1, 1),
                f"box = [{x1}, {y1}, {x2}, {y2}] -> [{', '.join(map(str, drawn))}] px", "box"),
        _text(lefts[1] - GAP / 2, TOP + PANEL_H / 2, "or", 13, MUTED, "middle"),
        _text(lefts[2] - GAP / 2, TOP + PANEL_H / 2, "→", 22, INK, "middle"),
        _text(40, TOP + PANEL_H + 52,
              "The client sends a 1280x960 picture; the ingress resizes it (smart_resize: multiples of 28, "
              "within min_pixels..max_pixels) before the model sees it.", 12, MUTED),
        _text(40, TOP + PANEL_H + 70,
              "Each grounding item also names its picture: image_index, from 0, over the conversation's images.",
              12, MUTED),
    ]
    height = TOP + PANEL_H + 86
    body = "\n  ".join(parts)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif">\n'
            f'  <rect width="{width}" height="{height}" fill="#fff"/>\n  {body}\n</svg>\n')


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
