"""A model's family, read from its checkpoint's `config.json` when the config leaves it out.

The family decides what the ingress accepts (images, video, tools) and which chat template
and grounding format apply, so it must match the weights. `config.json` says which it is
(`model_type`, else `architectures`): a config that omits `family` takes the checkpoint's,
and one that names another family is refused, naming both.

The checkpoint's `config.json` is read where it is available without downloading weights:
a local directory, a `tiny://<family>` source (built as that family), or, for a hub source
whose family is omitted, `config.json` alone fetched into the shared cache.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# config.json `model_type` -> family, and the architectures transformers writes for each.
FAMILY_BY_MODEL_TYPE: dict[str, str] = {
    "qwen2_vl": "qwen2-vl", "qwen2_5_vl": "qwen2.5-vl", "qwen3_vl": "qwen3-vl", "qwen2": "qwen2",
}
FAMILY_BY_ARCHITECTURE: dict[str, str] = {
    "Qwen2VLForConditionalGeneration": "qwen2-vl",
    "Qwen2_5_VLForConditionalGeneration": "qwen2.5-vl",
    "Qwen3VLForConditionalGeneration": "qwen3-vl",
    "Qwen2ForCausalLM": "qwen2",
}
TINY_SCHEME = "tiny://"


class FamilyError(ValueError):
    """The family cannot be known, or the config's family is not the checkpoint's."""


def family_of(hf_config: dict[str, Any]) -> str | None:
    """The family a checkpoint's `config.json` describes (None: not a family we serve)."""
    family = FAMILY_BY_MODEL_TYPE.get(str(hf_config.get("model_type", "")))
    if family is None:
        family = next((FAMILY_BY_ARCHITECTURE[a] for a in hf_config.get("architectures") or []
                       if a in FAMILY_BY_ARCHITECTURE), None)
    return family


def _described(hf_config: dict[str, Any]) -> str:
    return f"model_type {hf_config.get('model_type')!r}, architectures {hf_config.get('architectures')}"


def checkpoint_family(declared: str | None, source: str, revision: str | None = None) -> str:
    """The model's family: `declared`, checked against the checkpoint when it can be read,
    or the checkpoint's own when `declared` is None."""
    if source.startswith(TINY_SCHEME):
        built = source.removeprefix(TINY_SCHEME)
        if built not in FAMILY_BY_MODEL_TYPE.values():
            raise FamilyError(f"source: {source!r} names no family served here")
        if declared is not None and declared != built:
            raise FamilyError(f"family: {declared!r}, but source {source!r} builds a {built!r} checkpoint")
        return built
    hf_config = _local_config(source)
    if hf_config is None and declared is None:
        hf_config = _hub_config(source, revision)
    if hf_config is None:
        return declared  # a hub checkpoint not fetched yet: the operator's word
    found = family_of(hf_config)
    if found is None:
        if declared is not None:
            return declared
        raise FamilyError(f"family: not set, and {source!r}'s config.json ({_described(hf_config)}) is not a "
                          f"family served here ({', '.join(sorted(set(FAMILY_BY_MODEL_TYPE.values())))})")
    if declared is not None and declared != found:
        raise FamilyError(f"family: {declared!r} does not match {source!r}, whose config.json says "
                          f"{found!r} ({_described(hf_config)})")
    return found


def _local_config(source: str) -> dict[str, Any] | None:
    if "://" in source:
        return None
    config_file = Path(source).expanduser() / "config.json"
    return json.loads(config_file.read_text()) if config_file.is_file() else None


def _hub_config(source: str, revision: str | None) -> dict[str, Any]:
    """config.json alone, from the hub `source` names, into the shared model cache."""
    from deployments.checkpoints.sources import DEFAULT_HUB_ENV, cache_root

    hub, _, model_id = source.partition("://")
    if not model_id:
        hub, model_id = os.environ.get(DEFAULT_HUB_ENV, "modelscope"), source
    try:
        if hub == "hf":
            from huggingface_hub import hf_hub_download

            path = hf_hub_download(model_id, "config.json", revision=revision, cache_dir=str(cache_root() / hub))
        elif hub == "modelscope":
            from modelscope.hub.file_download import model_file_download

            path = model_file_download(model_id, "config.json", revision=revision, cache_dir=str(cache_root() / hub))
        else:
            raise FamilyError(f"source: unknown hub {hub!r} (expected modelscope or hf)")
        return json.loads(Path(path).read_text())
    except FamilyError:
        raise
    except Exception as exc:  # hub clients raise many types; the operator needs one message
        raise FamilyError(
            f"family: not set, and {source!r}'s config.json could not be fetched to read it "
            f"({type(exc).__name__}); set `family` or fix the source"
        ) from exc
