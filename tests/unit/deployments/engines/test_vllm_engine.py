"""deployments/engines/vllm_engine.py: vLLM's finish reasons as the OpenAI types allow them, and
its failures (a dead engine core) as errors to retry, over a fake `AsyncLLM` (no engine core)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from openai.types.chat.chat_completion import Choice
from vllm import SamplingParams
from vllm.v1.engine import FINISH_REASON_STRINGS
from vllm.v1.engine.exceptions import EngineDeadError

from deployments.engines.vllm_engine import VLLMEngine, openai_finish_reason
from deployments.errors import MODEL_UNAVAILABLE, EngineUnavailableError, ServeError


def test_every_vllm_finish_reason_is_an_openai_one_or_an_error():
    openai_reasons = set(Choice.model_fields["finish_reason"].annotation.__args__)
    for reason in FINISH_REASON_STRINGS:  # fails when vLLM adds one we do not map
        try:
            mapped = openai_finish_reason(reason)
        except ServeError:
            continue
        assert mapped in openai_reasons, reason
    assert openai_finish_reason(None) is None


def test_repetition_is_a_stop():
    assert openai_finish_reason("repetition") == "stop"


@pytest.mark.parametrize(("reason", "status", "code"), [("error", 500, "generation_error"), ("abort", 503, "aborted")])
def test_error_and_abort_are_errors_for_the_client(reason, status, code):
    with pytest.raises(ServeError) as raised:
        openai_finish_reason(reason)
    assert raised.value.status_code == status and raised.value.code == code
    assert isinstance(raised.value, EngineUnavailableError) == (status == 503)


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
