"""`qwen-vl-serve status`: Serve's application status, then requests served per model.

Ray 2.60 turns on token authentication for a local cluster that `ray.init` starts (as
`qwen-vl-serve run` and `serve run` do) when `RAY_AUTH_MODE` is unset, but Serve's
`serve status` only sends the token when `RAY_AUTH_MODE=token` is set, so on its own it
fails against that cluster. This command runs Ray's own `serve status` with it set (an
operator's value wins). Below it, the requests each model has answered, by status class,
read from the app's Prometheus metrics (`ray_qvs_requests_total`, ingress/metrics.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict

import httpx
from prometheus_client.parser import text_string_to_metric_families

AUTH_MODE_ENV = "RAY_AUTH_MODE"
REQUESTS_METRIC = "ray_qvs_requests"


def requests_by_model(metrics_text: str) -> dict[str, dict[str, float]]:
    """model -> status class -> requests, summed over replicas and streams."""
    counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(metrics_text):
        if family.name not in (REQUESTS_METRIC, f"{REQUESTS_METRIC}_total"):
            continue
        for sample in family.samples:
            if sample.name == f"{REQUESTS_METRIC}_total":
                labels = sample.labels
                counts[labels.get("model", "?")][labels.get("status_class", "?")] += sample.value
    return {model: dict(by_status) for model, by_status in counts.items()}


def print_request_counts(metrics_url: str) -> None:
    """One line per model; a note when the metrics port does not answer."""
    try:
        text = httpx.get(metrics_url, timeout=5.0, trust_env=False).text
    except httpx.HTTPError as exc:
        print(f"requests: no metrics at {metrics_url} ({type(exc).__name__})", flush=True)
        return
    counts = requests_by_model(text)
    print(f"requests (from {metrics_url}):" + ("" if counts else " none yet"), flush=True)
    for model, by_status in sorted(counts.items()):
        served = ", ".join(f"{status} {int(n)}" for status, n in sorted(by_status.items()))
        print(f"  {model}: {served}", flush=True)


def serve_status_command(address: str | None) -> list[str]:
    """Ray's own `serve status`, run by this interpreter."""
    command = [sys.executable, "-c", "from ray.serve.scripts import cli; cli()", "status"]
    return command + (["--address", address] if address else [])


def status(address: str | None, metrics_url: str) -> int:
    """Ray's `serve status` with the auth mode it needs, then the request counts.

    A child process: Ray reads `RAY_AUTH_MODE` once, when it is imported, and this one has
    imported it already (the config schema is Ray's).
    """
    env = {**os.environ}
    env.setdefault(AUTH_MODE_ENV, "token")
    done = subprocess.run(serve_status_command(address), env=env, check=False)
    if done.returncode != 0:
        return done.returncode
    print_request_counts(metrics_url)
    return 0
