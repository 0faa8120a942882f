"""The OpenAI surface on the real stack (Ray Serve + vLLM CPU engine + tiny models), driven
by the official `openai` client (sync, async, streaming) and LangChain's `ChatOpenAI`.

The tiny models' weights are random: assertions are about the protocol and about what the
engine must guarantee (determinism, stops, lengths, schemas), never about meaning.
"""

from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pytest

from tests.helpers import image_data_url, image_part

pytestmark = pytest.mark.e2e

VL = "tiny-qwen2-vl"
VL25 = "tiny-qwen2.5-vl"  # its chat template renders tools
ASK = [{"role": "user", "content": "Say something."}]
UNIT_TOOL = {
    "type": "function",
    "function": {
        "name": "set_unit",
        "description": "Choose the temperature unit",
        "parameters": {
            "type": "object",
            "properties": {"unit": {"enum": ["celsius", "fahrenheit"]}, "loud": {"type": "boolean"}},
            "required": ["unit", "loud"],
            "additionalProperties": False,
        },
    },
}


def test_same_seed_gives_same_text_and_another_seed_differs(client: openai.OpenAI):
    def sample(seed: int) -> str:
        answer = client.chat.completions.create(model=VL, messages=ASK, temperature=1.0, seed=seed, max_tokens=16)
        return answer.choices[0].message.content

    first = sample(1234)
    assert sample(1234) == first
    assert sample(4321) != first


def test_n_gives_that_many_choices(client: openai.OpenAI):
    answer = client.chat.completions.create(
        model=VL, messages=ASK, n=2, temperature=1.0, max_tokens=6, extra_body={"ignore_eos": True}
    )
    assert [c.index for c in answer.choices] == [0, 1]
    assert [c.finish_reason for c in answer.choices] == ["length", "length"]
    assert answer.usage.completion_tokens == 2 * 6


def test_stop_string_cuts_the_text(client: openai.OpenAI):
    text = client.chat.completions.create(model=VL, messages=ASK, temperature=0, max_tokens=40).choices[0].message.content
    start = len(text) // 2
    stop = text[start:start + 2]
    cut = client.chat.completions.create(model=VL, messages=ASK, temperature=0, max_tokens=40, stop=[stop])
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_max_tokens_gives_finish_reason_length(client: openai.OpenAI):
    answer = client.chat.completions.create(
        model=VL25, messages=ASK, max_completion_tokens=3, extra_body={"ignore_eos": True}
    )
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage.completion_tokens == 3


def test_logprobs_have_the_openai_shape(client: openai.OpenAI):
    answer = client.chat.completions.create(model=VL, messages=ASK, max_tokens=5, logprobs=True, top_logprobs=3)
    content = answer.choices[0].logprobs.content
    assert len(content) == answer.usage.completion_tokens
    assert all(len(entry.top_logprobs) == 3 and entry.logprob <= 0 for entry in content)
    # a token holding part of a UTF-8 character decodes to nothing on its own, while the
    # whole text shows U+FFFD for a character the random model never completed
    assert "".join(entry.token for entry in content) == answer.choices[0].message.content.replace("\ufffd", "")


def test_json_schema_output_parses_and_validates(client: openai.OpenAI):
    schema = {
        "type": "object",
        "properties": {"color": {"enum": ["red", "green", "blue"]}, "ok": {"type": "boolean"}},
        "required": ["color", "ok"],
        "additionalProperties": False,
    }
    answer = client.chat.completions.create(
        model=VL, messages=ASK, max_tokens=60,
        response_format={"type": "json_schema", "json_schema": {"name": "pick", "schema": schema}},
    )
    jsonschema.validate(json.loads(answer.choices[0].message.content), schema)


def test_named_tool_choice_returns_a_valid_tool_call(client: openai.OpenAI):
    answer = client.chat.completions.create(
        model=VL25, messages=ASK, tools=[UNIT_TOOL], max_tokens=60,
        tool_choice={"type": "function", "function": {"name": "set_unit"}},
    )
    (choice,) = answer.choices
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "set_unit" and call.id
    jsonschema.validate(json.loads(call.function.arguments), UNIT_TOOL["function"]["parameters"])


async def test_required_tool_choice_streams_tool_calls_async(async_client: openai.AsyncOpenAI):
    stream = await async_client.chat.completions.create(
        model=VL25, messages=ASK, tools=[UNIT_TOOL], tool_choice="required", max_tokens=120, stream=True,
    )
    chunks = [chunk async for chunk in stream]
    calls = [call for c in chunks if c.choices for call in (c.choices[0].delta.tool_calls or [])]
    assert calls and all(call.function.name == "set_unit" for call in calls)
    for call in calls:
        jsonschema.validate(json.loads(call.function.arguments), UNIT_TOOL["function"]["parameters"])
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_tools_on_a_model_without_a_tool_template_are_refused(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model=VL, messages=ASK, tools=[UNIT_TOOL])
    assert error.value.body["param"] == "tools"


def test_unsupported_parameter_is_400_naming_it(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model=VL, messages=ASK, extra_body={"not_a_field": 1})
    assert error.value.body["param"] == "not_a_field"
    assert client.chat.completions.create(model=VL, messages=ASK, max_tokens=2).choices  # still serving


def test_request_id_is_honoured(serve_url: str):
    body = {"model": VL, "messages": ASK, "max_tokens": 2}
    response = httpx.post(f"{serve_url}/v1/chat/completions", json=body, headers={"x-request-id": "trace-42"}, timeout=60)
    assert response.headers["x-request-id"] == "trace-42"
    assert response.json()["id"] == "chatcmpl-trace-42"


