"""Schema-driven fuzzing of the running app with schemathesis: no 5xx, no hang.

schemathesis reads the app's own `/openapi.json` (vLLM's request models for chat and
completions) and generates, with Hypothesis, bodies that fit the schema and bodies that
break it; each is sent to the real app (real Serve, real vLLM). Every answer must be a
non-5xx within REQUEST_TIMEOUT_S. All examples run and every failure is listed at the end
(no shrinking: a shrink re-sends requests for minutes). Generation stays bounded by
QVS_FUZZ_EXAMPLES per mode and operation; completion lengths are capped at MAX_TOKENS (an
absent one is set), so an example that reaches the engine takes a second, not a minute.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("QVS_FUZZ_EXAMPLES", "40"))
REQUEST_TIMEOUT_S = 60
MAX_TOKENS = 8
LENGTH_FIELDS = ("max_tokens", "max_completion_tokens")
OPERATIONS = [  # (method, path, modes): any string is a valid model name, so no negative ones
    ("POST", "/v1/chat/completions", (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)),
    ("POST", "/v1/completions", (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)),
    ("GET", "/v1/models", (GenerationMode.POSITIVE,)),
    ("GET", "/v1/models/{model}", (GenerationMode.POSITIVE,)),
]


@pytest.fixture(scope="module")
def api_schema(serve_url: str) -> Iterator[Any]:
    yield schemathesis.openapi.from_url(f"{serve_url}/openapi.json")


def bounded_length(body: Any) -> Any:
    """`body` with its completion length capped at MAX_TOKENS (set when absent)."""
    if not isinstance(body, dict):
        return body
    if not any(field in body for field in LENGTH_FIELDS):
        body["max_tokens"] = MAX_TOKENS
    for field in LENGTH_FIELDS:
        value = body.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_TOKENS:
            body[field] = MAX_TOKENS
    return body


@pytest.mark.parametrize(("method", "path", "modes"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_no_server_error_and_no_hang(api_schema: Any, serve_url: str, method: str, path: str, modes: tuple) -> None:
    operation = api_schema[path][method]
    failures: list[str] = []
    sent = 0

    for mode in modes:
        @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def send(case: Any) -> None:
            nonlocal sent
            case.body = bounded_length(case.body)
            sent += 1
            try:
                response = case.call(base_url=serve_url, timeout=REQUEST_TIMEOUT_S)
            except requests.RequestException as exc:
                failures.append(f"{mode}: no answer ({type(exc).__name__}) to {str(case.body)[:300]}")
                return
            if response.status_code >= 500:
                failures.append(f"{mode}: {response.status_code} {response.text[:200]} to {str(case.body)[:300]}")

        send()

    assert sent >= len(modes), "nothing was generated"
    assert not failures, f"{len(failures)} of {sent} requests failed:\n" + "\n".join(failures[:10])
