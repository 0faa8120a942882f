"""The engine protocol: the one seam between a model deployment and the inference engine.

Production uses `deployments.engines.vllm_engine.VLLMEngine` (vLLM's `AsyncLLM`); unit tests inject
a fake engine (tests/fakes.py) that yields deterministic tokens without vLLM's engine core.
An engine yields, per step of one request, the list of `Delta`s (one per choice that
advanced); errors surface as exceptions from the iterator, never as in-band values.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, TypedDict

from vllm import SamplingParams

from deployments.calls import Delta


class EnginePrompt(TypedDict, total=False):
    """A rendered prompt: vLLM's `TextPrompt` shape (text plus decoded media)."""

    prompt: str
    multi_modal_data: dict[str, Any]
    mm_processor_kwargs: dict[str, Any]


class Engine(Protocol):
    """What a model deployment needs from an inference engine."""

    max_model_len: int
    max_media_item_tokens: int  # most tokens one image or video may take (0: no limit known)
    tensor_parallel_size: int  # devices (or CPU worker processes) the model is split over
    default_sampling_params: dict[str, Any]

    async def start(self) -> None:
        """Load the model; return once the engine can answer requests."""

    def generate(
        self, prompt: EnginePrompt, params: SamplingParams, request_id: str
    ) -> AsyncIterator[list[Delta]]:
        """Stream the new output of every choice, step by step, until all finish."""

    async def abort(self, request_id: str) -> None:
        """Stop a request early (client gone); a finished or unknown id is a no-op."""

    async def check_health(self) -> None:
        """Raise if the engine can no longer serve."""

    def num_unfinished_requests(self) -> int:
        """Requests the engine still holds (running or waiting)."""

    def shutdown(self) -> None:
        """Release the engine's processes and memory."""
