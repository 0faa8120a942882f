"""A request's media budget (ingress/media/budget.py): pixels and deadline, shared by threads."""

from __future__ import annotations

import threading
import time

import pytest

from deployments.config import MediaConfig
from deployments.errors import MediaRefusedError, MediaTimeoutError
from ingress.media.budget import MediaBudget


def test_pixels_are_counted_across_threads():
    budget = MediaBudget(MediaConfig(max_request_decoded_pixels=8 * 10_000))
    threads = [threading.Thread(target=lambda: [budget.charge(10, "p") for _ in range(1000)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with pytest.raises(MediaRefusedError) as caught:
        budget.charge(1, "q")
    assert (caught.value.status_code, caught.value.code, caught.value.param) == (400, "media_too_large", "q")


def test_the_deadline_refuses_with_a_504():
    budget = MediaBudget(MediaConfig(request_deadline_s=0.01))
    budget.charge(0, "p")
    time.sleep(0.02)
    assert budget.remaining_s() < 0
    with pytest.raises(MediaTimeoutError) as caught:
        budget.charge(0, "p")
    assert (caught.value.status_code, caught.value.code) == (504, "media_timeout")
