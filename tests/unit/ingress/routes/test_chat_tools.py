"""Tools on `/v1/chat/completions` over fake engines: constrained named calls, auto, streaming,
families without a tool template, and earlier calls rendered back into the prompt."""

from __future__ import annotations

import openai
import pytest

from tests.fakes import FAKE_WORDS_PER_ANSWER

EXPECTED_TEXT = "".join(f"word{i} " for i in range(FAKE_WORDS_PER_ANSWER))


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


HELLO = [{"role": "user", "content": "Weather in Paris?"}]


async def test_named_tool_choice_constrains_output_and_returns_tool_calls(client, servers):
    completion = await client.chat.completions.create(
        model="tiny-qwen2.5-vl", messages=HELLO, tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    (choice,) = completion.choices
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and call.id
    assert choice.message.content is None
    engine = servers["tiny-qwen2.5-vl"]._engine
    assert engine.params[-1].structured_outputs.json is not None  # generation was constrained
    assert "get_weather" in engine.prompts[-1]["prompt"]  # the template rendered the tools


async def test_auto_tool_choice_without_a_call_is_plain_content(client):
    completion = await client.chat.completions.create(model="tiny-qwen2.5-vl", messages=HELLO, tools=[WEATHER_TOOL])
    assert completion.choices[0].message.content == EXPECTED_TEXT
    assert not completion.choices[0].message.tool_calls
    assert completion.choices[0].finish_reason == "stop"


async def test_tool_calls_stream_as_openai_chunks(client):
    stream = await client.chat.completions.create(
        model="tiny-qwen2.5-vl", messages=HELLO, tools=[WEATHER_TOOL], stream=True,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    chunks = [c async for c in stream]
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert [tc.function.name for tc in calls] == ["get_weather"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_tools_for_a_family_without_a_tool_template_is_400(client):
    with pytest.raises(openai.BadRequestError) as error:
        await client.chat.completions.create(model="tiny-qwen2-vl", messages=HELLO, tools=[WEATHER_TOOL])
    assert error.value.body["param"] == "tools"


async def test_a_tool_result_conversation_renders_calls_and_responses(client, servers):
    messages = [
        *HELLO,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
    ]
    answer = await client.chat.completions.create(model="tiny-qwen2.5-vl", messages=messages, tools=[WEATHER_TOOL])
    assert answer.choices[0].message.content == EXPECTED_TEXT
    prompt = servers["tiny-qwen2.5-vl"]._engine.prompts[-1]["prompt"]
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in prompt
    assert "<tool_response>\nsunny, 21 C\n</tool_response>" in prompt
