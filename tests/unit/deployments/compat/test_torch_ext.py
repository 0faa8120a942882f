"""The start-up hook (deployments/compat/torch_ext.py) relies on private names of torchvision
and torchaudio; these tests fail if either library renames them."""

from __future__ import annotations

import importlib
import sys

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
