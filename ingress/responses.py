"""Answers as the `openai` package's own types, built from the model's `Delta`s.

`ChatCompletion` / `Completion` for a whole answer (`whole_response`, one JSON body),
`ChatCompletionChunk` / `Completion` chunks for stream events (framed by ingress/sse.py);
usage is the engine's real token count, and it is recorded here, where the answer counts it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse

from openai.types import Completion, CompletionChoice
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat import ChatCompletionMessageToolCall, ChatCompletionTokenLogprob
from openai.types.chat.chat_completion import Choice, ChoiceLogprobs
from openai.types.chat.chat_completion_chunk import ChoiceLogprobs as ChunkChoiceLogprobs
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta, ChoiceDeltaToolCall
from openai.types.completion_choice import Logprobs as CompletionLogprobs
from openai.types.completion_usage import CompletionUsage
from pydantic import BaseModel

from deployments.calls import Delta
from ingress.grounding import Grounder
from ingress.metrics import RequestObserver


@dataclass
class _ChoiceState:
    text: list[str] = field(default_factory=list)
    completion_tokens: int = 0
    finish_reason: str | None = None
    logprobs: list[dict] | None = None
    tool_calls: list[dict[str, Any]] | None = None


@dataclass
class ChatAccumulator:
    """Collects deltas of every choice into the final answer and its usage."""

    choices: dict[int, _ChoiceState] = field(default_factory=dict)
    choices_per_prompt: int = 0  # > 0 when choices of several prompts share the answer
    prompt_tokens_by_prompt: dict[int, int] = field(default_factory=dict)

    @property
    def prompt_tokens(self) -> int:
        return sum(self.prompt_tokens_by_prompt.values())

    def add(self, delta: Delta) -> None:
        state = self.choices.setdefault(delta.index, _ChoiceState())
        state.text.append(delta.text)
        state.completion_tokens = delta.completion_tokens
        state.finish_reason = delta.finish_reason or state.finish_reason
        if delta.logprobs is not None:
            state.logprobs = (state.logprobs or []) + delta.logprobs
        if delta.tool_calls:
            state.tool_calls = (state.tool_calls or []) + delta.tool_calls
        if delta.prompt_tokens:
            prompt = delta.index // self.choices_per_prompt if self.choices_per_prompt else 0
            self.prompt_tokens_by_prompt[prompt] = delta.prompt_tokens

    def text_of(self, index: int) -> str:
        """Choice `index`'s text so far."""
        state = self.choices.get(index)
        return "".join(state.text) if state else ""

    def usage(self) -> CompletionUsage:
        completion = sum(s.completion_tokens for s in self.choices.values())
        return CompletionUsage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=completion,
            total_tokens=self.prompt_tokens + completion,
        )

    def completion(
        self, completion_id: str, model: str, created: int, grounder: Grounder | None = None
    ) -> ChatCompletion:
        return ChatCompletion(
            id=completion_id,
            object="chat.completion",
            created=created,
            model=model,
            choices=[
                Choice(
                    index=index,
                    message=_message(state, grounder),
                    finish_reason=state.finish_reason or "stop",
                    logprobs=_choice_logprobs(state.logprobs),
                )
                for index, state in sorted(self.choices.items())
            ],
            usage=self.usage(),
        )

    def text_completion(self, completion_id: str, model: str, created: int) -> Completion:
        """The whole answer of `/v1/completions`."""
        return Completion(
            id=completion_id,
            object="text_completion",
            created=created,
            model=model,
            choices=[
                CompletionChoice(
                    index=index,
                    text="".join(state.text),
                    finish_reason=state.finish_reason or "stop",
                    logprobs=completion_logprobs(state.logprobs),
                )
                for index, state in sorted(self.choices.items())
            ],
            usage=self.usage(),
        )


async def collect(
    stream: AsyncIterable[list[Delta]], observer: RequestObserver, choices_per_prompt: int = 0
) -> ChatAccumulator:
    """Every delta of a whole (non-streamed) answer, accumulated; its tokens recorded."""
    accumulator = ChatAccumulator(choices_per_prompt=choices_per_prompt)
    async for batch in stream:
        for delta in batch:
            accumulator.add(delta)
    usage = accumulator.usage()
    observer.tokens(usage.prompt_tokens, usage.completion_tokens)
    return accumulator


async def whole_response(
    stream: AsyncIterable[list[Delta]],
    whole: Callable[[ChatAccumulator], BaseModel],
    headers: dict[str, str],
    observer: RequestObserver,
    choices_per_prompt: int = 0,
) -> JSONResponse:
    """The `whole` answer of a non-streamed request, as one JSON body."""
    accumulator = await collect(stream, observer, choices_per_prompt)
    return JSONResponse(whole(accumulator).model_dump(mode="json", exclude_unset=True), headers=headers)


def include_usage(request: Any) -> bool:
    """Whether a streamed request asked for the final usage chunk."""
    return bool(request.stream_options and request.stream_options.include_usage)


