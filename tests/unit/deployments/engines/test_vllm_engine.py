"""deployments/engines/vllm_engine.py: vLLM's finish reasons as the OpenAI types allow them."""

from __future__ import annotations

import pytest
from openai.types.chat.chat_completion import Choice
from vllm.v1.engine import FINISH_REASON_STRINGS

from deployments.engines.vllm_engine import openai_finish_reason
from deployments.errors import EngineUnavailableError, ServeError


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
