"""Tool calling for one chat request: constrain the output, then read the calls back.

Uses vLLM's own pieces, as `vllm serve --tool-call-parser hermes` does: a named
`tool_choice` or `"required"` constrains generation to JSON with the schema vLLM derives
from the tools (`get_json_schema_from_tools`); with `"auto"` the model writes Qwen2.5's
hermes `<tool_call>{...}</tool_call>` blocks, which vLLM's `Hermes2ProToolParser` extracts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
from vllm.renderers.chat_utils import make_tool_call_id
from vllm.sampling_params import StructuredOutputsParams
from vllm.tool_parsers.hermes_tool_parser import Hermes2ProToolParser
from vllm.tool_parsers.utils import get_json_schema_from_tools

from deployments.batching import merge_deltas
from deployments.errors import InvalidRequestError
from deployments.calls import Delta

# Families whose chat template renders `tools` (Qwen2-VL's template has no tools section).
TOOL_FAMILIES = frozenset({"qwen2.5-vl", "qwen3-vl", "qwen2"})
TOOL_CALL_START = "<tool_call>"  # hermes: content before it streams, the calls after it are parsed


def uses_tools(request: ChatCompletionRequest) -> bool:
    """Whether the request lets the model call its tools."""
    return bool(request.tools) and request.tool_choice not in (None, "none")


def tool_schemas(request: ChatCompletionRequest) -> list[dict[str, Any]] | None:
    """The tools as the chat template expects them (OpenAI's function tool dicts)."""
    if not request.tools:
        return None
    return [tool.model_dump(exclude_none=True) for tool in request.tools]


def constrain(request: ChatCompletionRequest, family: str) -> ChatCompletionRequest:
    """Check the family supports tools; force JSON output for named or required calls."""
    if not request.tools:
        return request
    if family not in TOOL_FAMILIES:
        raise InvalidRequestError(
            f"Models of family {family} have no tool-calling chat template", param="tools",
            code="tools_not_supported",
        )
    schema = get_json_schema_from_tools(request.tool_choice, request.tools, request.parallel_tool_calls)
    if schema is None:
        return request
    return request.model_copy(
        update={"structured_outputs": StructuredOutputsParams(json=schema), "response_format": None}
    )


def parse_tool_calls(
    text: str, request: ChatCompletionRequest, tokenizer: Any
) -> tuple[str | None, list[dict[str, Any]]]:
    """(content, tool_calls as OpenAI dicts) read from the whole generated text."""
    choice = request.tool_choice
    if isinstance(choice, str) and choice == "auto":
        extracted = Hermes2ProToolParser(tokenizer, request.tools).extract_tool_calls(text, request)
        if not extracted.tools_called:
            return text, []
        calls = [call.model_dump() for call in extracted.tool_calls]
        return extracted.content or None, calls
    if choice == "required":
        try:
            items = json.loads(text)
        except ValueError:
            return text, []  # cut short (max_tokens): hand back what was generated
        calls = [_call(item["name"], item.get("parameters", {})) for item in items]
        return None, calls
    name = choice.function.name  # a named tool: the output is that tool's arguments
    return None, [{"id": make_tool_call_id(), "type": "function", "function": {"name": name, "arguments": text}}]


def _call(name: str, arguments: Any) -> dict[str, Any]:
    return {
        "id": make_tool_call_id(),
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)},
    }


async def with_tool_calls(
    stream: AsyncIterator[list[Delta]], request: ChatCompletionRequest, tokenizer: Any
) -> AsyncIterator[list[Delta]]:
    """The stream of a request with tools: each choice's last delta carries its tool calls.

    With `auto`, text streams as usual until a choice writes `<tool_call>`; from there its
    text is held and parsed when it finishes. A named or required choice is pure JSON,
    held whole.
    """
    if not (isinstance(request.tool_choice, str) and request.tool_choice == "auto"):
        whole = merge_deltas([batch async for batch in stream])  # one delta per choice
        if whole:
            yield [_finished(delta, delta.text, 0, request, tokenizer) for delta in whole]
        return
    choices: dict[int, _AutoChoice] = {}
    async for batch in stream:
        out = []
        for delta in batch:
            state = choices.setdefault(delta.index, _AutoChoice())
            state.text += delta.text
            if delta.finish_reason is not None:
                out.append(_finished(delta, state.text, state.sent, request, tokenizer))
                continue
            safe = state.safe_length()
            if safe > state.sent or delta.logprobs:
                out.append(replace(delta, text=state.text[state.sent:safe]))
                state.sent = safe
        if out:
            yield out


@dataclass
class _AutoChoice:
    """One choice's text so far and how much of it went out as content."""

    text: str = ""
    sent: int = 0

    def safe_length(self) -> int:
        """How much of the text is surely content: up to `<tool_call>`, or short of a
        suffix that may be its beginning."""
        start = self.text.find(TOOL_CALL_START, self.sent)  # the text before `sent` holds none
        if start >= 0:
            return start
        for size in range(min(len(TOOL_CALL_START) - 1, len(self.text)), 0, -1):
            if TOOL_CALL_START.startswith(self.text[-size:]):
                return len(self.text) - size
        return len(self.text)


def _finished(delta: Delta, text: str, sent: int, request: ChatCompletionRequest, tokenizer: Any) -> Delta:
    """The last delta of a choice: content not yet sent, and its tool calls."""
    content, calls = parse_tool_calls(text, request, tokenizer)
    rest = (content or "")[sent:] if calls else text[sent:]
    return replace(
        delta,
        text=rest,
        tool_calls=calls or None,
        finish_reason="tool_calls" if calls else delta.finish_reason,
    )
