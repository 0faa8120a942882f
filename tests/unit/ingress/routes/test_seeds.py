"""The seeds' endpoints, `/generate` and `/`, over fake engines."""

from __future__ import annotations

import pytest

from tests.fakes import FAKE_WORDS_PER_ANSWER
from tests.helpers import image_data_url

EXPECTED_TEXT = "".join(f"word{i} " for i in range(FAKE_WORDS_PER_ANSWER))


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
    assert answer["response"] == "word0 word1 " and answer["status"] == 200
    assert isinstance(answer["time"], float) and answer["time"] >= 0
    assert "Hello" in servers["tiny-qwen2-vl"]._engine.prompts[-1]["prompt"]


@pytest.mark.parametrize("path,body,param", [("/", {"text": "x"}, "prompt"), ("/generate", {}, "messages"),
                                             ("/", {"prompt": "x", "stream": True}, "stream")])
async def test_seed_endpoints_refuse_bad_bodies_naming_the_field(http, path, body, param):
    response = await http.post(path, json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
