"""Media preparation: ours (ingress/media/) vs qwen-vl-utils' fetch_image / fetch_video.

Same inputs, cache off. Before timing, each case checks that both give the same shapes
(sizes, frame count) and values within the tolerances of tests/media_reference.py: we
resize with torch's uint8 bicubic kernel, not PIL's (images) or torchvision's float one
(video), so values may differ slightly; the mean and largest absolute differences are printed. Images: a request of N
JPEG data URLs, which qwen-vl-utils' `process_vision_info` prepares one after the other and
we prepare concurrently in worker threads. Video: an mp4 sampled at fps=2; qwen-vl-utils'
readers cannot run here (torchvision lacks `read_video`, torchcodec cannot load), so it reads
through its own decord code path with a PyAV-backed `decord` (tests/media_reference.py),
which decodes and converts every frame as decord would. `--cores 1` pins the process to
one core, for throughput per core.

    python bench/media_bench.py [--repeat 5] [--cores 1]
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
from tests.media_reference import (  # noqa: E402
    IMAGE_MAX_DIFF,
    IMAGE_MAX_MEAN,
    VIDEO_MAX_DIFF,
    VIDEO_MAX_MEAN,
    assert_close,
    make_video,
    use_pyav_decord,
)


def _jpeg_url(width: int, height: int, seed: int) -> str:
    ys, xs = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    pixels = np.stack([(xs + seed * 7) % 256, (ys * 2) % 256, (xs ^ ys) % 256], -1).astype(np.uint8)
    pixels = np.clip(pixels.astype(int) + rng.integers(-8, 8, pixels.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _compare(ours: list[np.ndarray], theirs: list[np.ndarray], max_diff: int, max_mean: float) -> tuple[float, int]:
    """(mean, max) absolute difference in levels; raises on any shape or value beyond tolerance."""
    for a, b in zip(ours, theirs, strict=True):
        assert_close(a, b, max_diff, max_mean)
    diffs = [np.abs(a.astype(np.int16) - b.astype(np.int16)) for a, b in zip(ours, theirs)]
    return float(np.mean([d.mean() for d in diffs])), int(max(d.max() for d in diffs))


# One event loop for every run, as in the ingress replica: a fresh loop per run (asyncio.run)
# would also time starting and joining its worker threads.
_LOOP = asyncio.new_event_loop()


def _best(fn, repeat: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


Result = tuple[float, float, float, int]  # theirs (s), ours (s), mean diff, max diff


def bench_images(count: int, width: int, height: int, options: dict, repeat: int) -> Result:
    from qwen_vl_utils import fetch_image

    urls = [_jpeg_url(width, height, seed) for seed in range(count)]
    resolver = MediaResolver(MediaConfig(cache_max_bytes=0))

    async def ours_async() -> list[np.ndarray]:
        return await asyncio.gather(*(resolver.image(u, options, f"p{i}") for i, u in enumerate(urls)))

    ours = _LOOP.run_until_complete(ours_async())
    theirs = [np.asarray(fetch_image({"image": u, **options})) for u in urls]
    mean, worst = _compare(ours, theirs, IMAGE_MAX_DIFF, IMAGE_MAX_MEAN)
    t_ours = _best(lambda: _LOOP.run_until_complete(ours_async()), repeat)
    t_theirs = _best(lambda: [fetch_image({"image": u, **options}) for u in urls], repeat)
    return t_theirs, t_ours, mean, worst


def bench_video(seconds: float, fps: int, width: int, height: int, options: dict, repeat: int) -> Result:
    from qwen_vl_utils import fetch_video

    use_pyav_decord()
    data = make_video(seconds=seconds, fps=fps, width=width, height=height)
    resolver = MediaResolver(MediaConfig(cache_max_bytes=0))
    url = "data:video/mp4;base64," + base64.b64encode(data).decode()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "v.mp4")
        Path(path).write_bytes(data)
        ours, _ = _LOOP.run_until_complete(resolver.video(url, options, "p"))
        theirs = fetch_video({"video": f"file://{path}", **options})
        mean, worst = _compare([ours], [theirs.permute(0, 2, 3, 1).numpy()], VIDEO_MAX_DIFF, VIDEO_MAX_MEAN)
        t_ours = _best(lambda: _LOOP.run_until_complete(resolver.video(url, options, "p")), repeat)
        t_theirs = _best(lambda: fetch_video({"video": f"file://{path}", **options}), repeat)
    return t_theirs, t_ours, mean, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cores", type=int, default=0, help="pin to this many cores (0: all)")
    args = parser.parse_args()
    if args.cores:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    cores = len(os.sched_getaffinity(0))
    print(f"cores: {cores}; best of {args.repeat}; times in ms; ratio = qwen-vl-utils / ours; "
          "diff = mean / max absolute difference of the outputs, in levels of 255")
    cases = [
        ("1 image 1280x960 JPEG, default bounds", lambda: bench_images(1, 1280, 960, {}, args.repeat)),
        ("8 images 1280x960 JPEG, default bounds", lambda: bench_images(8, 1280, 960, {}, args.repeat)),
        ("8 images 1280x960 JPEG, max_pixels=200704", lambda: bench_images(8, 1280, 960, {"max_pixels": 200704}, args.repeat)),
        ("video 10 s 320x240 @30fps, fps=2", lambda: bench_video(10, 30, 320, 240, {"fps": 2.0}, args.repeat)),
        ("video 10 s 640x360 @30fps, fps=2", lambda: bench_video(10, 30, 640, 360, {"fps": 2.0}, args.repeat)),
    ]
    print("| case | qwen-vl-utils | ours | ratio | diff |\n| --- | ---: | ---: | ---: | ---: |")
    for name, run in cases:
        theirs, ours, mean, worst = run()
        print(f"| {name} | {theirs * 1e3:.1f} | {ours * 1e3:.1f} | {theirs / ours:.2f}x | {mean:.3f} / {worst} |",
              flush=True)


if __name__ == "__main__":
    main()
