"""The family comes from the checkpoint's config.json when left out; a mismatch names both."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from deployments import families
from deployments.config import ModelConfig


def _checkpoint(tmp_path, **config) -> str:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return str(tmp_path)


@pytest.mark.parametrize(
    ("config", "family"),
    [
        ({"model_type": "qwen2_vl"}, "qwen2-vl"),
        ({"model_type": "qwen2_5_vl"}, "qwen2.5-vl"),
        ({"model_type": "qwen2"}, "qwen2"),
        ({"architectures": ["Qwen2_5_VLForConditionalGeneration"]}, "qwen2.5-vl"),
    ],
)
def test_left_out_family_is_read_from_config_json(tmp_path, config, family):
    model = ModelConfig.model_validate({"name": "m", "source": _checkpoint(tmp_path, **config)})
    assert model.family == family


def test_a_mismatch_names_both_families(tmp_path):
    source = _checkpoint(tmp_path, model_type="qwen2_5_vl", architectures=["Qwen2_5_VLForConditionalGeneration"])
    with pytest.raises(ValidationError) as caught:
        ModelConfig.model_validate({"name": "m", "family": "qwen2-vl", "source": source})
    assert "'qwen2-vl'" in str(caught.value) and "'qwen2.5-vl'" in str(caught.value)


def test_tiny_sources_are_built_as_their_family():
    assert ModelConfig.model_validate({"name": "m", "source": "tiny://qwen2.5-vl"}).family == "qwen2.5-vl"
    with pytest.raises(ValidationError, match="'qwen2-vl'.*'qwen2.5-vl'"):
        ModelConfig.model_validate({"name": "m", "family": "qwen2-vl", "source": "tiny://qwen2.5-vl"})


def test_an_unserved_checkpoint_without_family_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="llama"):
        ModelConfig.model_validate({"name": "m", "source": _checkpoint(tmp_path, model_type="llama")})


def test_hub_source_without_family_fetches_config_json_only(tmp_path, monkeypatch):
    fetched = []

    def fake_hub_download(model_id, filename, revision=None, cache_dir=None):  # a fake of huggingface_hub's
        fetched.append((model_id, filename, revision))
        return _checkpoint(tmp_path, model_type="qwen2_vl") + "/config.json"

    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake_hub_download)
    model = ModelConfig.model_validate({"name": "m", "source": "hf://Qwen/Qwen2-VL-2B-Instruct", "revision": "main"})
    assert model.family == "qwen2-vl"
    assert fetched == [("Qwen/Qwen2-VL-2B-Instruct", "config.json", "main")]


def test_unreachable_hub_without_family_says_to_set_it(monkeypatch):
    def unreachable(*args, **kwargs):  # noqa: ANN002, ANN003 - a fake hub client
        raise ConnectionError("no route")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", unreachable)
    with pytest.raises(ValidationError, match="set `family`"):
        ModelConfig.model_validate({"name": "m", "source": "hf://Qwen/Qwen2-VL-2B-Instruct"})


def test_hub_source_with_family_is_not_fetched(monkeypatch):
    monkeypatch.setattr(families, "_hub_config", lambda *a: pytest.fail("fetched"))
    model = ModelConfig.model_validate({"name": "m", "family": "qwen2-vl", "source": "modelscope://Qwen/X"})
    assert model.family == "qwen2-vl"
