"""Model sources: turn a config's `source` into a local checkpoint directory.

`tiny://<family>` builds a tiny random checkpoint (deployments/checkpoints/tiny.py); a local path is
used as is; `modelscope://<id>`, `hf://<id>` or a bare `<org>/<name>` id are downloaded
from the hub into the shared cache. Hubs are contacted only for hub sources, and an
unreachable hub fails with a message that says so, as does an id (or revision) the hub
does not have. The hubs' own settings apply: `HF_ENDPOINT`, `HF_HUB_OFFLINE`, `HF_TOKEN`,
`MODELSCOPE_ENDPOINT`, `MODELSCOPE_API_TOKEN`. Download progress goes to the `ray.serve`
logger, i.e. the replica's log (or the console of `qwen-vl-serve download`).
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

from tqdm.auto import tqdm

from deployments.config import ModelConfig

DEFAULT_HUB_ENV = "QWEN_VL_SERVE_DEFAULT_HUB"
HUBS = ("modelscope", "hf")
PROGRESS_INTERVAL_S = 5.0

logger = logging.getLogger("ray.serve")


class ModelSourceError(RuntimeError):
    """The model source cannot be resolved to a local checkpoint."""


def cache_root() -> Path:
    """Shared cache directory for built and downloaded checkpoints."""
    return Path(os.environ.get("QWEN_VL_SERVE_CACHE", Path.home() / ".cache" / "qwen-vl-serve"))


def resolve_model_path(config: ModelConfig) -> Path:
    """A local directory holding the checkpoint that `config.source` names."""
    source = config.source
    if source.startswith("tiny://"):
        from deployments.checkpoints.tiny import resolve_tiny

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
    if hub not in HUBS:
        raise ModelSourceError(f"{DEFAULT_HUB_ENV}={hub!r}: unknown hub (expected modelscope or hf)")
    target = cache_root() / hub
    pinned = f"{model_id!r} at revision {revision!r}" if revision else repr(model_id)
    logger.info("Fetching %s from %s into %s", pinned, hub, target)
    try:
        if hub == "modelscope":
            from modelscope import snapshot_download

            path = snapshot_download(
                model_id, revision=revision, cache_dir=str(target), progress_callbacks=[_LoggedProgress]
            )
        else:
            from huggingface_hub import snapshot_download as hf_snapshot_download

            path = hf_snapshot_download(
                model_id, revision=revision, cache_dir=str(target), tqdm_class=_logged_tqdm()
            )
    except Exception as exc:  # hub clients raise many types; the operator needs one message
        raise ModelSourceError(_explain(hub, pinned, exc)) from exc
    return Path(path)


def hub_endpoint(hub: str) -> str:
    """The address the hub client talks to (its own environment settings)."""
    if hub == "hf":
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    return os.environ.get("MODELSCOPE_ENDPOINT") or os.environ.get("MODELSCOPE_DOMAIN", "www.modelscope.cn")


def _explain(hub: str, pinned: str, exc: BaseException) -> str:
    """One sentence an operator can act on, from whatever the hub client raised."""
    chain = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 8:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    names = " ".join(type(c).__name__ for c in chain)
    text = " ".join(str(c) for c in chain).lower()
    if hub == "hf" and os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("", "0", "false"):
        return f"could not load {pinned} from hf: HF_HUB_OFFLINE is set and it is not in the cache {cache_root()}"
    if any(k in names for k in ("ConnectionError", "ConnectError", "Timeout", "ProxyError", "MaxRetry")) or any(
        k in text for k in ("connection refused", "failed to establish", "max retries", "timed out", "name resolution")
    ):
        return (
            f"could not download {pinned} from {hub}: the hub at {hub_endpoint(hub)} is unreachable "
            "from this machine (pre-download with `qwen-vl-serve download`, or use a local path)"
        )
    if any(k in names for k in ("RepositoryNotFound", "RevisionNotFound", "NotExist", "EntryNotFound")) or any(
        k in text for k in ("404", "not found", "not exist", "notexist")
    ):
        return f"could not download {pinned} from {hub}: the hub has no such model id or revision"
    return f"could not download {pinned} from {hub}: {type(exc).__name__}: {str(exc)[:300]}"


class _LogStream(io.TextIOBase):
    """A file for tqdm that writes each refreshed progress line to the replica log."""

    def write(self, text: str) -> int:
        for line in text.replace("\r", "\n").split("\n"):
            if line.strip():
                logger.info("%s", line.strip())
        return len(text)


def _logged_tqdm() -> type:
    """huggingface_hub's tqdm class, printing to the log every few seconds."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    class LoggedTqdm(hf_tqdm):
        def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - tqdm's signature
            kwargs.setdefault("file", _LogStream())
            kwargs.setdefault("mininterval", PROGRESS_INTERVAL_S)
            super().__init__(*args, **kwargs)

    return LoggedTqdm


class _LoggedProgress:
    """ModelScope's per-file progress callback, as a tqdm bar in the log."""

    def __init__(self, filename: str, file_size: int) -> None:
        self._bar = tqdm(
            total=max(file_size, 1), desc=f"Downloading {filename}", unit="B", unit_scale=True,
            unit_divisor=1024, file=_LogStream(), mininterval=PROGRESS_INTERVAL_S,
        )

    def update(self, size: int) -> None:
        self._bar.update(size)

    def end(self) -> None:
        self._bar.close()
