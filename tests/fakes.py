"""Fakes for unit tests only: a deterministic engine and an in-process model client.

`FakeEngine` implements the engine protocol without vLLM's engine core: it "generates"
`word0 word1 ...` (a fixed word count, cut by max_tokens) and counts prompt tokens as
whitespace-separated words plus a fixed 4 tokens per image. `LocalModelClient` calls a
`ModelServer` in this process instead of through a Ray Serve handle.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from vllm import SamplingParams

from deployments.config import ModelConfig
from deployments.engines.protocol import EnginePrompt
from deployments.calls import Delta, GenerateCall, ModelInfo
from deployments.server import ModelServer

FAKE_WORDS_PER_ANSWER = 5
FAKE_TOKENS_PER_IMAGE = 4


class FakeEngine:
    """Deterministic stand-in for VLLMEngine (unit tests only)."""

    def __init__(self, config: ModelConfig, model_path: Path) -> None:
        self.config = config
        self.max_model_len = 4096
        self.max_media_item_tokens = 0  # no per-item limit unless a test sets one
        self.tensor_parallel_size = 1
        self.default_sampling_params: dict[str, Any] = {}
        self.started = False
        self.healthy = True
        self.aborted: list[str] = []
        self.prompts: list[EnginePrompt] = []
        self.params: list[SamplingParams] = []
        self.step_delay_s = 0.0
        self.answer: str | None = None  # when set, the whole answer, in one delta

    async def start(self) -> None:
        self.started = True

    async def generate(
        self, prompt: EnginePrompt, params: SamplingParams, request_id: str
    ) -> AsyncIterator[list[Delta]]:
        self.prompts.append(prompt)
        self.params.append(params)
        images = len(prompt.get("multi_modal_data", {}).get("image", []))
        prompt_tokens = len(prompt["prompt"].split()) + FAKE_TOKENS_PER_IMAGE * images
        if self.answer is not None:
            yield [Delta(index=0, text=self.answer, completion_tokens=1, prompt_tokens=prompt_tokens, finish_reason="stop")]
            return
        limit = min(FAKE_WORDS_PER_ANSWER, params.max_tokens or FAKE_WORDS_PER_ANSWER)
        for step in range(limit):
            if self.step_delay_s:
                await asyncio.sleep(self.step_delay_s)
            last = step == limit - 1
            finish = None
            if last:
                finish = "stop" if limit == FAKE_WORDS_PER_ANSWER else "length"
            yield [
                Delta(
                    index=i,
                    text=f"word{step} ",
                    completion_tokens=step + 1,
                    prompt_tokens=prompt_tokens,
                    finish_reason=finish,
                    logprobs=_fake_logprobs(f"word{step} ", params.logprobs),
                )
                for i in range(params.n)
            ]

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)

    def num_unfinished_requests(self) -> int:
        return 0

    async def check_health(self) -> None:
        if not self.healthy:
            raise RuntimeError("fake engine marked unhealthy")

    def shutdown(self) -> None:
        self.started = False


def _fake_logprobs(token: str, top_n: int | None) -> list[dict[str, Any]] | None:
    if top_n is None:
        return None
    entry = {"token": token, "logprob": -0.5, "bytes": list(token.encode())}
    alternatives = [{"token": f"alt{k}", "logprob": -1.0 - k, "bytes": list(f"alt{k}".encode())} for k in range(top_n)]
    return [{**entry, "top_logprobs": alternatives}]


async def start_fake_server(config: ModelConfig) -> ModelServer:
    """A ModelServer over a FakeEngine, constructed as Serve would (async __init__)."""
    server = ModelServer.__new__(ModelServer)
    await server.__init__(config, engine_factory=FakeEngine)
    return server


class LocalModelClient:
    """ModelClient calling a ModelServer in this process (no Ray)."""

    def __init__(self, server: ModelServer) -> None:
        self.server = server
        self.replicas: int | None = 1  # what Serve would report as running

    async def running_replicas(self) -> int | None:
        return self.replicas

    def generate(self, call: GenerateCall) -> AsyncIterator[list[Delta]]:
        return self.server.generate(call)

    async def info(self) -> ModelInfo:
        return await self.server.info()

    async def check_health(self) -> None:
        await self.server.check_health()
