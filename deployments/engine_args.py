"""A model's `engine_args`, checked against vLLM's own engine arguments before anything starts.

The config passes `engine_args` to `vllm.engine.arg_utils.AsyncEngineArgs` inside each model
replica; a misspelt key (`max_modle_len`) would only fail there, minutes later, in a replica
log. The valid names are the fields of that dataclass, so they follow the installed vLLM.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from deployments.deployment_options import unknown_key_error


@functools.cache
def engine_arg_names() -> frozenset[str]:
    """Every keyword `AsyncEngineArgs` takes (vLLM imported on first use only)."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    return frozenset(field.name for field in dataclasses.fields(AsyncEngineArgs) if field.init)


def check_engine_args(engine_args: dict[str, Any]) -> None:
    """Raise `ValueError` naming the first key vLLM does not take, with the closest valid one.

    `model` is refused too: the checkpoint comes from the model's `source`.
    """
    if not engine_args:
        return  # nothing to check: vLLM is not imported
    names = engine_arg_names() - {"model"}
    for key in engine_args:
        if key not in names:
            raise ValueError(unknown_key_error(key, "engine_args", names))
