"""Faults on the real stack: a model replica killed mid-traffic, and an engine that dies
inside a live replica.

The replica's process (found by asking the replica actor, tests/e2e/processes.py) is
SIGKILLed while both models take mixed streamed and whole requests, with and without
images. Every request must end, within a bounded time, either answered or with a clear
error: a stream with one `{"error": ...}` event and then `data: [DONE]`, a whole request
with an OpenAI-shaped 503. Serve must start a replacement that answers, the killed
replica's engine core must not outlive it, and the other model must not notice. Then the
vLLM engine-core process of the (new) replica is killed: the request it was serving ends
with an error event, the next ones get a 503 at once, the replica's health check
(`ModelServer.check_health`, vLLM's `AsyncLLM.check_health`) reports it, and Serve replaces
the replica.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest

from tests.e2e.processes import Pid, Replica, deployment_of, engine_cores, replicas
from tests.e2e.side_apps import wait_for
from tests.e2e.traffic import (
    BROKEN, HTTP_ERROR, OK, STREAM_ERROR, Outcome, chat_body, image_pool, record, run_load, send_chat, tally,
)

pytestmark = pytest.mark.e2e

MODEL = "tiny-qwen2.5-vl"  # the model whose processes are killed
OTHER = "tiny-qwen2-vl"  # served beside it throughout
WORKERS = 8  # concurrent request loops, half per model
MAX_TOKENS = 32
REQUEST_TIMEOUT_S = 420  # all in, per request: longer is a hang (a replacement starts in 1-4 min)
RECOVERY_TIMEOUT_S = 480
ORPHAN_TIMEOUT_S = 30  # Ray's subreaper reaps a dead worker's children within ~10 s
UNAVAILABLE = "model_unavailable"
IMAGES = image_pool(8)


def _mixed(worker: int, n: int) -> dict:
    """Even workers ask MODEL, odd ones OTHER; stream and whole alternate; two in three carry an image."""
    model = MODEL if worker % 2 == 0 else OTHER
    image = IMAGES[(worker + n) % len(IMAGES)] if n % 3 else None
    return chat_body(model, stream=(worker // 2 + n) % 2 == 0, image=image, max_tokens=MAX_TOKENS)


def _the_replica(deployment: str) -> Replica:
    """The one running replica of `deployment` (waiting for it if a restart is under way)."""
    wait_for(lambda: len(replicas(deployment)) == 1, RECOVERY_TIMEOUT_S, f"one replica of {deployment}")
    (replica,) = replicas(deployment)
    return replica


def _replaced(deployment: str, old: Replica) -> bool:
    return any(r.actor != old.actor for r in replicas(deployment))


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=30).status_code == 200
    except httpx.HTTPError:
        return False


def _reap(processes: list[Pid]) -> list[int]:
    """Wait for `processes` to exit; kill (and return the pids of) those still alive after
    ORPHAN_TIMEOUT_S, so a failing run leaves no engine behind on the machine."""
    deadline = time.monotonic() + ORPHAN_TIMEOUT_S
    while any(p.alive() for p in processes) and time.monotonic() < deadline:
        time.sleep(0.5)
    survivors = [p.pid for p in processes if p.alive()]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    return survivors


def _figures(outcomes: list[Outcome], killed_at: float) -> dict:
    return {
        "requests": tally(outcomes),
        "longest_request_s": round(max(o.ended - o.started for o in outcomes), 1),
        "recovered_after_s": round(
            min(o.ended for o in outcomes if o.model == MODEL and o.kind == OK and o.started > killed_at) - killed_at, 1
        ),
    }


def test_a_replica_killed_under_load_fails_its_requests_cleanly_and_comes_back(serve_url: str):
    deployment, other = deployment_of(MODEL), deployment_of(OTHER)
    victim, bystander = _the_replica(deployment), _the_replica(other)
    victim_cores = engine_cores(victim.pid)
    assert len(victim_cores) == 1, "the replica's engine core was not found"
    outcomes: list[Outcome] = []

    def recovered(since: float) -> bool:
        return any(o.model == MODEL and o.kind == OK and o.started > since for o in outcomes)

    async def scenario() -> float:
        stop = asyncio.Event()
        load = asyncio.create_task(run_load(serve_url, _mixed, WORKERS, stop, REQUEST_TIMEOUT_S, outcomes))
        await asyncio.sleep(8)  # requests of both models in flight
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        try:
            await asyncio.to_thread(wait_for, lambda: recovered(killed_at), RECOVERY_TIMEOUT_S, "an answer from the new replica")
            await asyncio.sleep(3)  # some traffic on the new replica
        finally:
            stop.set()
            await load
        return killed_at

    killed_at = asyncio.run(scenario())
    orphans = _reap(victim_cores)
    record("faults_replica_killed", _figures(outcomes, killed_at))

    broken = [o for o in outcomes if o.kind == BROKEN]
    assert not broken, f"{len(broken)} requests neither answered nor failed cleanly, e.g. {broken[:3]}"
    assert all(o.kind == OK for o in outcomes if o.model == OTHER), tally(outcomes)
    errors = [o for o in outcomes if o.kind != OK]
    assert errors, "the kill hit no request in flight"
    assert {(o.kind, o.code) for o in errors} <= {(STREAM_ERROR, UNAVAILABLE), (HTTP_ERROR, UNAVAILABLE)}, tally(outcomes)
    assert all(o.status == 503 for o in errors if o.kind == HTTP_ERROR)
    assert _replaced(deployment, victim)
    assert _the_replica(other) == bystander  # the other model's replica never restarted
    assert not orphans, f"the killed replica's engine core outlived it: {orphans}"
    assert _healthy(serve_url)


def test_an_engine_that_dies_inside_its_replica_is_detected_and_replaced(serve_url: str):
    deployment = deployment_of(MODEL)
    replica = _the_replica(deployment)
    wait_for(lambda: _healthy(serve_url), RECOVERY_TIMEOUT_S, "the app healthy")
    (core,) = engine_cores(replica.pid)

    async def scenario() -> tuple[Outcome, Outcome, int, Outcome, float]:
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
            long = chat_body(MODEL, stream=True, image=IMAGES[0], max_tokens=3000)  # seconds of decoding
            cut = asyncio.create_task(send_chat(http, serve_url, long, REQUEST_TIMEOUT_S))
            await asyncio.sleep(3)
            os.kill(core.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            cut_outcome = await cut
            refused = await send_chat(http, serve_url, chat_body(MODEL, False, None, 4), 30)
            health = (await http.get(f"{serve_url}/health")).status_code
            other = await send_chat(http, serve_url, chat_body(OTHER, True, IMAGES[1], 8), 60)
        return cut_outcome, refused, health, other, killed_at

    cut, refused, health, other, killed_at = asyncio.run(scenario())
    assert (cut.kind, cut.code) == (STREAM_ERROR, UNAVAILABLE), cut
    assert cut.ended - killed_at < 10, "the stream was not ended promptly"
    assert (refused.kind, refused.status, refused.code) == (HTTP_ERROR, 503, UNAVAILABLE), refused
    assert health == 503  # /health asks every engine
    assert other.kind == OK

    wait_for(lambda: _replaced(deployment, replica), RECOVERY_TIMEOUT_S, "Serve to replace the replica")
    replaced_at = time.monotonic()
    wait_for(lambda: _healthy(serve_url), RECOVERY_TIMEOUT_S, "the app healthy again")

    async def answer() -> Outcome:
        async with httpx.AsyncClient(timeout=60) as http:
            return await send_chat(http, serve_url, chat_body(MODEL, True, IMAGES[2], 8), 60)

    assert asyncio.run(answer()).kind == OK
    record("faults_engine_killed", {
        "stream_ended_after_s": round(cut.ended - killed_at, 1),
        "replica_replaced_after_s": round(replaced_at - killed_at, 1),
        "healthy_again_after_s": round(time.monotonic() - killed_at, 1),
    })
