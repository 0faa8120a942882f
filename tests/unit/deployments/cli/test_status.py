"""`qwen-vl-serve status`: Serve's status with RAY_AUTH_MODE=token, then requests per model."""

from __future__ import annotations

import subprocess

from deployments.cli import main as cli
from deployments.cli.status import requests_by_model, serve_status_command

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


class _FakeRun:
    """Stands in for subprocess.run: records the command and its environment."""

    def __init__(self, returncode: int = 0) -> None:
        self.calls: list[tuple[list[str], dict[str, str]]] = []
        self.returncode = returncode

    def __call__(self, command, env, check):  # noqa: ANN001 - subprocess.run's arguments
        self.calls.append((command, env))
        return subprocess.CompletedProcess(command, self.returncode)


def test_status_runs_serve_status_with_token_auth(monkeypatch, capsys):
    fake = _FakeRun()
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setattr(subprocess, "run", fake)
    assert cli.main(["status", "--address", "http://127.0.0.1:8265", "--metrics-url", "http://127.0.0.1:9/m"]) == 0
    ((command, env),) = fake.calls
    assert command[-3:] == ["status", "--address", "http://127.0.0.1:8265"]
    assert env["RAY_AUTH_MODE"] == "token"
    assert "no metrics at http://127.0.0.1:9/m" in capsys.readouterr().out


def test_an_operators_auth_mode_wins_and_a_failure_is_passed_on(monkeypatch):
    fake = _FakeRun(returncode=1)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setattr(subprocess, "run", fake)
    assert cli.main(["status", "--metrics-url", "http://127.0.0.1:9/m"]) == 1
    assert fake.calls[0][1]["RAY_AUTH_MODE"] == "disabled"


def test_the_command_is_rays_serve_cli():
    from ray.serve.scripts import cli as serve_cli

    assert "status" in serve_cli.commands
    assert serve_status_command(None)[-1] == "status"
