"""Tool calls read from a delta stream (deployments/tools.py), on scripted deltas and the
tiny Qwen2.5-VL tokenizer (vLLM's hermes parser needs its `<tool_call>` tokens)."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

from deployments.calls import Delta
from deployments.checkpoints.tiny import resolve_tiny
from deployments.tools import with_tool_calls

TOOL = {"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture(scope="module")
def tokenizer(tiny_cache):
    return AutoTokenizer.from_pretrained(str(resolve_tiny("tiny://qwen2.5-vl")))


def _request(**extra) -> ChatCompletionRequest:  # noqa: ANN003
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [TOOL], **extra}
    )


async def _run(pieces: list[str], request: ChatCompletionRequest, tokenizer) -> list[Delta]:  # noqa: ANN001
    async def stream():
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            yield [Delta(index=0, text=piece, completion_tokens=i + 1, prompt_tokens=3,
                         finish_reason="stop" if last else None)]

    return [delta async for batch in with_tool_calls(stream(), request, tokenizer) for delta in batch]


async def test_auto_streams_content_before_the_call_and_parses_the_call(tokenizer):
    call = '<tool_call>\n{"name": "ping", "arguments": {"x": 1}}\n</tool_call>'
    out = await _run(["Let me ", "check.", " <tool", call[len("<tool"):]], _request(), tokenizer)
    texts = [d.text for d in out]
    assert texts[:2] == ["Let me ", "check."]  # streamed as they came
    assert "".join(texts) == "Let me check. "  # the call itself is never sent as content
    last = out[-1]
    assert last.finish_reason == "tool_calls" and last.completion_tokens == 4
    (parsed,) = last.tool_calls
    assert parsed["function"]["name"] == "ping" and json.loads(parsed["function"]["arguments"]) == {"x": 1}


async def test_auto_without_a_call_streams_everything_including_a_lookalike(tokenizer):
    out = await _run(["a <to", "ol> b", " end"], _request(), tokenizer)
    assert "".join(d.text for d in out) == "a <tool> b end"
    assert out[0].text == "a "  # "<to" might begin a call: held until it cannot
    assert out[-1].finish_reason == "stop" and out[-1].tool_calls is None


async def test_named_choice_is_held_whole_and_becomes_the_call(tokenizer):
    request = _request(tool_choice={"type": "function", "function": {"name": "ping"}})
    out = await _run(['{"x"', ": 2}"], request, tokenizer)
    (only,) = out
    assert only.text == "" and only.finish_reason == "tool_calls"
    assert only.tool_calls[0]["function"]["arguments"] == '{"x": 2}'
