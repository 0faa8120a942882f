"""Draw the README's sample media (docs/sample.jpg, docs/sample.mp4): no download needed.

    python docs/make_samples.py        # rewrites both files

The picture is a small scene (sky, sun, house, tree, grass) and the clip a red ball rolling
across it, so "what is in this picture?" and grounding questions have an answer. Both are
drawn with Pillow and encoded with PyAV (already dependencies), a few kilobytes each.
"""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

DOCS = Path(__file__).resolve().parent
SIZE = (320, 240)
FPS, SECONDS = 4, 2


def scene(ball_x: int | None = None) -> Image.Image:
    """The picture; with `ball_x`, a red ball on the grass at that x."""
    image = Image.new("RGB", SIZE, (135, 196, 235))  # sky
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 170, 320, 240), fill=(76, 153, 60))  # grass
    draw.ellipse((250, 20, 295, 65), fill=(250, 210, 60))  # sun
    draw.rectangle((60, 110, 160, 180), fill=(200, 80, 60))  # house
    draw.polygon([(50, 110), (110, 60), (170, 110)], fill=(120, 60, 40))  # roof
    draw.rectangle((98, 140, 122, 180), fill=(90, 50, 30))  # door
    draw.rectangle((215, 120, 229, 182), fill=(110, 70, 40))  # trunk
    draw.ellipse((190, 70, 255, 135), fill=(40, 120, 50))  # crown
    if ball_x is not None:
        draw.ellipse((ball_x, 195, ball_x + 30, 225), fill=(220, 30, 30))
    return image


def write_jpeg(path: Path) -> None:
    scene().save(path, format="JPEG", quality=85)


def write_mp4(path: Path) -> None:
    frames = FPS * SECONDS
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        for i in range(frames):
            image = scene(ball_x=10 + i * (SIZE[0] - 50) // (frames - 1))
            frame = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def main(out_dir: Path = DOCS) -> int:
    write_jpeg(out_dir / "sample.jpg")
    write_mp4(out_dir / "sample.mp4")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS))
