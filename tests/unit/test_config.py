"""Both shipped configs validate with one schema; mistakes name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from deployments.config import AppConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["serve_config.yaml", "serve_config.cpu.yaml"])
def test_shipped_configs_validate(name):
    document = yaml.safe_load((ROOT / name).read_text())
    (application,) = document["applications"]
    assert application["import_path"] == "ingress.app:build_app"
    config = AppConfig.model_validate(application["args"])
    assert {m.family for m in config.models} == {"qwen2-vl", "qwen2.5-vl"}


def test_cpu_default_serves_the_two_tiny_models_on_loopback():
    document = yaml.safe_load((ROOT / "serve_config.cpu.yaml").read_text())
    assert document["http_options"] == {"host": "127.0.0.1", "port": 8000}
    config = AppConfig.model_validate(document["applications"][0]["args"])
    assert [m.name for m in config.models] == ["tiny-qwen2-vl", "tiny-qwen2.5-vl"]
    assert all(m.source.startswith("tiny://") for m in config.models)
    binds = {m.engine_env["VLLM_CPU_OMP_THREADS_BIND"] for m in config.models}
    assert binds == {"0", "1"}  # two engines, two cores


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda c: c["models"][0].update(family="llama"), "family"),
        (lambda c: c["models"][0].update(enigne_args={}), "enigne_args"),
        (lambda c: c["models"][0]["deployment"].update(max_ongoing_requests=0), "max_ongoing_requests"),
        (lambda c: c.update(default_model="nope"), "default_model"),
        (lambda c: c["models"].append(dict(c["models"][0])), "duplicate"),
    ],
)
def test_config_errors_name_the_field(change, field):
    args = yaml.safe_load((ROOT / "serve_config.cpu.yaml").read_text())["applications"][0]["args"]
    change(args)
    with pytest.raises(ValidationError) as caught:
        AppConfig.model_validate(args)
    assert field in str(caught.value)
