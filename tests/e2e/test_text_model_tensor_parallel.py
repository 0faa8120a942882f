"""A text-only Qwen2 model split over two CPU worker processes (tensor parallel 2), served
through the same code path as the vision models, on the real stack.

A third Serve application ("text", at /text) runs beside the shared one: one tiny `qwen2`
model with `engine_args.tensor_parallel_size: 2`. On CPU-only bundles the replica gets a
placement group of two bundles and vLLM runs its two workers as processes of the replica
(deployments/placement.py), one per core. The app is deleted at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from tests.e2e.conftest import cpu_app_args
from tests.e2e.side_apps import side_app, side_app_args, side_model
from tests.helpers import image_data_url, image_part

pytestmark = pytest.mark.e2e

APP = "text"
MODEL = "tiny-qwen2-tp2"
DEPLOYMENT = f"model-{MODEL}"


def text_app_args() -> dict:
    shared = cpu_app_args()["models"][0]
    return side_app_args(side_model(
        MODEL,
        family="qwen2",
        source="tiny://qwen2",
        engine_args={**shared["engine_args"], "tensor_parallel_size": 2},
        # one OpenMP core per tensor-parallel rank, vLLM's CPU syntax
        engine_env={**shared["engine_env"], "VLLM_CPU_OMP_THREADS_BIND": "0|1"},
        deployment={
            "num_replicas": 1,
            "ray_actor_options": {"num_cpus": 0.05},
            "bundle_per_worker": {"CPU": 0.1},
        },
    ))


@pytest.fixture(scope="module")
def text_url(serve_url: str) -> Iterator[str]:
    with side_app(serve_url, APP, text_app_args()) as url:
        yield url


@pytest.fixture(scope="module")
def text_client(text_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{text_url}/v1", api_key="unused", max_retries=0, timeout=120)


def test_the_replica_runs_tensor_parallel_2_in_a_two_bundle_placement_group(text_url: str):
    import ray
    from ray import serve

    info = serve.get_deployment_handle(DEPLOYMENT, app_name=APP).info.remote().result()
    assert info.tensor_parallel_size == 2
    groups = [g for g in ray.util.placement_group_table().values() if g["state"] == "CREATED"]
    assert any(len(g["bundles"]) == 2 and DEPLOYMENT in g.get("name", "") for g in groups), groups


def test_text_model_answers_chat_and_completions(text_client: openai.OpenAI):
    chat = text_client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello"}], max_tokens=5, temperature=0
    )
    assert chat.usage.completion_tokens > 0 and chat.model == MODEL
    again = text_client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello"}], max_tokens=5, temperature=0
    )
    assert again.choices[0].message.content == chat.choices[0].message.content
    completion = text_client.completions.create(model=MODEL, prompt="One two three", max_tokens=4)
    assert completion.usage.prompt_tokens > 0 and completion.choices[0].text is not None


def test_images_are_refused_for_a_text_model(text_client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as error:
        text_client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": [image_part(image_data_url())]}], max_tokens=2
        )
    assert error.value.body["code"] == "image_not_supported"
    assert error.value.body["param"] == "messages[0].content[0]"


def test_qwen2_takes_tools(text_client: openai.OpenAI):
    tool = {"type": "function", "function": {"name": "ping", "parameters": {
        "type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": False}}}
    answer = text_client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "ping"}], tools=[tool], max_tokens=40,
        tool_choice={"type": "function", "function": {"name": "ping"}},
    )
    (call,) = answer.choices[0].message.tool_calls
    assert isinstance(json.loads(call.function.arguments)["ok"], bool)
