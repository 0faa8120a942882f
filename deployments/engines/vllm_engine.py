"""The production engine: vLLM's `AsyncLLM`, one per model replica.

vLLM runs its engine core in a child process; this wrapper only translates between the
engine protocol (deployments/engines/protocol.py) and vLLM's `RequestOutput` stream, which is asked
for in DELTA mode so each step carries only new text.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from vllm import SamplingParams
from vllm.config import StructuredOutputsConfig
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import RequestOutputKind
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError
from vllm.v1.metrics.ray_wrappers import RayPrometheusStatLogger

from deployments.config import ModelConfig
from deployments.engines.protocol import EnginePrompt
from deployments.errors import EngineUnavailableError, ServeError, model_unavailable
from deployments.placement import engine_executor_backend
from deployments.calls import Delta

logger = logging.getLogger(__name__)


# Compact JSON for structured outputs unless the operator says otherwise: with any
# whitespace allowed, a weak model can fill max_tokens with blanks inside valid JSON.
DEFAULT_STRUCTURED_OUTPUTS = {"backend": "xgrammar", "disable_any_whitespace": True}


def engine_args_for(config: ModelConfig, model_path: Path) -> AsyncEngineArgs:
    """vLLM engine arguments: the operator's, with the model path and served name filled in."""
    kwargs: dict[str, Any] = dict(config.engine_args)
    kwargs.setdefault("served_model_name", config.name)
    kwargs.setdefault("disable_log_stats", False)
    backend = engine_executor_backend(config.engine_args, config.deployment.bundle_per_worker)
    if backend is not None:  # tensor parallel: Ray workers on GPUs, processes on CPUs
        kwargs["distributed_executor_backend"] = backend
    structured = kwargs.get("structured_outputs_config")
    if structured is None or isinstance(structured, dict):
        given = structured or {}
        defaults = DEFAULT_STRUCTURED_OUTPUTS if "backend" not in given else {}
        kwargs["structured_outputs_config"] = StructuredOutputsConfig(**{**defaults, **given})
    return AsyncEngineArgs(model=str(model_path), **kwargs)


