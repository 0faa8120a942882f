"""The tiny checkpoints load like the real ones: tokenizer, template, processor, config, cache."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from PIL import Image

from deployments.checkpoints import tiny
from deployments.checkpoints.tiny import TINY_FAMILIES, VOCAB_SIZE, build_tiny_checkpoint, resolve_tiny

VL_FAMILIES = ("qwen2-vl", "qwen2.5-vl")
TOOL_FAMILIES = ("qwen2.5-vl", "qwen3-vl", "qwen2")
VISION_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"
# The special tokens every family has, in Qwen's id order.
QWEN_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]  # fmt: skip


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {family: build_tiny_checkpoint(family, root / family) for family in TINY_FAMILIES}


def _config(path: Path) -> dict:
    return json.loads((path / "config.json").read_text())


def _image_message(text: str = "Describe the image.") -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_tokenizer_is_qwen2_with_qwen_special_token_layout(checkpoints, family):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoints[family])
    assert type(tokenizer).__name__ == "Qwen2Tokenizer"
    assert len(tokenizer) == VOCAB_SIZE
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token) == (
        "<|im_end|>",
        "<|endoftext|>",
        None,
    )
    added = QWEN_SPECIALS + (["<tool_call>", "</tool_call>"] if family in TOOL_FAMILIES else [])
    ids = tokenizer.convert_tokens_to_ids(added)
    assert ids == list(range(VOCAB_SIZE - len(added), VOCAB_SIZE)), "Qwen's order, at the end"
    # Special tokens are single ids, never split into bytes.
    text = "<|im_start|>user\nhi<|im_end|>"
    assert tokenizer(text)["input_ids"][0] == ids[1]
    assert tokenizer(text)["input_ids"][-1] == ids[2]
    # Byte-level BPE: any text round-trips, and the merges make English short.
    sample = "The image shows a cat. Ünïcödé ✓ 12345"
    assert tokenizer.decode(tokenizer(sample)["input_ids"]) == sample
    assert len(tokenizer("Describe the picture")["input_ids"]) <= 5


@pytest.mark.parametrize("family", TOOL_FAMILIES)
def test_tool_call_tags_are_single_tokens_that_survive_skip_special(checkpoints, family):
    """Tool parsers look for `<tool_call>` in the decoded text, as with the real Qwen2.5."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoints[family])
    ids = tokenizer('<tool_call>{"a": 1}</tool_call><|im_end|>')["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids("<tool_call>")
    assert tokenizer.decode(ids, skip_special_tokens=True) == '<tool_call>{"a": 1}</tool_call>'


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_config_ids_match_tokenizer(checkpoints, family):
    from transformers import AutoTokenizer

    path = checkpoints[family]
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = _config(path)
    text = config.get("text_config", config)
    assert text["vocab_size"] == VOCAB_SIZE >= len(tokenizer)
    assert text["bos_token_id"] == text["pad_token_id"] == tokenizer.pad_token_id
    assert text["eos_token_id"] == tokenizer.eos_token_id
    assert config["dtype"] == "bfloat16"
    generation = json.loads((path / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [tokenizer.eos_token_id, tokenizer.pad_token_id]
    if family in VL_FAMILIES:
        for key, token in [
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        ]:
            assert config[key] == tokenizer.convert_tokens_to_ids(token), key
        assert text["rope_parameters"]["mrope_section"] == [4, 6, 6]
        hidden, heads = text["hidden_size"], text["num_attention_heads"]
        assert sum(text["rope_parameters"]["mrope_section"]) * 2 == hidden // heads


def test_architectures_and_vision_towers(checkpoints):
    assert _config(checkpoints["qwen2"])["architectures"] == ["Qwen2ForCausalLM"]
    qwen2_vl = _config(checkpoints["qwen2-vl"])
    assert qwen2_vl["architectures"] == ["Qwen2VLForConditionalGeneration"]
    assert qwen2_vl["vision_config"]["hidden_size"] == qwen2_vl["text_config"]["hidden_size"]
    qwen25_vl = _config(checkpoints["qwen2.5-vl"])
    assert qwen25_vl["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]
    vision = qwen25_vl["vision_config"]
    assert vision["out_hidden_size"] == qwen25_vl["text_config"]["hidden_size"]
    assert vision["fullatt_block_indexes"] == [1] and vision["window_size"] == 112


@pytest.mark.parametrize("family", VL_FAMILIES)
def test_chat_template_renders_vision_parts(checkpoints, family):
    from transformers import AutoProcessor, AutoTokenizer

    processor = AutoProcessor.from_pretrained(checkpoints[family])
    tokenizer = AutoTokenizer.from_pretrained(checkpoints[family])
    for renderer in (processor, tokenizer):
        text = renderer.apply_chat_template(
            _image_message(), tokenize=False, add_generation_prompt=True
        )
        assert text == (
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            f"<|im_start|>user\n{VISION_PLACEHOLDER}Describe the image.<|im_end|>\n"
            "<|im_start|>assistant\n"
        )
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "video"}, {"type": "image"}]}
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_vision_id=True)
    assert (
        f"Picture 1: {VISION_PLACEHOLDER}Video 1: <|vision_start|><|video_pad|><|vision_end|>"
        f"Picture 2: {VISION_PLACEHOLDER}"
    ) in text
    assert "Picture" not in tokenizer.apply_chat_template(messages, tokenize=False)


