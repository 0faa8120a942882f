"""The seeds' endpoints, for users migrating from those tutorials: `POST /generate`, `POST /`.

Both ride on the chat path (same validation, media, routing and sampling fields):
- `/generate` takes `{"messages": [...]}` with Qwen-style parts (`{"type": "image", "image":
  ...}`, `{"type": "video", "video": ...}`, `{"type": "text", "text": ...}`) and answers
  `{"response": "..."}`;
- `/` takes `{"prompt": "..."}`, sent as one user message through the chat template, and
  answers `{"response", "status": 200, "time": <seconds>}` (the HTTP status as a number,
  as the seed's server did).
A `model` field selects the deployment (else the default model); other chat completion
fields (`max_tokens`, `temperature`, ...) are accepted as on `/v1/chat/completions`.
Errors are OpenAI error objects, as on every other route.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from deployments.errors import InvalidRequestError
from ingress.openapi import answers
from ingress.responses import collect
from ingress.routes.chat import start_chat
from ingress.routes.dispatch import Exchange, Services, post


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
    status: int = Field(description="200; failures are OpenAI error objects with a 4xx/5xx HTTP status.")
    time: float = Field(description="Seconds the server spent on the request.")


async def generate(body: Any, exchange: Exchange) -> dict:
    """The seeds' `{"messages": [...]}` -> `{"response": ...}`."""
    _check_object(body, "messages")
    return {"response": await _answer(body, exchange)}


async def prompt(body: Any, exchange: Exchange) -> dict:
    """The seeds' `{"prompt": ...}` -> `{"response", "status", "time"}`."""
    started = time.perf_counter()
    _check_object(body, "prompt")
    if not isinstance(body["prompt"], str):
        raise InvalidRequestError("prompt must be a string", param="prompt")
    chat = {key: value for key, value in body.items() if key != "prompt"}
    chat["messages"] = [{"role": "user", "content": body["prompt"]}]
    text = await _answer(chat, exchange)
    return {"response": text, "status": 200, "time": round(time.perf_counter() - started, 3)}


def register(api: APIRouter, app: Services) -> None:
    post(api, app, "/generate", generate, GenerateBody.model_json_schema(),
         answers(GenerateAnswer.model_json_schema()))
    post(api, app, "/", prompt, PromptBody.model_json_schema(), answers(PromptAnswer.model_json_schema()))


def _check_object(body: Any, required: str) -> None:
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object")
    if required not in body:
        raise InvalidRequestError(f"Missing required field `{required}`", param=required)
    if body.get("stream"):
        raise InvalidRequestError(
            "This endpoint answers whole responses; stream with /v1/chat/completions", param="stream"
        )


async def _answer(body: dict, exchange: Exchange) -> str:
    answer = await collect((await start_chat(body, exchange)).stream, exchange.observer)
    first = answer.choices.get(0)
    return "".join(first.text) if first else ""
