"""A bounded soak on the real stack: 64 concurrent clients of mixed image, text, streamed and
whole chat requests on both models, for QVS_SOAK_SECONDS (60 here and in CI; the recorded
run in docs/reliability.md used 300).

What would show a slow failure: an error other than backpressure (503 `overloaded`), a
request that never ends, resident memory of the ingress or a model replica still growing
after warm-up (leaked requests, streams, media), or engine requests left running once the
clients are gone (vLLM's `vllm:num_requests_running`, exported by Ray as
`ray_vllm_num_requests_running`). The images
come from a fixed pool, so the media caches (ours, vLLM's) fill during warm-up; after it,
growth is what the requests leave behind.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from tests.e2e.processes import APP, INGRESS, deployment_of, engine_cores, gauge_by_worker, replicas, rss_kib
from tests.e2e.side_apps import wait_for
from tests.e2e.traffic import BROKEN, HTTP_ERROR, OK, Outcome, chat_body, image_pool, record, run_load, tally

pytestmark = pytest.mark.e2e

MODELS = ("tiny-qwen2-vl", "tiny-qwen2.5-vl")
CLIENTS = 64
SOAK_S = float(os.environ.get("QVS_SOAK_SECONDS", "60"))
WARM_UP_S = 20
MAX_TOKENS = 16
REQUEST_TIMEOUT_S = 120
RSS_GROWTH_LIMIT = 0.05
IMAGES = image_pool(32)
RUNNING_GAUGE = "ray_vllm_num_requests_running"


def _mixed(client: int, n: int) -> dict:
    """Models alternate per client; stream and whole alternate; two in three carry an image."""
    image = IMAGES[(client + n) % len(IMAGES)] if (client + n) % 3 else None
    return chat_body(MODELS[client % 2], stream=(client // 2 + n) % 2 == 0, image=image, max_tokens=MAX_TOKENS)


def _watched_pids() -> dict[str, int]:
    """The ingress and model replicas (and each replica's engine core), by role."""
    pids = {}
    for role, deployment in [("ingress", INGRESS)] + [(m, deployment_of(m)) for m in MODELS]:
        (replica,) = replicas(deployment, APP)
        pids[role] = replica.pid
        if role != "ingress":  # recorded beside the replica, not held to the limit
            (core,) = engine_cores(replica.pid)
            pids[f"{role} engine core"] = core.pid
    return pids


def _running_requests(metrics_port: int) -> dict[str, float]:
    """The engine's running requests, per model, as its live replica last reported them."""
    running = {}
    for model in MODELS:
        (replica,) = replicas(deployment_of(model), APP)
        by_worker = gauge_by_worker(metrics_port, RUNNING_GAUGE, model)
        worker = replica.worker_id if replica.worker_id in by_worker else ""  # "": no WorkerId label
        assert worker in by_worker, f"no {RUNNING_GAUGE} of {model}'s replica: {by_worker}"
        running[model] = by_worker[worker]
    return running


def test_soak_answers_everything_and_leaks_nothing(serve_url: str, metrics_export_port: int):
    pids = _watched_pids()
    outcomes: list[Outcome] = []

    async def soak() -> tuple[dict[str, int], dict[str, int]]:
        stop = asyncio.Event()
        load = asyncio.create_task(run_load(serve_url, _mixed, CLIENTS, stop, REQUEST_TIMEOUT_S, outcomes))
        try:
            await asyncio.sleep(WARM_UP_S)
            warm = {role: rss_kib(pid) for role, pid in pids.items()}
            await asyncio.sleep(SOAK_S)
            end = {role: rss_kib(pid) for role, pid in pids.items()}
        finally:
            stop.set()
            await load
        return warm, end

    started = time.monotonic()
    warm, end = asyncio.run(soak())
    elapsed = time.monotonic() - started
    # the gauge is exported every second; give the engines' last steps time to land
    wait_for(lambda: not any(_running_requests(metrics_export_port).values()), 15, "engines idle")
    running = _running_requests(metrics_export_port)

    growth = {role: (end[role] - warm[role]) / warm[role] for role in pids}
    record("soak", {
        "clients": CLIENTS, "soak_s": SOAK_S, "warm_up_s": WARM_UP_S, "elapsed_s": round(elapsed),
        "requests": tally(outcomes), "requests_per_s": round(len(outcomes) / elapsed, 1),
        "rss_mib_after_warm_up": {role: round(kib / 1024) for role, kib in warm.items()},
        "rss_mib_at_end": {role: round(kib / 1024) for role, kib in end.items()},
        "rss_growth_pct": {role: round(100 * g, 2) for role, g in growth.items()},
        "engine_requests_running_after": running,
        "slowest_request_s": round(max(o.ended - o.started for o in outcomes), 1),
    })
    backpressure = [o for o in outcomes if o.kind == HTTP_ERROR and o.status == 503 and o.code == "overloaded"]
    failed = [o for o in outcomes if o.kind != OK and o not in backpressure]
    assert not failed, f"{len(failed)} of {len(outcomes)} requests failed, e.g. {failed[:3]}"
    assert len(outcomes) - len(backpressure) >= CLIENTS, "the soak answered fewer requests than it has clients"
    assert not [o for o in outcomes if o.kind == BROKEN]
    grown = {role: g for role, g in growth.items() if "engine core" not in role and g >= RSS_GROWTH_LIMIT}
    assert not grown, f"resident memory grew after warm-up: {grown}"
    assert running == {model: 0 for model in MODELS}
