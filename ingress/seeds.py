"""The seeds' endpoints, for users migrating from those tutorials: `POST /generate`, `POST /`.

Both ride on the chat path (same validation, media, routing and sampling fields):
- `/generate` takes `{"messages": [...]}` with Qwen-style parts (`{"type": "image", "image":
  ...}`, `{"type": "video", "video": ...}`, `{"type": "text", "text": ...}`) and answers
  `{"response": "..."}`;
- `/` takes `{"prompt": "..."}`, sent as one user message through the chat template, and
  answers `{"response", "status": "success", "time": <seconds>}`.
A `model` field selects the deployment (else the default model); other chat completion
fields (`max_tokens`, `temperature`, ...) are accepted as on `/v1/chat/completions`.
Errors are OpenAI error objects, as on every other route.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field

from deployments.errors import InvalidRequestError
from ingress.answering import collect
from ingress.chat_completions import start_chat
from ingress.media.resolve import MediaResolver
from ingress.router import ModelRouter


class GenerateBody(BaseModel):
    """`POST /generate` (documentation of the body; validation is the chat path's)."""

    messages: list[dict[str, Any]] = Field(description="Chat messages; content parts in Qwen or OpenAI form.")
    model: str | None = Field(default=None, description="Served model name (default: the default model).")


class GenerateAnswer(BaseModel):
    response: str


class PromptBody(BaseModel):
    """`POST /` (documentation of the body)."""

    prompt: str = Field(description="The user's message.")
    model: str | None = Field(default=None, description="Served model name (default: the default model).")


class PromptAnswer(BaseModel):
    response: str
    status: str = Field(description="`success`; failures are OpenAI error objects with a 4xx/5xx status.")
    time: float = Field(description="Seconds the server spent on the request.")


async def generate(body: Any, request_id: str, router: ModelRouter, media: MediaResolver, max_n: int) -> dict:
    """`/generate`: the first choice's text."""
    _check_object(body, "messages")
    return {"response": await _answer(body, request_id, router, media, max_n)}


async def prompt(body: Any, request_id: str, router: ModelRouter, media: MediaResolver, max_n: int) -> dict:
    """`/`: the seeds' prompt-in, response-out format."""
    started = time.perf_counter()
    _check_object(body, "prompt")
    if not isinstance(body["prompt"], str):
        raise InvalidRequestError("prompt must be a string", param="prompt")
    chat = {key: value for key, value in body.items() if key != "prompt"}
    chat["messages"] = [{"role": "user", "content": body["prompt"]}]
    text = await _answer(chat, request_id, router, media, max_n)
    return {"response": text, "status": "success", "time": round(time.perf_counter() - started, 3)}


def _check_object(body: Any, required: str) -> None:
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object")
    if required not in body:
        raise InvalidRequestError(f"Missing required field `{required}`", param=required)
    if body.get("stream"):
        raise InvalidRequestError(
            "This endpoint answers whole responses; stream with /v1/chat/completions", param="stream"
        )


async def _answer(body: dict, request_id: str, router: ModelRouter, media: MediaResolver, max_n: int) -> str:
    answer = await collect((await start_chat(body, request_id, router, media, max_n)).stream)
    first = answer.choices.get(0)
    return "".join(first.text) if first else ""
