"""Media preparation: ours (ingress/media*.py) vs qwen-vl-utils' fetch_image / fetch_video.

Same inputs, same output sizes (asserted equal pixel for pixel), cache off. Images: a
request of N JPEG data URLs, which qwen-vl-utils' `process_vision_info` prepares one after
the other and we prepare concurrently in worker threads. Video: an mp4 sampled at fps=2;
qwen-vl-utils' readers cannot run here (torchvision lacks `read_video`, torchcodec cannot
load), so it reads through its own decord code path with a PyAV-backed `decord`
(tests/media_reference.py), which decodes and converts every frame as decord would.

    python bench/media_bench.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deployments.config import MediaConfig  # noqa: E402
from ingress.media import MediaResolver  # noqa: E402
from tests.media_reference import make_video, use_pyav_decord  # noqa: E402


def _jpeg_url(width: int, height: int, seed: int) -> str:
    ys, xs = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    pixels = np.stack([(xs + seed * 7) % 256, (ys * 2) % 256, (xs ^ ys) % 256], -1).astype(np.uint8)
    pixels = np.clip(pixels.astype(int) + rng.integers(-8, 8, pixels.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _best(fn, repeat: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_images(count: int, width: int, height: int, options: dict, repeat: int) -> tuple[float, float]:
    from qwen_vl_utils import fetch_image

    urls = [_jpeg_url(width, height, seed) for seed in range(count)]
    resolver = MediaResolver(MediaConfig(cache_max_bytes=0))

    async def ours_async() -> list[np.ndarray]:
        return await asyncio.gather(*(resolver.image(u, options, f"p{i}") for i, u in enumerate(urls)))

    ours = asyncio.run(ours_async())
    theirs = [np.asarray(fetch_image({"image": u, **options})) for u in urls]
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs)), "outputs differ"
    t_ours = _best(lambda: asyncio.run(ours_async()), repeat)
    t_theirs = _best(lambda: [fetch_image({"image": u, **options}) for u in urls], repeat)
    return t_theirs, t_ours


def bench_video(seconds: float, fps: int, width: int, height: int, options: dict, repeat: int) -> tuple[float, float]:
    from qwen_vl_utils import fetch_video

    use_pyav_decord()
    data = make_video(seconds=seconds, fps=fps, width=width, height=height)
    resolver = MediaResolver(MediaConfig(cache_max_bytes=0))
    url = "data:video/mp4;base64," + base64.b64encode(data).decode()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "v.mp4")
        Path(path).write_bytes(data)
        ours, _ = asyncio.run(resolver.video(url, options, "p"))
        theirs = fetch_video({"video": f"file://{path}", **options})
        assert np.array_equal(ours, theirs.permute(0, 2, 3, 1).numpy()), "outputs differ"
        t_ours = _best(lambda: asyncio.run(resolver.video(url, options, "p")), repeat)
        t_theirs = _best(lambda: fetch_video({"video": f"file://{path}", **options}), repeat)
    return t_theirs, t_ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}; best of {args.repeat}; times in ms; ratio = qwen-vl-utils / ours")
    cases = [
        ("1 image 1280x960 JPEG, default bounds", lambda: bench_images(1, 1280, 960, {}, args.repeat)),
        ("8 images 1280x960 JPEG, default bounds", lambda: bench_images(8, 1280, 960, {}, args.repeat)),
        ("8 images 1280x960 JPEG, max_pixels=200704", lambda: bench_images(8, 1280, 960, {"max_pixels": 200704}, args.repeat)),
        ("video 10 s 320x240 @30fps, fps=2", lambda: bench_video(10, 30, 320, 240, {"fps": 2.0}, args.repeat)),
        ("video 10 s 640x360 @30fps, fps=2", lambda: bench_video(10, 30, 640, 360, {"fps": 2.0}, args.repeat)),
    ]
    print(f"| case | qwen-vl-utils | ours | ratio |\n| --- | ---: | ---: | ---: |")
    for name, run in cases:
        theirs, ours = run()
        print(f"| {name} | {theirs * 1e3:.1f} | {ours * 1e3:.1f} | {theirs / ours:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
