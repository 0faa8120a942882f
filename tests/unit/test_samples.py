"""The README's sample media: small, made by docs/make_samples.py, and read by the ingress."""

from __future__ import annotations

import importlib.util

import numpy as np
from PIL import Image

from deployments.config import MediaConfig
from ingress.media.budget import MediaBudget
from ingress.media.video import decode_video
from tests.helpers import ROOT

DOCS = ROOT / "docs"


def _make_samples():  # docs/ is not a package: load the script as a module
    spec = importlib.util.spec_from_file_location("make_samples", DOCS / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_samples_are_small_and_what_the_script_draws(tmp_path):
    make_samples = _make_samples()
    assert make_samples.main(tmp_path) == 0
    for name in ("sample.jpg", "sample.mp4"):
        assert (DOCS / name).stat().st_size < 50_000, name
    shipped, drawn = (np.asarray(Image.open(d / "sample.jpg"), dtype=np.int16) for d in (DOCS, tmp_path))
    assert shipped.shape == drawn.shape == (240, 320, 3)
    assert np.abs(shipped - drawn).mean() < 2  # the same picture (JPEG may differ by a bit)


def test_the_sample_video_decodes_through_the_ingress():
    frames, metadata = decode_video((DOCS / "sample.mp4").read_bytes(), {}, "video_url", MediaConfig(), MediaBudget(MediaConfig()))
    assert metadata["total_num_frames"] == 8 and metadata["duration"] == 2.0
    assert len(frames) >= 2
