"""`qwen-vl-serve download|validate`: the operator's pre-download and config check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


import pytest
import yaml

from deployments.cli import main as cli

from tests.helpers import ROOT


def _edited_config(tmp_path: Path, name: str, edit: Callable[[dict], None]) -> str:
    """A copy of the shipped config `name` with `edit(config)` applied, as a path."""
    config = yaml.safe_load((ROOT / name).read_text())
    edit(config)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_download_resolves_every_configured_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QWEN_VL_SERVE_CACHE", str(tmp_path / "cache"))
    assert cli.main(["download", str(ROOT / "serve_config.cpu.yaml")]) == 0
    out = capsys.readouterr().out
    for family in ("qwen2-vl", "qwen2.5-vl"):
        assert f"tiny://{family}" in out
        assert list((tmp_path / "cache").rglob("config.json"))
    assert out.count("ready at") == 2


def test_download_reports_a_failing_source_and_exits_nonzero(tmp_path, monkeypatch, capsys):
    def edit(config: dict) -> None:
        config["applications"][0]["args"]["models"][1]["source"] = str(tmp_path / "missing")

    path = _edited_config(tmp_path, "serve_config.cpu.yaml", edit)
    monkeypatch.setenv("QWEN_VL_SERVE_CACHE", str(tmp_path / "cache"))
    assert cli.main(["download", str(path), "--model", "tiny-qwen2.5-vl"]) == 1
    captured = capsys.readouterr()
    assert "no such local directory" in captured.err
    assert "tiny-qwen2-vl" not in captured.out  # --model picked one


@pytest.mark.parametrize("name", ["serve_config.yaml", "serve_config.gpu1.yaml", "serve_config.cpu.yaml"])
def test_validate_accepts_the_shipped_configs(name, capsys):
    assert cli.main(["validate", str(ROOT / name)]) == 0
    assert "ok" in capsys.readouterr().out


def test_validate_names_the_bad_field(tmp_path):
    def edit(config: dict) -> None:
        config["applications"][0]["args"]["models"][0]["deployment"]["max_ongoing_requests"] = 0

    path = _edited_config(tmp_path, "serve_config.yaml", edit)
    with pytest.raises(SystemExit, match="max_ongoing_requests"):
        cli.main(["validate", path])


def test_ray_init_still_takes_the_private_metrics_export_port():
    """`run` fixes the port with `ray.init(_metrics_export_port=...)`, a private keyword."""
    import inspect

    import ray._private.worker

    assert 'kwargs.pop("_metrics_export_port"' in inspect.getsource(ray._private.worker.init)


def test_validate_refuses_an_engine_arg_typo_naming_the_close_match(tmp_path):
    def edit(config: dict) -> None:
        config["applications"][0]["args"]["models"][0]["engine_args"]["max_modle_len"] = 4096

    path = _edited_config(tmp_path, "serve_config.yaml", edit)
    with pytest.raises(SystemExit, match="engine_args.max_modle_len.*did you mean 'max_model_len'"):
        cli.main(["validate", path])


def test_validate_checks_the_file_with_rays_serve_schema(tmp_path):
    def edit(config: dict) -> None:
        config["proxy_location"] = "Everywhere"

    path = _edited_config(tmp_path, "serve_config.cpu.yaml", edit)
    with pytest.raises(SystemExit, match="proxy_location: Input should be"):
        cli.main(["validate", path])
