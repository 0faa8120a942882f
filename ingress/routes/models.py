"""`GET /v1/models`, `GET /v1/models/{model}` and `GET /health`: readiness, never a generation.

Models are listed once their engine has answered (or while scaled to zero: a request starts
them); `/health` is 200 only when every model answers, and needs no API key (probes).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

from deployments.calls import ModelInfo
from ingress.routes.dispatch import Services

_READY_PROBE_TIMEOUT_S = 0.5


def register(api: APIRouter, app: FastAPI, services: Services) -> None:
    """The model routes on `api` (behind the API key), `/health` on `app` (open)."""
    router, config = services.router, services.config

    @api.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        """The models whose engine has answered (not merely configured)."""
        if len(router.ready_models()) < len(router.routes):
            await router.probe(_READY_PROBE_TIMEOUT_S)
        cards = [model_card(r.info) if r.info else config_card(r.config.name) for r in router.listed_routes()]
        return {"object": "list", "data": cards}

    @api.get("/v1/models/{model:path}")
    async def retrieve_model(model: str) -> dict[str, Any]:
        """One model's card; 404 for a name this server does not serve."""
        route = router.route_to_model(model)
        if route.info is None:
            await router.probe(_READY_PROBE_TIMEOUT_S)
        return model_card(route.info) if route.info else config_card(route.config.name)

    @app.get("/health")
    async def health() -> JSONResponse:
        """200 once every model's engine answers (or is scaled to zero), else 503 (no key needed)."""
        status = await router.probe(config.ingress.health_timeout_s)
        ready = all(status.values())
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "models": status}, status_code=200 if ready else 503
        )


def model_card(info: ModelInfo) -> dict[str, Any]:
    """An OpenAI model object for a model whose engine has answered."""
    return {
        "id": info.name,
        "object": "model",
        "created": info.created,
        "owned_by": "qwen-vl-serve",
        "max_model_len": info.max_model_len,
    }


def config_card(name: str) -> dict[str, Any]:
    """A model object from the config alone (scaled to zero: no engine to ask)."""
    return {"id": name, "object": "model", "created": 0, "owned_by": "qwen-vl-serve"}
