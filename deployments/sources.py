"""Model sources: turn a config's `source` into a local checkpoint directory.

`tiny://<family>` builds a tiny random checkpoint (deployments/tiny.py); a local path is
used as is; `modelscope://<id>`, `hf://<id>` or a bare `<org>/<name>` id are downloaded
from the hub into the shared cache. Hubs are contacted only for hub sources, and an
unreachable hub fails with a message that says so.
"""

from __future__ import annotations

import os
from pathlib import Path

from deployments.config import ModelConfig

DEFAULT_HUB_ENV = "QWEN_VL_SERVE_DEFAULT_HUB"


class ModelSourceError(RuntimeError):
    """The model source cannot be resolved to a local checkpoint."""


def cache_root() -> Path:
    """Shared cache directory for built and downloaded checkpoints."""
    return Path(os.environ.get("QWEN_VL_SERVE_CACHE", Path.home() / ".cache" / "qwen-vl-serve"))


def resolve_model_path(config: ModelConfig) -> Path:
    """A local directory holding the checkpoint that `config.source` names."""
    source = config.source
    if source.startswith("tiny://"):
        from deployments.tiny import resolve_tiny

        return resolve_tiny(source)
    if source.startswith("modelscope://"):
        return _download("modelscope", source.removeprefix("modelscope://"), config.revision)
    if source.startswith("hf://"):
        return _download("hf", source.removeprefix("hf://"), config.revision)
    local = Path(source).expanduser()
    if local.is_dir():
        return local
    if source.startswith(("/", ".", "~")) or source.count("/") != 1:
        raise ModelSourceError(f"source {source!r}: no such local directory")
    return _download(os.environ.get(DEFAULT_HUB_ENV, "modelscope"), source, config.revision)


def _download(hub: str, model_id: str, revision: str | None) -> Path:
    """Download (or reuse) a hub snapshot; wrap any failure in one clear error."""
    target = cache_root() / hub
    try:
        if hub == "modelscope":
            from modelscope import snapshot_download

            path = snapshot_download(model_id, revision=revision, cache_dir=str(target))
        elif hub == "hf":
            from huggingface_hub import snapshot_download as hf_snapshot_download

            path = hf_snapshot_download(model_id, revision=revision, cache_dir=str(target))
        else:
            raise ModelSourceError(f"unknown hub {hub!r} (expected modelscope or hf)")
    except ModelSourceError:
        raise
    except Exception as exc:  # hub clients raise many types; the operator needs one message
        raise ModelSourceError(
            f"could not download {model_id!r} from {hub}: {type(exc).__name__}: {exc}. "
            "Is the hub reachable from this machine, and does the id exist?"
        ) from exc
    return Path(path)