class VLLMEngine:
    """Engine protocol implementation on vLLM's `AsyncLLM`."""

    def __init__(self, config: ModelConfig, model_path: Path) -> None:
        self._args = engine_args_for(config, model_path)
        self._llm: AsyncLLM | None = None
        self.max_model_len = 0
        self.max_media_item_tokens = 0
        self.tensor_parallel_size = 1
        self.default_sampling_params: dict[str, Any] = {}

    async def start(self) -> None:
        # vLLM's `vllm:*` metrics through Ray's metrics export (as `ray_vllm_*`), in place of
        # its own prometheus_client registry, which nothing scrapes inside a Serve replica.
        vllm_config = self._args.create_engine_config()
        if vllm_config.parallel_config.distributed_executor_backend == "ray":
            # vLLM's Ray workers go into this replica's placement group (one bundle per
            # device, deployments/placement.py), handed over explicitly because the engine
            # core runs in a child process outside the replica's placement-group context.
            import ray.util

            vllm_config.parallel_config.placement_group = ray.util.get_current_placement_group()
        self._llm = AsyncLLM.from_vllm_config(
            vllm_config,
            stat_loggers=[RayPrometheusStatLogger],
            enable_log_requests=self._args.enable_log_requests,
            disable_log_stats=self._args.disable_log_stats,
        )
        model_config = self._llm.model_config
        self.max_model_len = model_config.max_model_len
        # vLLM refuses an image or video with more embeddings than its encoder cache (sized at
        # startup); the ingress fits items below it.
        self.max_media_item_tokens = int(getattr(self._llm.input_processor, "mm_encoder_cache_size", 0) or 0)
        self.tensor_parallel_size = vllm_config.parallel_config.tensor_parallel_size
        # The checkpoint's generation_config.json defaults, as `vllm serve` applies them.
        self.default_sampling_params = model_config.get_diff_sampling_param()

    def _engine(self) -> AsyncLLM:
        if self._llm is None:
            raise EngineUnavailableError("The engine is not started.")
        return self._llm

    async def generate(
        self, prompt: EnginePrompt, params: SamplingParams, request_id: str
    ) -> AsyncIterator[list[Delta]]:
        params.output_kind = RequestOutputKind.DELTA
        try:
            async for deltas in self._deltas(prompt, params, request_id):
                yield deltas
        except EngineDeadError:  # the engine core died: every request of this replica fails
            raise model_unavailable() from None

    async def _deltas(
        self, prompt: EnginePrompt, params: SamplingParams, request_id: str
    ) -> AsyncIterator[list[Delta]]:
        completion_tokens: dict[int, int] = {}
        prompt_tokens = 0
        async for output in self._engine().generate(prompt, params, request_id):
            prompt_tokens = _prompt_length(output) or prompt_tokens
            deltas = []
            for completion in output.outputs:
                count = completion_tokens.get(completion.index, 0) + len(completion.token_ids)
                completion_tokens[completion.index] = count
                deltas.append(
                    Delta(
                        index=completion.index,
                        text=completion.text,
                        completion_tokens=count,
                        prompt_tokens=prompt_tokens,
                        finish_reason=openai_finish_reason(completion.finish_reason),
                        stop_reason=completion.stop_reason,
                        logprobs=_openai_logprobs(completion, params.logprobs),
                    )
                )
            if deltas:
                yield deltas

    async def abort(self, request_id: str) -> None:
        if self._llm is not None:
            await self._llm.abort(request_id)

    async def check_health(self) -> None:
        await self._engine().check_health()

    def num_unfinished_requests(self) -> int:
        return self._llm.get_num_unfinished_requests() if self._llm is not None else 0

    def shutdown(self) -> None:
        if self._llm is not None:
            self._llm.shutdown()
            self._llm = None


def openai_finish_reason(reason: str | None) -> str | None:
    """vLLM's finish reason as one the OpenAI types allow, or the error it stands for.

    vLLM 0.32 has five (`vllm.v1.engine.FINISH_REASON_STRINGS`): `stop` and `length` pass;
    `repetition` (its repetitive-pattern detector ended the output) is a stop condition, so
    `stop`; `error` is a request-level engine failure, which `vllm serve` answers as a 500
    (`GenerationError`); `abort` means the engine dropped the request (paused, shutting
    down, or aborted elsewhere), which the client may retry: 503.
    """
    if reason == "repetition":
        return "stop"
    if reason == "error":
        raise ServeError("The engine failed while generating; retry.", code="generation_error")
    if reason == "abort":
        raise EngineUnavailableError("The engine aborted the generation; retry.", code="aborted")
    return reason


def _prompt_length(output: RequestOutput) -> int:
    """Prompt length as the engine counted it (placeholder tokens of images included)."""
    return len(output.prompt_token_ids) if output.prompt_token_ids else 0


def _openai_logprobs(completion: CompletionOutput, top_n: int | None) -> list[dict[str, Any]] | None:
    """vLLM's per-token logprob maps as OpenAI `ChatCompletionTokenLogprob` dicts."""
    if top_n is None or completion.logprobs is None:
        return None
    entries = []
    for token_id, step in zip(completion.token_ids, completion.logprobs):
        chosen = step.get(token_id) if step else None
        ranked = sorted(step.items(), key=lambda item: item[1].rank or 0) if step else []
        entries.append(
            {
                **_token_entry(chosen.decoded_token if chosen else "", chosen.logprob if chosen else 0.0),
                "top_logprobs": [
                    _token_entry(lp.decoded_token or "", lp.logprob) for _, lp in ranked[:top_n]
                ],
            }
        )
    return entries


def _token_entry(token: str, logprob: float) -> dict[str, Any]:
    return {
        "token": token,
        "logprob": max(logprob, -9999.0),
        "bytes": list(token.encode("utf-8", errors="replace")),
    }
