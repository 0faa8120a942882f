"""The wider OpenAI surface over fake engines (no Ray, no vLLM core): tools, text
completions, the seeds' endpoints, API keys and the OpenAPI document."""

from __future__ import annotations

import httpx
import openai
import pytest

from deployments.config import AppConfig
from ingress.api import create_api
from ingress.router import ModelRouter
from tests.fakes import FAKE_WORDS_PER_ANSWER
from tests.unit.conftest import BASE_URL, unit_config

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


@pytest.mark.parametrize("field,value", [("functions", [{"name": "f"}]), ("echo", True), ("bogus_field", 1)])
async def test_unsupported_parameters_are_400_naming_them(http, field, value):
    body = {"model": "tiny-qwen2-vl", "messages": HELLO, field: value}
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == field


async def test_text_completion_whole_and_streamed(client, servers):
    whole = await client.completions.create(model="tiny-qwen2", prompt="Once upon a time", max_tokens=50)
    assert whole.object == "text_completion" and whole.id.startswith("cmpl-")
    assert whole.choices[0].text == EXPECTED_TEXT and whole.choices[0].finish_reason == "stop"
    assert servers["tiny-qwen2"]._engine.prompts[-1]["prompt"] == "Once upon a time"  # no chat template
    assert whole.usage.prompt_tokens == 4
    stream = await client.completions.create(
        model="tiny-qwen2", prompt="Once upon a time", max_tokens=50, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].usage == whole.usage


async def test_text_completion_of_several_prompts_numbers_choices_by_prompt(client):
    answer = await client.completions.create(model="tiny-qwen2", prompt=["one two", "three four five"], n=2, max_tokens=3)
    assert [c.index for c in answer.choices] == [0, 1, 2, 3]
    assert all(c.finish_reason == "length" for c in answer.choices)
    assert answer.usage.prompt_tokens == 2 + 3
    assert answer.usage.completion_tokens == 4 * 3


async def test_text_completion_logprobs_in_the_legacy_shape(client):
    answer = await client.completions.create(model="tiny-qwen2", prompt="hi", logprobs=2, max_tokens=2)
    logprobs = answer.choices[0].logprobs
    assert logprobs.tokens == ["word0 ", "word1 "]
    assert logprobs.text_offset == [0, len("word0 ")]
    assert all(len(top) == 2 for top in logprobs.top_logprobs)


async def test_text_completion_of_token_ids_is_400(http):
    response = await http.post("/v1/completions", json={"model": "tiny-qwen2", "prompt": [1, 2, 3]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "prompt"


async def test_seed_generate_takes_qwen_parts(http, servers):
    from tests.helpers import image_data_url

    body = {
        "model": "tiny-qwen2.5-vl",
        "messages": [{"role": "user", "content": [
            {"type": "image", "image": image_data_url()}, {"type": "text", "text": "Describe."}]}],
    }
    response = await http.post("/generate", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"response": EXPECTED_TEXT}
    assert len(servers["tiny-qwen2.5-vl"]._engine.prompts[-1]["multi_modal_data"]["image"]) == 1


async def test_seed_prompt_answers_in_the_seed_format_on_the_default_model(http, servers):
    response = await http.post("/", json={"prompt": "Hello", "max_tokens": 2})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["response"] == "word0 word1 " and answer["status"] == "success"
    assert isinstance(answer["time"], float) and answer["time"] >= 0
    assert "Hello" in servers["tiny-qwen2-vl"]._engine.prompts[-1]["prompt"]


@pytest.mark.parametrize("path,body,param", [("/", {"text": "x"}, "prompt"), ("/generate", {}, "messages"),
                                             ("/", {"prompt": "x", "stream": True}, "stream")])
async def test_seed_endpoints_refuse_bad_bodies_naming_the_field(http, path, body, param):
    response = await http.post(path, json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


@pytest.fixture
async def keyed_http(router: ModelRouter, monkeypatch):
    monkeypatch.setenv("QWEN_VL_SERVE_API_KEYS", "from-env, other")
    config = AppConfig.model_validate({**unit_config().model_dump(), "ingress": {"api_keys": ["sk-test"]}})
    app = create_api(config, router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http:
        yield http


@pytest.mark.parametrize("key", ["sk-test", "from-env", "other"])
async def test_api_keys_from_config_and_environment_are_accepted(keyed_http, key):
    client = openai.AsyncOpenAI(base_url=f"{BASE_URL}/v1", api_key=key, http_client=keyed_http, max_retries=0)
    assert (await client.models.list()).data


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong"}, {"authorization": "Basic sk-test"}])
async def test_missing_or_wrong_key_is_401_and_health_stays_open(keyed_http, headers):
    for path in ("/v1/chat/completions", "/v1/completions", "/generate", "/"):
        response = await keyed_http.post(path, json={}, headers=headers)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "invalid_api_key"
    assert (await keyed_http.get("/v1/models", headers=headers)).status_code == 401
    assert (await keyed_http.get("/health")).status_code == 200


async def test_openapi_document_describes_every_endpoint(http):
    document = (await http.get("/openapi.json")).json()
    paths = document["paths"]
    for path in ("/v1/chat/completions", "/v1/completions", "/generate", "/"):
        assert "requestBody" in paths[path]["post"], path
    chat = paths["/v1/chat/completions"]["post"]
    ref = chat["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schemas = document["components"]["schemas"]
    assert "messages" in schemas[ref.rsplit("/", 1)[1]]["properties"]
    answer_ref = chat["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert "choices" in schemas[answer_ref.rsplit("/", 1)[1]]["properties"]
    # every reference resolves inside the document
    for found in _refs(document):
        assert found.rsplit("/", 1)[1] in schemas, found
    assert {"/v1/models", "/health"} <= set(paths)


def _refs(node) -> list[str]:  # noqa: ANN001 - any JSON value
    if isinstance(node, dict):
        return ([node["$ref"]] if isinstance(node.get("$ref"), str) else []) + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


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
