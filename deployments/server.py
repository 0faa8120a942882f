"""The model deployment: one replica = one engine serving one configured model.

Sits at the end of the request path: the ingress sends a `GenerateCall` (Qwen-format
messages with decoded images, plus vLLM's validated request); this class renders the
chat template, builds vLLM `SamplingParams` exactly as `vllm serve` does, and streams
`Delta` batches back. It is a plain class so unit tests can run it without Ray; `build_app`
turns it into a Serve deployment per model.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from vllm import SamplingParams
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
from vllm.exceptions import VLLMClientError

from deployments.batching import coalesce
from deployments.chat_template import ChatRenderer
from deployments.config import TEMPORAL_PIXEL_BUDGET_FAMILIES, ModelConfig
from deployments.engines.protocol import Engine, EnginePrompt
from deployments.errors import EngineUnavailableError, InvalidRequestError, ServeError, as_invalid_request, cancelling
from deployments.families import checkpoint_family
from deployments.placement import check_checkpoint_tensor_parallel
from deployments.calls import ChatPrompt, Delta, GenerateCall, ModelInfo
from deployments.checkpoints.sources import resolve_model_path
from deployments.tools import constrain, tool_schemas, uses_tools, with_tool_calls

logger = logging.getLogger("ray.serve")

EngineFactory = Callable[[ModelConfig, Path], Engine]


def _default_engine_factory(config: ModelConfig, path: Path) -> Engine:
    from deployments.engines.vllm_engine import VLLMEngine

    return VLLMEngine(config, path)


class ModelServer:
    """Serves one model: chat template, sampling parameters, engine stream."""

    async def __init__(
        self, config: ModelConfig | dict[str, Any], engine_factory: EngineFactory | None = None
    ) -> None:
        self.config = ModelConfig.model_validate(config)
        # The replica is a process of its own: the engine (and the engine-core process it
        # spawns) read VLLM_* settings from the environment.
        os.environ.update(self.config.engine_env)
        path = await asyncio.to_thread(resolve_model_path, self.config)
        # Hub checkpoints are first seen here: refuse an impossible tensor-parallel size
        # with a clear message before vLLM starts any worker.
        check_checkpoint_tensor_parallel(path, self.config.engine_args)
        checkpoint_family(self.config.family, str(path))  # the weights are the configured family
        self._renderer = await asyncio.to_thread(ChatRenderer.from_pretrained, path, self.config)
        self._engine = (engine_factory or _default_engine_factory)(self.config, path)
        await self._engine.start()
        self._created = int(time.time())
        logger.info("Model %s ready from %s", self.config.name, path)

    async def info(self) -> ModelInfo:
        """Name, family and limits; answering at all proves the replica is up."""
        return ModelInfo(
            name=self.config.name,
            family=self.config.family,
            max_model_len=self._engine.max_model_len,
            max_media_item_tokens=getattr(self._engine, "max_media_item_tokens", 0),
            tensor_parallel_size=self._engine.tensor_parallel_size,
            created=self._created,
        )

    async def check_health(self) -> None:
        """Ray Serve's health hook: a dead engine makes the replica unhealthy."""
        await self._engine.check_health()

    async def unfinished_requests(self) -> int:
        """Requests the engine still holds: 0 once every stream ended or was aborted."""
        return self._engine.num_unfinished_requests()

    async def generate(self, call: GenerateCall) -> AsyncIterator[list[Delta]]:
        """Stream the deltas of one completion, chat or plain prompt (choices interleaved).

        Everything that can refuse the request (template, sampling parameters, the engine's
        own checks) runs inside the one `try`, so a refusal is a 400, never a 500.
        """
        prompt_param = "prompt" if isinstance(call.prompt, str) else "messages"
        try:
            request = call.request
            if isinstance(request, ChatCompletionRequest):
                request = constrain(request, self.config.family)
            prompt = self._engine_prompt(call.prompt, request)
            params = self._sampling_params(request)
            stream = coalesce(
                self._engine.generate(prompt, params, call.request_id),
                self.config.stream_batch_interval_s,
            )
            if isinstance(request, ChatCompletionRequest) and uses_tools(request):
                stream = with_tool_calls(stream, request, self._renderer.tokenizer)
            async for deltas in stream:
                yield deltas
        except asyncio.CancelledError:
            # The caller went away (client disconnect): free the engine's slot now.
            await self._engine.abort(call.request_id)
            if not cancelling():  # not our cancellation: the engine's stream was cut
                raise EngineUnavailableError("The generation was interrupted; retry.", code="aborted") from None
            raise
        except ServeError:
            raise
        except TemplateError as exc:  # the chat template's own refusal (e.g. role order)
            reason = exc.message or type(exc).__name__
            raise InvalidRequestError(f"The chat template refused the messages: {reason}", "messages") from None
        except (ValueError, VLLMClientError) as exc:  # vLLM's rejections of the input
            raise as_invalid_request(exc, prompt_param=prompt_param) from None

    def _engine_prompt(self, chat: ChatPrompt | str, request: Any) -> EnginePrompt:
        if isinstance(chat, str):  # /v1/completions: the prompt as sent, no template
            return {"prompt": chat}
        # the request's template variables (e.g. add_vision_id: "Picture N:" before each image);
        # the ingress refused the ones that would change how the prompt is built
        variables = getattr(request, "chat_template_kwargs", None) or {}
        text = self._renderer.render(chat.messages, **variables, tools=tool_schemas(request))
        prompt: EnginePrompt = {"prompt": text}
        images, videos = chat.images, chat.videos
        data: dict[str, Any] = {}
        if images:
            # RGB uint8 (H, W, 3) arrays as they crossed the handle: vLLM's Qwen processors
            # take them as they take PIL images (vLLM reads H, W from a channels-last shape).
            data["image"] = images
        if videos:
            # (frames, metadata): Qwen2.5-VL needs the metadata (its fps sets the temporal
            # positions); Qwen2-VL's parser drops it. Frames are already sampled.
            data["video"] = [(frames, dict(metadata, do_sample_frames=False)) for frames, metadata in videos]
        if data:
            prompt["multi_modal_data"] = data
            # The ingress already resized every image and frame to multiples of the model's
            # factor (28, or 32 for Qwen3-VL) the Qwen way; bracket the processor's
            # min/max_pixels around the actual sizes so its smart_resize keeps each as it is
            # (a no-op on multiples of the factor in range). Qwen3-VL's video processor
            # bounds all frames together: a video's size there is frames x height x width.
            areas = [image.shape[0] * image.shape[1] for image in images]
            per_video = self.config.family in TEMPORAL_PIXEL_BUDGET_FAMILIES
            areas += [(len(frames) if per_video else 1) * frames.shape[1] * frames.shape[2] for frames, _ in videos]
            prompt["mm_processor_kwargs"] = {
                "min_pixels": min(areas),
                "max_pixels": max(areas),
                "do_sample_frames": False,
            }
        return prompt

    def _sampling_params(self, request: Any) -> SamplingParams:
        with warnings.catch_warnings():  # `max_tokens` is deprecated, yet clients send it
            warnings.simplefilter("ignore", DeprecationWarning)
            named = "max_completion_tokens" if getattr(request, "max_completion_tokens", None) else "max_tokens"
            requested = getattr(request, named)
        context = self._engine.max_model_len
        if requested is not None and requested > context:
            # vLLM's own refusal (TokenizeParams), word for word; within the context, like
            # `vllm serve`, the engine stops at max_model_len (finish_reason "length").
            raise InvalidRequestError(
                f"{named}={requested} cannot be greater than max_model_len={context}. "
                "Please request fewer output tokens.",
                param=named,
            )
        # Like `vllm serve`: the request, else the checkpoint's default, else the context;
        # the engine stops at max_model_len whatever the prompt's length.
        max_tokens = requested or self._engine.default_sampling_params.get("max_tokens") or context
        try:
            return request.to_sampling_params(max_tokens, self._engine.default_sampling_params)
        except (ValueError, VLLMClientError) as exc:
            raise as_invalid_request(exc) from None

    def __del__(self) -> None:
        """Serve calls this when the replica stops: release the engine's processes."""
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.shutdown()
