"""`POST /v1/completions`: a plain text prompt (no chat template), streamed or whole.

Text only, like `vllm serve` for these models. A list of prompts is answered in one
response: each prompt is its own engine request, and the choices of prompt `i` get
indexes `i * n .. i * n + n - 1`, as OpenAI numbers them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from openai.types import Completion
from vllm.entrypoints.openai.completion.protocol import CompletionRequest

from deployments.calls import Delta, GenerateCall
from deployments.errors import cancelling
from ingress.metrics import record_media_counts
from ingress.openapi import answers
from ingress.request import check_text_length, parse_completion_request, prompts_of
from ingress.request_ids import echo_headers, engine_request_id
from ingress.responses import CompletionChunkFactory, include_usage, now, whole_response
from ingress.routes.dispatch import Exchange, Services, post
from ingress.sse import stream_response

_END = object()


async def completions(body: Any, exchange: Exchange) -> Response:
    """Text completion (OpenAI legacy): a plain prompt, no chat template."""
    limits = exchange.app.config.ingress
    request = parse_completion_request(body, limits.max_n, limits.max_choices)
    route = exchange.app.router.route_to_model(request.model)
    prompts = prompts_of(request)
    context = await exchange.app.router.context_length(route)
    for i, prompt in enumerate(prompts if context is not None else []):
        param = "prompt" if isinstance(request.prompt, str) else f"prompt[{i}]"
        check_text_length(len(prompt), context, limits.prompt_chars_per_token, param)
    completion_id, created, model = f"cmpl-{exchange.request_id}", now(), route.config.name
    engine_request = request.model_copy(update={"prompt": None})
    streams = [
        route.client.generate(
            GenerateCall(
                request_id=engine_request_id(completion_id if len(prompts) == 1 else f"{completion_id}-{i}"),
                prompt=prompt,
                request=engine_request,
            )
        )
        for i, prompt in enumerate(prompts)
    ]
    record_media_counts(model, 0, 0)  # text only
    merged, headers = MergedStream(streams, request.n), echo_headers(exchange.request_id)
    if request.stream:
        chunks = CompletionChunkFactory(completion_id, model, created, include_usage(request))
        return await stream_response(merged, chunks, headers, exchange.observer, choices_per_prompt=request.n)
    return await whole_response(
        merged, lambda answer: answer.text_completion(completion_id, model, created), headers,
        exchange.observer, choices_per_prompt=request.n,
    )


def register(api: APIRouter, app: Services) -> None:
    post(api, app, "/v1/completions", completions, CompletionRequest, answers(Completion, Completion))


class MergedStream:
    """The delta streams of several prompts as one, choices renumbered by prompt.

    `cancel()` cancels every source (a client that leaves aborts all its engine requests).
    """

    def __init__(self, streams: list[AsyncIterator[list[Delta]]], choices_per_prompt: int) -> None:
        self._streams = streams
        self._n = choices_per_prompt

    def cancel(self) -> None:
        for stream in self._streams:
            if hasattr(stream, "cancel"):
                stream.cancel()

    def __aiter__(self) -> AsyncIterator[list[Delta]]:
        if len(self._streams) == 1:
            return aiter(self._streams[0])
        return self._merged()

    async def _merged(self) -> AsyncIterator[list[Delta]]:
        queue: asyncio.Queue = asyncio.Queue()

        async def pump(offset: int, stream: AsyncIterator[list[Delta]]) -> None:
            try:
                async for batch in stream:
                    queue.put_nowait([replace(d, index=offset + d.index) for d in batch])
            except asyncio.CancelledError as exc:
                if cancelling():  # cancelled by the consumer below: it is gone
                    raise
                queue.put_nowait(exc)  # a source cut on the other side: the consumer reports it
            except Exception as exc:  # re-raised by the consumer
                queue.put_nowait(exc)
            finally:
                queue.put_nowait(_END)

        tasks = [asyncio.create_task(pump(i * self._n, s)) for i, s in enumerate(self._streams)]
        try:
            remaining = len(tasks)
            while remaining:
                item = await queue.get()
                if item is _END:
                    remaining -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
