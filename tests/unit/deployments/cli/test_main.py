"""`qwen-vl-serve download|validate`: the operator's pre-download and config check."""

from __future__ import annotations


import pytest
import yaml

from deployments.cli import main as cli

from tests.helpers import ROOT


def test_download_resolves_every_configured_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QWEN_VL_SERVE_CACHE", str(tmp_path / "cache"))
    assert cli.main(["download", str(ROOT / "serve_config.cpu.yaml")]) == 0
    out = capsys.readouterr().out
    for family in ("qwen2-vl", "qwen2.5-vl"):
        assert f"tiny://{family}" in out
        assert list((tmp_path / "cache").rglob("config.json"))
    assert out.count("ready at") == 2


def test_download_reports_a_failing_source_and_exits_nonzero(tmp_path, monkeypatch, capsys):
    config = yaml.safe_load((ROOT / "serve_config.cpu.yaml").read_text())
    config["applications"][0]["args"]["models"][1]["source"] = str(tmp_path / "missing")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
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
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    config["applications"][0]["args"]["models"][0]["deployment"]["max_ongoing_requests"] = 0
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit, match="max_ongoing_requests"):
        cli.main(["validate", str(path)])


def test_ray_init_still_takes_the_private_metrics_export_port():
    """`run` fixes the port with `ray.init(_metrics_export_port=...)`, a private keyword."""
    import inspect

    import ray._private.worker

    assert 'kwargs.pop("_metrics_export_port"' in inspect.getsource(ray._private.worker.init)


def test_validate_refuses_an_engine_arg_typo_naming_the_close_match(tmp_path):
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    config["applications"][0]["args"]["models"][0]["engine_args"]["max_modle_len"] = 4096
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit, match="engine_args.max_modle_len.*did you mean 'max_model_len'"):
        cli.main(["validate", str(path)])


def test_validate_checks_the_file_with_rays_serve_schema(tmp_path):
    config = yaml.safe_load((ROOT / "serve_config.cpu.yaml").read_text())
    config["proxy_location"] = "Everywhere"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit, match="proxy_location: Input should be"):
        cli.main(["validate", str(path)])
