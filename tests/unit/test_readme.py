"""The README's quick start and CI must not drift apart."""

from __future__ import annotations

import re

from tests.helpers import ROOT


def _readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick_start, flags=re.S)


def test_quick_start_is_two_commands_and_ci_runs_the_test_one():
    serve_command, test_command = _readme_commands()
    assert serve_command.endswith("qwen-vl-serve run serve_config.cpu.yaml")
    assert "pytest" in test_command
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()
