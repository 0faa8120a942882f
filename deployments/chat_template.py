"""Render Qwen-format messages into the model's prompt text with its own chat template.

The template comes from the checkpoint's tokenizer (as `vllm serve` uses it), so image
placeholders become `<|vision_start|><|image_pad|><|vision_end|>` exactly as the model was
trained; vLLM then expands each `<|image_pad|>` to the image's token count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from deployments.config import ModelConfig


class ChatRenderer:
    """Applies one model's chat template."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, accepts_images: bool) -> None:
        self._tokenizer = tokenizer
        self._accepts_images = accepts_images

    @classmethod
    def from_pretrained(cls, path: Path, config: ModelConfig) -> ChatRenderer:
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
        return cls(tokenizer, config.accepts_images)

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The checkpoint's tokenizer (tool-call parsing needs its vocabulary)."""
        return self._tokenizer

    def render(self, messages: list[dict[str, Any]], **template_kwargs: Any) -> str:
        """Prompt text for `messages`, ending with the assistant's turn opened."""
        return self._tokenizer.apply_chat_template(
            [_for_template(m) for m in messages],
            tokenize=False,
            add_generation_prompt=True,
            **template_kwargs,
        )


def _for_template(message: dict[str, Any]) -> dict[str, Any]:
    """Collapse text-only content to one string: every Qwen template accepts that form."""
    content = message.get("content")
    if isinstance(content, list) and all(part.get("type") == "text" for part in content):
        return {**message, "content": "".join(part["text"] for part in content)}
    return message
