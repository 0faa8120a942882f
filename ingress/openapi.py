"""The OpenAPI document at `/openapi.json`: the real request and response schemas.

The routes read raw JSON (they enforce a body size limit before parsing and validate with
vLLM's own request models, ingress/request.py), so FastAPI cannot see their bodies; this
module names them: vLLM's `ChatCompletionRequest` / `CompletionRequest` in, the `openai`
package's `ChatCompletion` / `Completion` (and their stream chunks) out.
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
from vllm.entrypoints.openai.completion.protocol import CompletionRequest

_REF = "#/components/schemas/{model}"
_REQUESTS: tuple[type[BaseModel], ...] = (ChatCompletionRequest, CompletionRequest)
_RESPONSES: tuple[type[BaseModel], ...] = (ChatCompletion, ChatCompletionChunk, Completion)


@functools.cache
def _components() -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
    """(model -> its `$ref`, every schema by component name), generated together so that
    same-named nested models (the openai package has several `Choice`s) stay distinct."""
    pairs = [(m, "validation") for m in _REQUESTS] + [(m, "serialization") for m in _RESPONSES]
    refs, schemas = models_json_schema(pairs, ref_template=_REF)
    return {model: refs[(model, mode)] for model, mode in pairs}, schemas.get("$defs", {})


def ref(model: type[BaseModel]) -> dict[str, Any]:
    """A JSON reference to `model`'s schema among the document's components."""
    return dict(_components()[0][model])


def json_body(model: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` for a route whose JSON body follows `model` (a model or a schema)."""
    schema = ref(model) if isinstance(model, type) else model
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def answers(whole: type[BaseModel] | dict[str, Any], chunk: type[BaseModel] | None = None) -> dict[int | str, Any]:
    """`responses` of a route: `whole` as JSON, and `chunk` events as SSE when it streams."""
    content: dict[str, Any] = {"application/json": {"schema": ref(whole) if isinstance(whole, type) else whole}}
    if chunk is not None:
        content["text/event-stream"] = {
            "schema": {"type": "string", "description": f"`data: <{chunk.__name__} JSON>` events, then `data: [DONE]`"}
        }
    return {200: {"description": "The answer", "content": content}, "4XX": {"description": "OpenAI error object"}}


def install_schemas(app: FastAPI) -> None:
    """Generate `/openapi.json` with the request and response models as components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            document.setdefault("components", {}).setdefault("schemas", {}).update(_components()[1])
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
