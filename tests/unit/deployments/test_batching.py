"""Delta coalescing: first token immediately, later deltas merged per interval, nothing lost."""

from __future__ import annotations

import asyncio

import pytest

from deployments.batching import coalesce, merge_deltas
from deployments.calls import Delta


def _delta(index: int, step: int, finish: str | None = None) -> Delta:
    return Delta(index=index, text=f"t{step}", completion_tokens=step + 1, prompt_tokens=7, finish_reason=finish)


async def _engine(steps: int, delay_s: float, choices: int = 1):
    for step in range(steps):
        await asyncio.sleep(delay_s)
        finish = "stop" if step == steps - 1 else None
        yield [_delta(i, step, finish) for i in range(choices)]


def test_merge_keeps_text_order_and_latest_counts():
    merged = merge_deltas([[_delta(0, 0), _delta(1, 0)], [_delta(0, 1, "length")]])
    assert [(d.index, d.text, d.completion_tokens, d.finish_reason) for d in merged] == [
        (0, "t0t1", 2, "length"),
        (1, "t0", 1, None),
    ]


async def test_coalesce_sends_first_batch_alone_then_merges():
    batches = [b async for b in coalesce(_engine(40, 0.001, choices=2), interval_s=0.05)]
    assert batches[0][0].text == "t0"  # the first token is not held back
    assert len(batches) < 20  # 40 steps crossed the handle as far fewer items
    for index in (0, 1):
        text = "".join(d.text for b in batches for d in b if d.index == index)
        assert text == "".join(f"t{s}" for s in range(40))
    last = {d.index: d for d in batches[-1]}
    assert all(d.finish_reason == "stop" and d.completion_tokens == 40 for d in last.values())


async def test_coalesce_with_zero_interval_is_a_passthrough():
    batches = [b async for b in coalesce(_engine(5, 0), interval_s=0)]
    assert len(batches) == 5


async def test_errors_arrive_after_the_deltas_before_them():
    async def failing():
        yield [_delta(0, 0)]
        yield [_delta(0, 1)]
        raise ValueError("boom")

    seen = []
    with pytest.raises(ValueError, match="boom"):
        async for batch in coalesce(failing(), interval_s=0.05):
            seen.extend(d.text for d in batch)
    assert "".join(seen) == "t0t1"


async def test_cancelling_the_consumer_closes_the_engine_stream():
    closed = asyncio.Event()

    async def endless():
        try:
            step = 0
            while True:
                await asyncio.sleep(0.001)
                yield [_delta(0, step)]
                step += 1
        finally:
            closed.set()

    async def consume():
        async for _ in coalesce(endless(), interval_s=0.01):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(closed.wait(), 1)


async def test_a_source_cut_by_a_cancellation_not_ours_reaches_the_consumer():
    async def cut():
        yield [_delta(0, 0)]
        raise asyncio.CancelledError  # e.g. the engine's stream torn down on its side

    seen = []

    async def consume() -> None:
        async for batch in coalesce(cut(), interval_s=0.05):
            seen.extend(d.text for d in batch)

    with pytest.raises(asyncio.CancelledError):  # before: the consumer waited forever
        await asyncio.wait_for(consume(), timeout=5)  # (a TimeoutError here is the old hang)
    assert seen == ["t0"]
