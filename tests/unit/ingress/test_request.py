"""Requests (ingress/request.py) through the HTTP API over fake engines: bad input anywhere is a
4xx naming the field, never a 500, and the server keeps answering; options and media parts
reach the engine as the client set them. The one bad-input suite of the unit tests."""

from __future__ import annotations

import pytest
from PIL import Image

from tests.helpers import data_url, image_data_url, image_part, png_bytes
from tests.media_reference import make_video

OK = {"model": "tiny-qwen2.5-vl", "messages": [{"role": "user", "content": "hi"}]}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def _content(*parts, model: str = "tiny-qwen2-vl") -> dict:  # noqa: ANN002 - content parts
    return {"model": model, "messages": [{"role": "user", "content": list(parts)}]}


def _part(kind: str, value) -> dict:  # noqa: ANN001 - any JSON value
    return {"type": kind, kind: value}


# (change to OK, status, param): `param` is exact unless it ends with "*" (a prefix).
CASES = [
    ({"messages": "hello"}, 400, "messages"),
    ({"messages": []}, 400, "messages"),
    ({"messages": None}, 400, "messages"),
    ({"messages": ["hi"]}, 400, "messages[0]"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, 400, "messages[0].role"),
    ({"messages": [{"role": ["user"], "content": "x"}]}, 400, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content"),
    ({"messages": [{"role": "user"}]}, 400, "messages[0].content"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": [{"function": 5}]}]}, 400,
     "messages[0].tool_calls[0]"),
    ({"messages": [{"role": "tool", "content": "x", "tool_call_id": 7}]}, 400, "messages[0].tool_call_id"),
    (_content({"type": "image_url"}), 400, "messages[0].content[0].image_url"),
    (_content({"type": "image_url", "image_url": {"url": 5}}), 400, "messages[0].content[0].image_url.url"),
    (_content({"type": "audio", "audio": "x"}), 400, "messages[0].content[0].type"),
    (_content({"type": "text"}), 400, "messages[0].content[0].text"),
    (_content(_part("video", ["ok", 5])), 400, "messages[0].content[0].video"),
    (_content(image_part("https://example.com/cat.png")), 400, "messages[0].content[0].image_url.url"),
    (_content(image_part("data:image/png;base64,@@@")), 400, "messages[0].content[0].image_url.url"),
    (_content(image_part("data:image/png;base64,aGVsbG8=")), 422, "messages[0].content[0].image_url.url"),
    (_content(image_part("http://127.0.0.1/x.png")), 400, "messages[0].content[0].image_url.url"),
    (_content({"type": "text", "text": "a"}, _part("image", "data:image/png;base64,AAAA")), 422,
     "messages[0].content[1].image"),
    (_content(image_part(image_data_url(8, 8)), model="tiny-qwen2"), 400, "messages[0].content[0]"),
    (_content(*[image_part(image_data_url(8, 8))] * 17), 400, "messages[0].content[16]"),
    (_content({**_part("video", "http://10.0.0.1/v.mp4"), "fps": 1, "nframes": 4}), 400,
     "messages[0].content[0].nframes"),
    ({"temperature": "hot"}, 400, "temperature"),
    ({"frobnicate": 1}, 400, "frobnicate"),
    ({"functions": [{"name": "f"}]}, 400, "functions"),
    ({"echo": True}, 400, "echo"),
    ({"max_tokens": -1}, 400, "max_tokens"),
    ({"n": 0}, 400, "n"),
    ({"n": 9}, 400, "n"),
    ({"top_logprobs": 3}, 400, "top_logprobs*"),
    ({"response_format": {"type": "json_schema"}}, 400, "response_format*"),
    ({"tools": [{"type": "function"}]}, 400, "tools*"),
    ({"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "g"}}}, 400, "tool_choice*"),
    ({"stop": 5}, 400, "stop*"),
    ({"model": 7}, 400, "model"),
    ({"mm_processor_kwargs": {"max_pixels": "big"}}, 400, "mm_processor_kwargs.max_pixels"),
    ({"mm_processor_kwargs": {"max_pixels": -3}}, 400, "mm_processor_kwargs.max_pixels"),
    ({"mm_processor_kwargs": {"bogus": 1}}, 400, "mm_processor_kwargs.bogus"),
    # pixel options past the model's limits (16384 tokens of 28x28 per image, 768 per video frame)
    (_content({**image_part(image_data_url(28, 28)), "min_pixels": 67108864}), 400, "messages[0].content[0].min_pixels"),
    (_content({"type": "image_url", "image_url": {"url": image_data_url(28, 28), "max_pixels": 12845057}}), 400,
     "messages[0].content[0].image_url.max_pixels"),
    (_content({**_part("image", image_data_url(28, 28)), "resized_height": 4000, "resized_width": 4000}), 400,
     "messages[0].content[0].resized_height"),
    ({**_content(image_part(image_data_url(28, 28))), "mm_processor_kwargs": {"min_pixels": 12845057}}, 400,
     "mm_processor_kwargs.min_pixels"),
    (_content({**_part("video", "http://10.0.0.1/v.mp4"), "max_pixels": 602113}), 400, "messages[0].content[0].max_pixels"),
    (_content({**_part("video", "http://10.0.0.1/v.mp4"), "total_pixels": 1 << 30}), 400,
     "messages[0].content[0].total_pixels"),
    (_content({"type": "image_url", "image_url": {"url": image_data_url(28, 28), "detail": "ultra"}}), 400,
     "messages[0].content[0].image_url.detail"),
]


@pytest.mark.parametrize(("change", "status", "param"), CASES, ids=[f"{c[2]}-{i}" for i, c in enumerate(CASES)])
async def test_bad_chat_input_is_a_4xx_naming_the_field(http, change, status, param):
    response = await http.post("/v1/chat/completions", json={**OK, **change})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if param.endswith("*"):
        assert (error["param"] or "").startswith(param[:-1]), error
    else:
        assert error["param"] == param, error
    assert "/tmp" not in error["message"] and "0x" not in error["message"]
    assert (await http.post("/v1/chat/completions", json=OK)).status_code == 200  # and the server keeps serving


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'"text"', b"null"])
async def test_a_body_that_is_not_a_json_object_is_400(http, body):
    response = await http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_oversized_body_is_413(http):
    response = await http.post("/v1/chat/completions", json={**OK, "messages": [{"role": "user", "content": "x" * 300_000}]})
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_streaming_request_with_bad_input_gets_a_status_not_a_stream(http):
    response = await http.post("/v1/chat/completions", json={**_content(image_part("data:x")), "stream": True})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[0].content[0].image_url.url"


async def test_unknown_route_is_openai_shaped_404(http):
    response = await http.get("/v1/nothing-here")
    assert response.status_code == 404
    assert "error" in response.json()


COMPLETION_CASES = [({"prompt": 5}, "prompt"), ({"prompt": ""}, "prompt"), ({"max_tokens": "x"}, "max_tokens"),
                    ({"logprobs": -2}, "logprobs"), ({"suffix": "x"}, "suffix")]


@pytest.mark.parametrize("change,param", COMPLETION_CASES)
async def test_bad_completion_fields_are_4xx_naming_the_field(http, change, param):
    response = await http.post("/v1/completions", json={"model": "tiny-qwen2", "prompt": "hi", **change})
    assert 400 <= response.status_code < 500, response.text
    assert (response.json()["error"]["param"] or "").startswith(param), response.text


async def test_more_images_than_the_engine_takes_is_refused_at_the_part(router, http):
    router.routes["tiny-qwen2.5-vl"].config.engine_args["limit_mm_per_prompt"] = {"image": 2}
    body = _content(*[image_part(image_data_url(32, 32, seed=i)) for i in range(3)], model="tiny-qwen2.5-vl")
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[0].content[2]"
    assert response.json()["error"]["code"] == "too_many_images"


# -- what reaches the engine ----------------------------------------------------------------


def _image_tokens(image) -> int:  # noqa: ANN001 - the (H, W, 3) array given to the engine
    height, width = image.shape[:2]
    return (width // 28) * (height // 28)


async def test_request_and_part_options_change_the_image_sent(http, servers):
    url = data_url(png_bytes(Image.new("RGB", (400, 300), "navy")))  # small body, many pixels
    body = {**_content(image_part(url), {"type": "text", "text": "hi"}), "max_tokens": 1}
    sizes = []
    for max_pixels in (28 * 28 * 16, 28 * 28 * 64):
        response = await http.post("/v1/chat/completions", json={**body, "mm_processor_kwargs": {"max_pixels": max_pixels}})
        assert response.status_code == 200, response.text
        prompt = servers["tiny-qwen2-vl"]._engine.prompts[-1]
        (image,) = prompt["multi_modal_data"]["image"]
        assert _image_tokens(image) <= max_pixels // 784
        pinned = prompt["mm_processor_kwargs"]
        assert pinned["min_pixels"] == pinned["max_pixels"] == image.shape[0] * image.shape[1]
        sizes.append(image.shape)
    assert sizes[0] != sizes[1]
    part = {"type": "image", "image": url, "resized_height": 56, "resized_width": 84}
    response = await http.post("/v1/chat/completions", json={**_content(part), "mm_processor_kwargs": {"max_pixels": 784 * 4}})
    assert response.status_code == 200, response.text
    assert servers["tiny-qwen2-vl"]._engine.prompts[-1]["multi_modal_data"]["image"][0].shape == (56, 84, 3)


async def test_video_parts_reach_the_engine(http, servers):
    url = data_url(make_video(seconds=3.0, fps=10), "video/mp4")
    part = {"type": "video_url", "video_url": {"url": url}, "fps": 2.0}
    body = {**_content(part, {"type": "text", "text": "?"}, model="tiny-qwen2.5-vl"), "max_tokens": 1}
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    prompt = servers["tiny-qwen2.5-vl"]._engine.prompts[-1]
    ((frames, metadata),) = prompt["multi_modal_data"]["video"]
    assert frames.shape[0] == 6 and metadata["do_sample_frames"] is False
    assert "<|video_pad|>" in prompt["prompt"]


async def test_developer_messages_are_system_and_earlier_tool_calls_keep_their_ids_out(http, servers):
    body = {"model": "tiny-qwen2.5-vl", "tools": [TOOL], "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "call f"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "not json"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
    ]}
    assert (await http.post("/v1/chat/completions", json=body)).status_code == 200
    prompt = servers["tiny-qwen2.5-vl"]._engine.prompts[-1]["prompt"]
    assert prompt.startswith("<|im_start|>system\nBe brief.")
    assert '"arguments": "not json"' in prompt  # not JSON: printed as the text it is


# -- Qwen3-VL: the family's factor (32) and its video pixel budget over all frames ----------


@pytest.fixture
async def qwen3(tiny_cache):
    """(http client, {name: fake-engine server}) of an app serving a Qwen3-VL and a Qwen2-VL model."""
    import httpx

    from deployments.config import AppConfig
    from ingress.app import create_api
    from ingress.router import ModelRouter
    from tests.fakes import LocalModelClient, start_fake_server

    config = AppConfig.model_validate(
        {"models": [{"name": "tiny-qwen3-vl", "family": "qwen3-vl", "source": "tiny://qwen3-vl"},
                    {"name": "tiny-qwen2-vl", "family": "qwen2-vl", "source": "tiny://qwen2-vl"}]}
    )
    servers = {m.name: await start_fake_server(m) for m in config.models}
    router = ModelRouter.from_clients(config, {name: LocalModelClient(s) for name, s in servers.items()})
    transport = httpx.ASGITransport(app=create_api(config, router))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress.test") as http:
        yield http, servers


async def test_qwen3_vl_images_and_videos_reach_the_engine_in_32_pixel_units(qwen3):
    from qwen_vl_utils.vision_process import fetch_image

    http, servers = qwen3
    server = servers["tiny-qwen3-vl"]
    image = Image.new("RGB", (300, 200), "navy")
    video = {"type": "video_url", "video_url": {"url": data_url(make_video(seconds=2.0, fps=10), "video/mp4")},
             "fps": 2.0}
    body = {**_content(image_part(data_url(png_bytes(image))), video, model="tiny-qwen3-vl"), "max_tokens": 1}
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    prompt = server._engine.prompts[-1]
    (sent,) = prompt["multi_modal_data"]["image"]
    assert sent.shape[:2] == fetch_image({"image": image}, image_patch_size=16).size[::-1] == (192, 288)
    ((frames, metadata),) = prompt["multi_modal_data"]["video"]
    assert frames.shape[1] % 32 == 0 and frames.shape[2] % 32 == 0 and len(frames) == 4
    assert metadata["fps"] == 10.0 and metadata["frames_indices"] == [0, 6, 13, 19]
    # Qwen3-VL's video processor bounds frames x height x width: the processor's bracket is
    # the video's volume, so its resize keeps the frames as they are.
    response = await http.post("/v1/chat/completions", json={**_content(video, model="tiny-qwen3-vl"), "max_tokens": 1})
    assert response.status_code == 200, response.text
    prompt = server._engine.prompts[-1]
    ((frames, _),) = prompt["multi_modal_data"]["video"]
    volume = len(frames) * frames.shape[1] * frames.shape[2]
    assert prompt["mm_processor_kwargs"]["min_pixels"] == prompt["mm_processor_kwargs"]["max_pixels"] == volume


async def test_qwen3_vl_patch_size_is_the_model_s_not_the_client_s(qwen3):
    """The same image for both models through one media cache: 96x96 (32s) for Qwen3-VL,
    112x112 (28s) for Qwen2-VL, whatever the client writes."""
    http, servers = qwen3
    part = {**image_part(image_data_url(100, 100)), "image_patch_size": 14}
    for model, side in [("tiny-qwen3-vl", 96), ("tiny-qwen2-vl", 112), ("tiny-qwen3-vl", 96)]:
        response = await http.post("/v1/chat/completions", json={**_content(part, model=model), "max_tokens": 1})
        assert response.status_code == 200, response.text
        (sent,) = servers[model]._engine.prompts[-1]["multi_modal_data"]["image"]
        assert sent.shape[:2] == (side, side)
    bad = {**_content(image_part(image_data_url(64, 64)), model="tiny-qwen3-vl"), "mm_processor_kwargs": {"image_patch_size": 14}}
    response = await http.post("/v1/chat/completions", json=bad)
    assert response.status_code == 400 and response.json()["error"]["param"] == "mm_processor_kwargs.image_patch_size"


# -- hostile input: bounds before the engine ------------------------------------------------
# The fake engines' context is 4096 tokens; the unit config keeps prompt_chars_per_token at 16.


async def test_prompt_text_far_beyond_the_context_is_400_before_the_engine(http, servers):
    too_long = "x " * (4096 * 16 // 2 + 1)  # 65,538 characters, past 4096 x 16
    response = await http.post("/v1/chat/completions", json={**OK, "messages": [{"role": "user", "content": too_long}]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "messages" and error["code"] == "context_length_exceeded"
    assert "4096 tokens" in error["message"] and "65538 characters" in error["message"]
    assert servers["tiny-qwen2.5-vl"]._engine.prompts == []  # nothing was rendered or tokenized
    assert (await http.post("/v1/chat/completions", json=OK)).status_code == 200


async def test_prompt_text_within_the_bound_reaches_the_engine(http):
    fits_the_bound = "x" * (4096 * 16)  # not refused at the ingress (the engine judges tokens)
    body = {**OK, "messages": [{"role": "user", "content": fits_the_bound}], "max_tokens": 1}
    assert (await http.post("/v1/chat/completions", json=body)).status_code == 200


async def test_tool_schemas_count_toward_the_prompt_text(http):
    tool = {"type": "function", "function": {"name": "f", "description": "d" * 70_000, "parameters": {"type": "object"}}}
    response = await http.post("/v1/chat/completions", json={**OK, "tools": [tool]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "messages"


@pytest.mark.parametrize(("prompt", "param"), [("y" * 70_000, "prompt"), (["ok", "y" * 70_000], "prompt[1]")])
async def test_completion_prompt_far_beyond_the_context_is_400_naming_it(http, prompt, param):
    response = await http.post("/v1/completions", json={"model": "tiny-qwen2", "prompt": prompt})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["code"] == "context_length_exceeded"


@pytest.mark.parametrize(("prompts", "n", "param"), [(65, 1, "prompt"), (9, 8, "n"), (64, 2, "n")])
async def test_completion_fan_out_past_max_choices_is_400(http, servers, prompts, n, param):
    body = {"model": "tiny-qwen2", "prompt": ["hi"] * prompts, "n": n}
    response = await http.post("/v1/completions", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert f"{prompts} x {n}" in response.json()["error"]["message"]
    assert servers["tiny-qwen2"]._engine.prompts == []  # no engine request was started


async def test_completion_fan_out_at_max_choices_is_served(http):
    body = {"model": "tiny-qwen2", "prompt": ["hi"] * 8, "n": 8, "max_tokens": 1}
    response = await http.post("/v1/completions", json=body)
    assert response.status_code == 200 and len(response.json()["choices"]) == 64


async def test_a_request_chat_template_is_refused_not_ignored(http):
    response = await http.post("/v1/chat/completions", json={**OK, "chat_template": "{{ messages }}"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "chat_template"
    assert response.json()["error"]["code"] == "unsupported_parameter"


async def test_chat_template_kwargs_reach_the_template(http, servers):
    """Qwen2-VL's template numbers images with `add_vision_id` (grounding reads "Picture N")."""
    content = [image_part(image_data_url(56, 56)), image_part(image_data_url(56, 56, seed=1)),
               {"type": "text", "text": "compare"}]
    body = {"model": "tiny-qwen2-vl", "messages": [{"role": "user", "content": content}], "max_tokens": 1}
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert "Picture 1:" not in servers["tiny-qwen2-vl"]._engine.prompts[-1]["prompt"]
    body["chat_template_kwargs"] = {"add_vision_id": True}
    assert (await http.post("/v1/chat/completions", json=body)).status_code == 200
    prompt = servers["tiny-qwen2-vl"]._engine.prompts[-1]["prompt"]
    assert "Picture 1:" in prompt and "Picture 2:" in prompt


@pytest.mark.parametrize("field", [{"chat_template_kwargs": {"tokenize": True}},
                                   {"chat_template_kwargs": {"add_generation_prompt": False}},
                                   {"documents": [{"title": "a", "text": "b"}]},
                                   {"continue_final_message": True}])
async def test_template_fields_that_would_be_ignored_are_refused(http, field):
    response = await http.post("/v1/chat/completions", json={**OK, **field})
    assert response.status_code == 400, response.text
    name = next(iter(field))
    param = response.json()["error"]["param"]
    assert param == name or param.startswith(f"{name}.")
