"""What crosses the handle between the ingress and a model deployment.

The ingress validates the OpenAI request, resolves media to pixel arrays and sends a
`GenerateCall`; the model deployment answers with batches of `Delta`s. These objects are
pickled by Ray, so they hold plain data (numpy arrays, not PIL images or open files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
from vllm.entrypoints.openai.completion.protocol import CompletionRequest


@dataclass(frozen=True)
class ChatPrompt:
    """A conversation in Qwen's message format, with its media already decoded.

    `messages` holds Qwen-style content parts: `{"type": "text", "text": ...}`,
    `{"type": "image"}` and `{"type": "video"}` placeholders; the n-th image placeholder
    stands for `images[n]` (an RGB `uint8` array of shape (height, width, 3)), the n-th
    video placeholder for `videos[n]`: `(frames, metadata)`, frames an RGB `uint8` array of
    shape (frames, height, width, 3), metadata the dict vLLM's Qwen processors read
    (`fps`, `frames_indices`, `total_num_frames`, `duration`, `video_backend`,
    `do_sample_frames`). Both are already resized (multiples of 28) and sampled by the
    ingress, the way qwen-vl-utils does it; the model must not resize or resample them.
    """

    messages: list[dict[str, Any]]
    images: list[np.ndarray] = field(default_factory=list)
    videos: list[tuple[np.ndarray, dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class GenerateCall:
    """One generation: the prompt plus the validated request's sampling fields.

    `request` is vLLM's own `ChatCompletionRequest` (its `messages` emptied: the prompt
    travels in `prompt`) or `CompletionRequest`, so sampling defaults and validation match
    `vllm serve`.
    """

    request_id: str
    prompt: ChatPrompt | str  # a plain string for /v1/completions (no chat template)
    request: ChatCompletionRequest | CompletionRequest


@dataclass(frozen=True)
class Delta:
    """New output of one choice since the previous delta of that choice.

    `prompt_tokens` is the engine's real prompt length (image tokens included);
    `completion_tokens` is the number of tokens generated so far for this choice.
    """

    index: int
    text: str
    completion_tokens: int
    prompt_tokens: int
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    logprobs: list[dict[str, Any]] | None = None  # OpenAI ChatCompletionTokenLogprob dicts
    tool_calls: list[dict[str, Any]] | None = None  # OpenAI tool call dicts, on the last delta


@dataclass(frozen=True)
class ModelInfo:
    """What a ready model deployment reports about itself."""

    name: str
    family: str
    max_model_len: int
    created: int
    tensor_parallel_size: int = 1
    max_media_item_tokens: int = 0  # most tokens one image or video may take (0: no limit known)
