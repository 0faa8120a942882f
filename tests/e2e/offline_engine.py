"""Driving vLLM's offline `LLM` in e2e tests that compare it with transformers."""

from __future__ import annotations

from typing import Any


def chat_prompt(processor: Any, part: str, text: str) -> str:
    """The checkpoint's own chat template around one `part` ("image" or "video") and `text`."""
    messages = [{"role": "user", "content": [{"type": part}, {"type": "text", "text": text}]}]
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def greedy(llm: Any, prompt: dict, max_tokens: int) -> Any:
    """One greedy generation of exactly `max_tokens` tokens (EOS ignored)."""
    from vllm import SamplingParams

    params = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=True)
    (output,) = llm.generate([prompt], params, use_tqdm=False)
    return output