def test_text_completions_whole_and_streamed(client: openai.OpenAI):
    whole = client.completions.create(model=VL25, prompt="Once upon a time", max_tokens=8, temperature=0)
    assert whole.object == "text_completion" and whole.usage.completion_tokens > 0
    stream = client.completions.create(
        model=VL25, prompt="Once upon a time", max_tokens=8, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens
    several = client.completions.create(model=VL25, prompt=["a", "b c"], max_tokens=2, temperature=0)
    assert [c.index for c in several.choices] == [0, 1]


def test_seed_endpoints_answer_in_the_seeds_format(serve_url: str):
    image = {"type": "image", "image": image_data_url(56, 56, seed=5)}
    messages = [{"role": "user", "content": [image, {"type": "text", "text": "What is this?"}]}]
    generated = httpx.post(f"{serve_url}/generate", json={"messages": messages, "max_tokens": 4}, timeout=60)
    assert generated.status_code == 200, generated.text
    assert set(generated.json()) == {"response"} and isinstance(generated.json()["response"], str)
    prompted = httpx.post(f"{serve_url}/", json={"prompt": "Hello", "model": VL25, "max_tokens": 4}, timeout=60)
    assert prompted.status_code == 200, prompted.text
    answer = prompted.json()
    assert set(answer) == {"response", "status", "time"} and answer["status"] == 200


def test_openapi_describes_the_endpoints(serve_url: str):
    paths = httpx.get(f"{serve_url}/openapi.json", timeout=30).json()["paths"]
    for path in ("/v1/chat/completions", "/v1/completions", "/generate", "/"):
        assert "requestBody" in paths[path]["post"]


def test_langchain_chat_openai_with_an_image(serve_url: str):
    from langchain_core.messages import HumanMessage
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(base_url=f"{serve_url}/v1", api_key="unused", model=VL, max_tokens=6, temperature=0, max_retries=0)
    message = HumanMessage(content=[{"type": "text", "text": "Describe."}, image_part(image_data_url(64, 64, seed=9))])
    answer = chat.invoke([message])
    assert isinstance(answer.content, str) and answer.usage_metadata["output_tokens"] > 0
    assert answer.usage_metadata["input_tokens"] > 4  # the image's tokens are counted
    streamed = "".join(chunk.content for chunk in chat.stream([message]))
    assert streamed == answer.content


def test_grounding_boxes_come_back_normalized_to_the_image(client: openai.OpenAI):
    """Structured outputs make the random model write Qwen2.5-VL's box JSON; the answer's
    `grounding` holds those boxes in 0..1 of the image (here 112 wide, 56 high as sent, a
    size smart_resize keeps)."""
    corners = [{"enum": [0, 28]}, {"enum": [0, 14]}, {"enum": [84, 112]}, {"enum": [42, 56, 70]}]  # never empty
    schema = {
        "type": "array", "minItems": 1, "maxItems": 3,
        "items": {
            "type": "object",
            "properties": {
                "bbox_2d": {"type": "array", "prefixItems": corners, "items": False, "minItems": 4},
                "label": {"enum": ["cat", "dog"]},
            },
            "required": ["bbox_2d", "label"], "additionalProperties": False,
        },
    }
    answer = client.chat.completions.create(
        model=VL25, max_tokens=200, temperature=1.0, seed=7,
        messages=[{"role": "user", "content": [image_part(image_data_url(112, 56, seed=2)), {"type": "text", "text": "Find them."}]}],
        response_format={"type": "json_schema", "json_schema": {"name": "boxes", "schema": schema}},
    )
    message = answer.choices[0].message
    expected = []
    for item in json.loads(message.content):
        x1, y1, x2, y2 = item["bbox_2d"]
        box = [x1 / 112, min(y1 / 56, 1.0), x2 / 112, min(y2 / 56, 1.0)]
        if box[2] > box[0] and box[3] > box[1]:
            expected.append({"label": item["label"], "box": [round(v, 4) for v in box], "image_index": 0})
    assert expected and (message.model_extra or {}).get("grounding") == expected


@pytest.mark.parametrize(
    "change,param",
    [
        ({"messages": [{"role": "user", "content": "word " * 6000}]}, "messages"),
        ({"n": 0}, "n"),
        ({"top_p": 0}, "top_p"),
    ],
    ids=["prompt-too-long", "n-zero", "top-p-zero"],
)
def test_engine_refusals_are_400_naming_the_field(client: openai.OpenAI, change: dict, param: str):
    body = {"model": VL, "messages": ASK, "max_tokens": 2, **change}
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(**body)
    assert (error.value.body.get("param") or "").startswith(param), error.value.body
    if "messages" in change:
        assert error.value.body["code"] == "context_length_exceeded"
    assert client.chat.completions.create(model=VL, messages=ASK, max_tokens=2).choices  # still serving


def test_max_tokens_beyond_the_room_left_is_capped_as_vllm_serve_does(client: openai.OpenAI):
    """Within max_model_len but past what the prompt leaves: the answer stops at the context
    (beyond max_model_len is vLLM's 400: test_hostile_requests.py)."""
    def prompt_tokens(words: int) -> int:
        ask = [{"role": "user", "content": "word " * words}]
        return client.chat.completions.create(model=VL, messages=ask, max_tokens=1).usage.prompt_tokens

    per_word = (prompt_tokens(200) - prompt_tokens(100)) / 100
    words = int((4096 - 64 - prompt_tokens(0)) / per_word)  # leaves a few dozen tokens of context
    long_prompt = [{"role": "user", "content": "word " * words}]
    answer = client.chat.completions.create(
        model=VL, messages=long_prompt, max_tokens=4000, extra_body={"ignore_eos": True}
    )
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage.total_tokens == 4096  # the tiny models' max_model_len
