"""The README's quick start and CI must not drift apart."""

from __future__ import annotations

from tests.helpers import ROOT, readme_commands


def test_quick_start_is_two_commands_and_ci_runs_the_test_one():
    serve_command, test_command = readme_commands()
    assert serve_command.endswith("qwen-vl-serve run serve_config.cpu.yaml")
    assert "pytest" in test_command
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()
