"""The vLLM engine wrapper's failure translation, over a fake `AsyncLLM` (no engine core)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from vllm import SamplingParams
from vllm.v1.engine.exceptions import EngineDeadError

from deployments.engines.vllm_engine import VLLMEngine
from deployments.errors import MODEL_UNAVAILABLE, EngineUnavailableError


class FakeDeadAsyncLLM:
    """Stands in for an `AsyncLLM` whose engine-core process has died."""

    async def generate(self, prompt: object, params: object, request_id: str) -> AsyncIterator[object]:
        raise EngineDeadError()
        yield  # an async generator, like AsyncLLM.generate

    async def check_health(self) -> None:
        raise EngineDeadError()


@pytest.fixture
def dead_engine() -> VLLMEngine:
    engine = object.__new__(VLLMEngine)  # no engine arguments: only the running engine is faked
    engine._llm = FakeDeadAsyncLLM()  # type: ignore[assignment]
    return engine


async def test_requests_to_a_dead_engine_fail_as_a_503_to_retry(dead_engine: VLLMEngine):
    with pytest.raises(EngineUnavailableError) as caught:
        async for _ in dead_engine.generate({"prompt": "hi"}, SamplingParams(max_tokens=1), "r1"):
            pass
    assert (caught.value.status_code, caught.value.code) == (503, MODEL_UNAVAILABLE)


async def test_the_health_check_reports_a_dead_engine(dead_engine: VLLMEngine):
    with pytest.raises(EngineDeadError):
        await dead_engine.check_health()
