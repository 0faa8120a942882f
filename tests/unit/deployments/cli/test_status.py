"""`qwen-vl-serve status`: Serve's status with RAY_AUTH_MODE=token, then requests per model."""

from __future__ import annotations

import os

from deployments.cli import main as cli
from deployments.cli.status import requests_by_model

# Ray's metrics export, as scraped from a running app (two replicas of the ingress).
METRICS = """\
# HELP ray_qvs_requests_total Requests answered by the ingress.
# TYPE ray_qvs_requests_total counter
ray_qvs_requests_total{model="tiny-qwen2-vl",replica="a",status_class="2xx",stream="no"} 3.0
ray_qvs_requests_total{model="tiny-qwen2-vl",replica="b",status_class="2xx",stream="yes"} 2.0
ray_qvs_requests_total{model="tiny-qwen2-vl",replica="a",status_class="4xx",stream="no"} 1.0
ray_qvs_requests_total{model="other",replica="a",status_class="4xx",stream="no"} 4.0
# HELP ray_serve_num_http_requests_total Serve's own count.
# TYPE ray_serve_num_http_requests_total counter
ray_serve_num_http_requests_total{route="/"} 10.0
"""


def test_requests_are_summed_per_model_and_status_class():
    assert requests_by_model(METRICS) == {"tiny-qwen2-vl": {"2xx": 5.0, "4xx": 1.0}, "other": {"4xx": 4.0}}


def test_status_sets_token_auth_before_serve_status_runs(monkeypatch, capsys):
    seen = {}

    def fake_serve_status(args, prog_name, standalone_mode):  # stands in for Ray's click command
        seen["auth"] = os.environ.get("RAY_AUTH_MODE")
        seen["args"] = args

    import ray.serve.scripts

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setattr(ray.serve.scripts.status, "main", fake_serve_status)
    assert cli.main(["status", "--address", "http://127.0.0.1:8265", "--metrics-url", "http://127.0.0.1:9/m"]) == 0
    assert seen == {"auth": "token", "args": ["--address", "http://127.0.0.1:8265"]}
    assert "no metrics at http://127.0.0.1:9/m" in capsys.readouterr().out


def test_an_operators_auth_mode_wins(monkeypatch):
    import ray.serve.scripts

    seen = {}
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setattr(ray.serve.scripts.status, "main",
                        lambda **kw: seen.setdefault("auth", os.environ["RAY_AUTH_MODE"]))
    cli.main(["status", "--metrics-url", "http://127.0.0.1:9/m"])
    assert seen == {"auth": "disabled"}