@pytest.mark.parametrize("family", TOOL_FAMILIES)
def test_chat_template_renders_tools_hermes_style(checkpoints, family):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoints[family])
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "sunny"},
    ]
    text = tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=True
    )
    assert "# Tools\n\nYou may call one or more functions" in text
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in text
    call = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    assert f"<tool_call>\n{call}\n</tool_call>" in text
    assert "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_qwen25_vl_template_accepts_part_lists_everywhere(checkpoints):
    """vLLM hands templates that loop over content a list of parts for every message."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoints["qwen2.5-vl"])
    parts = lambda text: [{"type": "text", "text": text}]  # noqa: E731
    image = {"type": "image_url", "image_url": {"url": "x"}}
    messages = [
        {"role": "system", "content": parts("Be brief.")},
        {"role": "user", "content": [image, *parts("Hi")]},
        {"role": "tool", "content": parts("sunny")},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
    assert f"<|im_start|>user\n{VISION_PLACEHOLDER}Hi<|im_end|>\n" in text
    assert "<tool_response>\nsunny\n</tool_response>" in text


@pytest.mark.parametrize("family", VL_FAMILIES)
@pytest.mark.parametrize(
    ("size", "grid"),
    [((56, 56), [1, 4, 4]), ((100, 80), [1, 6, 8])],  # (width, height) -> (t, h, w) patches
)
def test_processor_expands_image_to_grid_tokens(checkpoints, family, size, grid):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(checkpoints[family])
    assert dict(processor.image_processor.size) == {
        "shortest_edge": 56 * 56,
        "longest_edge": 28 * 28 * 1280,
    }
    assert type(processor.video_processor).__name__ == "Qwen2VLVideoProcessor"
    text = processor.apply_chat_template(_image_message(), tokenize=False)
    inputs = processor(text=[text], images=[Image.new("RGB", size, "white")], return_tensors="np")
    assert inputs["image_grid_thw"].tolist() == [grid]
    n_image_tokens = (inputs["input_ids"][0] == processor.image_token_id).sum()
    assert n_image_tokens == grid[0] * grid[1] * grid[2] // 4


def test_build_is_deterministic_per_seed(tmp_path):
    first = build_tiny_checkpoint("qwen2-vl", tmp_path / "a", seed=0)
    second = build_tiny_checkpoint("qwen2-vl", tmp_path / "b", seed=0)
    other = build_tiny_checkpoint("qwen2-vl", tmp_path / "c", seed=1)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    weights = (first / "model.safetensors").read_bytes()
    assert weights != (other / "model.safetensors").read_bytes()


def test_resolve_tiny_builds_once_then_reuses(tmp_path, monkeypatch):
    calls: list[str] = []
    real_build = tiny.build_tiny_checkpoint

    def counting_build(family: str, out_dir: Path, seed: int = 0) -> Path:
        calls.append(family)
        return real_build(family, out_dir, seed)

    monkeypatch.setattr(tiny, "build_tiny_checkpoint", counting_build)
    # Two replicas starting at once: the lock lets one build, the other reuses.
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(resolve_tiny("tiny://qwen2", tmp_path)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["qwen2"]
    assert len(results) == 2 and results[0] == results[1]
    path = results[0]
    assert path.parent == tmp_path / "tiny" and f"v{tiny.BUILDER_VERSION}" in path.name
    assert (path / "model.safetensors").is_file()
    assert resolve_tiny("tiny://qwen2", tmp_path) == path
    assert calls == ["qwen2"], "the second call must not rebuild"
    assert not [p for p in (tmp_path / "tiny").iterdir() if p.name.startswith(".")], "no temp dirs"


def test_resolve_tiny_defaults_to_the_cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN_VL_SERVE_CACHE", str(tmp_path))
    monkeypatch.setattr(tiny, "build_tiny_checkpoint", _fake_build)
    assert resolve_tiny("tiny://qwen2.5-vl").parent == tmp_path / "tiny"


def _fake_build(family: str, out_dir: Path, seed: int = 0) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text("{}")
    (out_dir / "model.safetensors").write_bytes(b"")
    return out_dir


@pytest.mark.parametrize("uri", ["tiny://qwen4-vl", "tiny://", "tiny://Qwen2-VL"])
def test_unknown_family_names_the_valid_ones(tmp_path, uri):
    with pytest.raises(ValueError, match=r"qwen2-vl, qwen2\.5-vl, qwen3-vl, qwen2"):
        resolve_tiny(uri, tmp_path)
    assert not (tmp_path / "tiny").exists()


def test_non_tiny_uri_and_bad_family_to_builder(tmp_path):
    with pytest.raises(ValueError, match="tiny://"):
        resolve_tiny("hf://Qwen/Qwen2-VL-2B-Instruct", tmp_path)
    with pytest.raises(ValueError, match="valid: qwen2-vl"):
        build_tiny_checkpoint("llama", tmp_path / "x")


# -- Qwen3-VL: its own patch size, M-RoPE layout, DeepStack, template and video timestamps ----


def test_qwen3_vl_config_keeps_the_real_layout_at_tiny_sizes(checkpoints):
    from transformers import AutoTokenizer

    path = checkpoints["qwen3-vl"]
    config, tokenizer = _config(path), AutoTokenizer.from_pretrained(path)
    assert config["architectures"] == ["Qwen3VLForConditionalGeneration"]
    for key, token in [("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
                       ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")]:
        assert config[key] == tokenizer.convert_tokens_to_ids(token), key
    text, vision = config["text_config"], config["vision_config"]
    rope = text["rope_parameters"]
    assert rope["mrope_interleaved"] is True and sum(rope["mrope_section"]) * 2 == text["head_dim"]
    assert vision["patch_size"] == 16 and vision["spatial_merge_size"] == 2
    assert vision["out_hidden_size"] == text["hidden_size"]
    assert vision["deepstack_visual_indexes"] == [0, 1] and len(vision["deepstack_visual_indexes"]) <= (
        text["num_hidden_layers"])
    assert int(vision["num_position_embeddings"] ** 0.5) ** 2 == vision["num_position_embeddings"]


def test_qwen3_vl_template_has_no_default_system_prompt(checkpoints):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoints["qwen3-vl"])
    text = tokenizer.apply_chat_template(_image_message(), tokenize=False, add_generation_prompt=True)
    assert text == f"<|im_start|>user\n{VISION_PLACEHOLDER}Describe the image.<|im_end|>\n<|im_start|>assistant\n"
    system = [{"role": "system", "content": "Be brief."}, *_image_message()]
    assert tokenizer.apply_chat_template(system, tokenize=False).startswith("<|im_start|>system\nBe brief.<|im_end|>")


def test_qwen3_vl_processor_uses_32_pixel_units_and_writes_frame_timestamps(checkpoints):
    import numpy as np
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(checkpoints["qwen3-vl"])
    assert type(processor).__name__ == "Qwen3VLProcessor"
    assert type(processor.video_processor).__name__ == "Qwen3VLVideoProcessor"
    text = processor.apply_chat_template(_image_message(), tokenize=False)
    inputs = processor(text=[text], images=[Image.new("RGB", (320, 256), "white")], return_tensors="np")
    assert inputs["image_grid_thw"].tolist() == [[1, 16, 20]]  # 256 / 16, 320 / 16
    assert (inputs["input_ids"][0] == processor.image_token_id).sum() == 16 * 20 // 4

    video = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "?"}]}]
    text = processor.apply_chat_template(video, tokenize=False)
    frames = np.zeros((4, 64, 64, 3), dtype=np.uint8)
    metadata = {"fps": 2.0, "frames_indices": [0, 2, 4, 6], "total_num_frames": 8, "duration": 4.0}
    inputs = processor(text=[text], videos=[frames], video_metadata=[metadata], do_sample_frames=False,
                       return_tensors="np")
    assert inputs["video_grid_thw"].tolist() == [[2, 4, 4]]
    decoded = processor.tokenizer.decode(inputs["input_ids"][0])
    assert "<0.5 seconds>" in decoded and "<2.5 seconds>" in decoded  # frames (0, 2) and (4, 6) at 2 fps


def test_qwen3_vl_weights_load_and_generate_in_transformers(checkpoints):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = checkpoints["qwen3-vl"]
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval()
    text = processor.apply_chat_template(_image_message(), tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], images=[Image.new("RGB", (256, 256), "red")], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
