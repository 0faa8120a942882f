"""Build response bodies as the `openai` package's own types.

`ChatCompletion` for a whole answer, `ChatCompletionChunk` for stream events; they are
constructed from engine `Delta`s so usage is the engine's real token count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat import ChatCompletionTokenLogprob
from openai.types.chat.chat_completion import Choice, ChoiceLogprobs
from openai.types.chat.chat_completion_chunk import ChoiceLogprobs as ChunkChoiceLogprobs
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from openai.types.completion_usage import CompletionUsage

from deployments.protocol import Delta


@dataclass
class _ChoiceState:
    text: list[str] = field(default_factory=list)
    completion_tokens: int = 0
    finish_reason: str | None = None
    logprobs: list[dict] | None = None


@dataclass
class ChatAccumulator:
    """Collects deltas of every choice into the final answer and its usage."""

    choices: dict[int, _ChoiceState] = field(default_factory=dict)
    prompt_tokens: int = 0

    def add(self, delta: Delta) -> None:
        state = self.choices.setdefault(delta.index, _ChoiceState())
        state.text.append(delta.text)
        state.completion_tokens = delta.completion_tokens
        state.finish_reason = delta.finish_reason or state.finish_reason
        if delta.logprobs is not None:
            state.logprobs = (state.logprobs or []) + delta.logprobs
        self.prompt_tokens = delta.prompt_tokens or self.prompt_tokens

    def usage(self) -> CompletionUsage:
        completion = sum(s.completion_tokens for s in self.choices.values())
        return CompletionUsage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=completion,
            total_tokens=self.prompt_tokens + completion,
        )

    def completion(self, completion_id: str, model: str, created: int) -> ChatCompletion:
        return ChatCompletion(
            id=completion_id,
            object="chat.completion",
            created=created,
            model=model,
            choices=[
                Choice(
                    index=index,
                    message=ChatCompletionMessage(role="assistant", content="".join(state.text)),
                    finish_reason=state.finish_reason or "stop",
                    logprobs=_choice_logprobs(state.logprobs),
                )
                for index, state in sorted(self.choices.items())
            ],
            usage=self.usage(),
        )


@dataclass(frozen=True)
class ChunkFactory:
    """Stream events of one completion: same id, model and creation time on each."""

    completion_id: str
    model: str
    created: int
    include_usage: bool

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

    def content(self, delta: Delta) -> ChatCompletionChunk:
        choice_delta = ChoiceDelta(content=delta.text) if delta.text else ChoiceDelta()
        logprobs = _chunk_logprobs(delta.logprobs)
        return self._chunk(
            [ChunkChoice(index=delta.index, delta=choice_delta, finish_reason=delta.finish_reason, logprobs=logprobs)]
        )

    def usage(self, usage: CompletionUsage) -> ChatCompletionChunk:
        return self._chunk([], usage)


def _choice_logprobs(entries: list[dict] | None) -> ChoiceLogprobs | None:
    return None if entries is None else ChoiceLogprobs(content=[ChatCompletionTokenLogprob(**e) for e in entries])


def _chunk_logprobs(entries: list[dict] | None) -> ChunkChoiceLogprobs | None:
    if entries is None:
        return None
    return ChunkChoiceLogprobs(content=[ChatCompletionTokenLogprob(**e) for e in entries])


def now() -> int:
    """Creation time as OpenAI reports it (whole seconds)."""
    return int(time.time())