def _message(state: _ChoiceState, grounder: Grounder | None = None) -> ChatCompletionMessage:
    """The assistant's message; `content` is null when it only calls tools, as OpenAI's is;
    `grounding` (an extension field) holds the boxes found in the text."""
    text = "".join(state.text)
    extra = _grounding(text, grounder)
    if not state.tool_calls:
        return ChatCompletionMessage(role="assistant", content=text, **extra)
    calls = [ChatCompletionMessageToolCall.model_validate(call) for call in state.tool_calls]
    return ChatCompletionMessage(role="assistant", content=text or None, tool_calls=calls, **extra)


def _grounding(text: str, grounder: Grounder | None) -> dict[str, Any]:
    boxes = grounder(text) if grounder is not None and text else []
    return {"grounding": boxes} if boxes else {}


@dataclass(frozen=True)
class ChunkFactory:
    """Stream events of one completion: same id, model and creation time on each."""

    completion_id: str
    model: str
    created: int
    include_usage: bool
    grounder: Grounder | None = None

    def _chunk(self, choices: list[ChunkChoice], usage: CompletionUsage | None = None) -> ChatCompletionChunk:
        chunk = ChatCompletionChunk(
            id=self.completion_id,
            object="chat.completion.chunk",
            created=self.created,
            model=self.model,
            choices=choices,
        )
        if self.include_usage:  # OpenAI sends `usage: null` on every chunk but the last
            chunk.usage = usage
        return chunk

    def role(self, index: int) -> ChatCompletionChunk:
        delta = ChoiceDelta(role="assistant", content="")
        return self._chunk([ChunkChoice(index=index, delta=delta, finish_reason=None, logprobs=None)])

    def content(self, delta: Delta, text: str = "") -> ChatCompletionChunk:
        """A choice's new text; its finishing chunk also carries the boxes of the whole `text`."""
        extra = _grounding(text, self.grounder) if delta.finish_reason else {}
        choice_delta = ChoiceDelta(content=delta.text, **extra) if delta.text else ChoiceDelta(**extra)
        if delta.tool_calls:
            choice_delta.tool_calls = [
                ChoiceDeltaToolCall.model_validate({**call, "index": i}) for i, call in enumerate(delta.tool_calls)
            ]
        logprobs = _chunk_logprobs(delta.logprobs)
        return self._chunk(
            [ChunkChoice(index=delta.index, delta=choice_delta, finish_reason=delta.finish_reason, logprobs=logprobs)]
        )

    def usage(self, usage: CompletionUsage) -> ChatCompletionChunk:
        return self._chunk([], usage)


@dataclass(frozen=True)
class CompletionChunkFactory:
    """Stream events of one `/v1/completions` answer (`Completion` objects, no role chunk)."""

    completion_id: str
    model: str
    created: int
    include_usage: bool

    def _chunk(self, choices: list[CompletionChoice], usage: CompletionUsage | None = None) -> Completion:
        chunk = Completion(
            id=self.completion_id, object="text_completion", created=self.created, model=self.model, choices=choices
        )
        if self.include_usage:
            chunk.usage = usage
        return chunk

    def role(self, index: int) -> None:
        """Text completions have no role: nothing opens a choice."""
        return None

    def content(self, delta: Delta, text: str = "") -> Completion:
        # constructed unvalidated: the openai type's finish_reason is not nullable, while
        # stream chunks carry `null` until the last (as OpenAI's and vLLM's do)
        choice = CompletionChoice.model_construct(
            index=delta.index, text=delta.text, finish_reason=delta.finish_reason,
            logprobs=completion_logprobs(delta.logprobs),
        )
        return self._chunk([choice])

    def usage(self, usage: CompletionUsage) -> Completion:
        return self._chunk([], usage)


def completion_logprobs(entries: list[dict] | None) -> CompletionLogprobs | None:
    """Chat-style token logprob dicts in the legacy completions shape (offsets into the text)."""
    if entries is None:
        return None
    offsets, position = [], 0
    for entry in entries:
        offsets.append(position)
        position += len(entry["token"])
    return CompletionLogprobs(
        tokens=[e["token"] for e in entries],
        token_logprobs=[e["logprob"] for e in entries],
        top_logprobs=[{t["token"]: t["logprob"] for t in e.get("top_logprobs", [])} for e in entries],
        text_offset=offsets,
    )


def _choice_logprobs(entries: list[dict] | None) -> ChoiceLogprobs | None:
    return None if entries is None else ChoiceLogprobs(content=[ChatCompletionTokenLogprob(**e) for e in entries])


def _chunk_logprobs(entries: list[dict] | None) -> ChunkChoiceLogprobs | None:
    if entries is None:
        return None
    return ChunkChoiceLogprobs(content=[ChatCompletionTokenLogprob(**e) for e in entries])


def now() -> int:
    """Creation time as OpenAI reports it (whole seconds)."""
    return int(time.time())
