"""The Serve application: `build_app(args)` binds one deployment per model and the ingress.

`serve run serve_config.cpu.yaml` calls `build_app` with the config's `args` block
(validated as `deployments.config.AppConfig`). Each model becomes its own autoscalable
deployment of `ModelServer`; the ingress gets a handle to each and serves the HTTP API that
`create_api` builds per replica (never at import time, so tests build it with fake model
clients and no Ray): error rendering, API keys, the OpenAPI document, and the endpoints of
ingress/routes/ (the browser page `/ui` among them).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.config import AppConfig
from deployments.server import ModelServer
from ingress.admission import AdmissionLimit, admission_limit
from ingress.auth import ApiKeyCheck, configured_keys
from ingress.errors import install_error_handlers
from ingress.metrics import initialise_counters
from ingress.openapi import install_schemas
from ingress.router import ModelRouter, ServeModelClient
from ingress.routes import chat, completions, seeds, ui
from ingress.routes import models as model_list
from ingress.routes.dispatch import Services

# Requests one ingress replica takes at once when the config sets none. Ray's default of 5
# capped the whole app at five requests in flight per ingress replica (throughput fell as
# concurrency rose, docs/benchmarks.md); the ingress only waits on I/O and the model
# deployments, whose own max_ongoing_requests / max_queued_requests are the real bounds.
# POST requests past 95% of it get an OpenAI-shaped 503 at once (ingress/admission.py).
INGRESS_MAX_ONGOING_REQUESTS = 1000


def create_api(config: AppConfig, router: ModelRouter) -> FastAPI:
    """The OpenAI-compatible HTTP API over `router`."""
    app = FastAPI(title="qwen-vl-serve", summary="OpenAI-compatible API for Qwen-VL models")
    install_error_handlers(app)
    install_schemas(app)
    services = Services.build(config, router)
    ongoing = config.ingress.deployment.ray_options.get("max_ongoing_requests") or INGRESS_MAX_ONGOING_REQUESTS
    app.add_middleware(
        AdmissionLimit, limit=admission_limit(ongoing), served=services.served,
        default_model=config.default_model_name,
    )
    initialise_counters(services.served, [m.name for m in config.models if m.accepts_images])
    api = APIRouter(dependencies=[Depends(ApiKeyCheck(configured_keys(config.ingress)))])
    for endpoint in (chat, completions, seeds):
        endpoint.register(api, services)
    model_list.register(api, app, services)
    app.include_router(api)
    ui.register(app)
    return app


@serve.ingress()
class Ingress:
    """The HTTP-facing deployment; its FastAPI app is built per replica from the config."""

    def __init__(self, config: dict[str, Any], models: dict[str, DeploymentHandle]) -> None:
        self._config = AppConfig.model_validate(config)
        clients = {name: ServeModelClient(handle) for name, handle in models.items()}
        self._router = ModelRouter.from_clients(self._config, clients)

    def __serve_build_asgi_app__(self):  # noqa: ANN204 - Serve's late-bound ASGI hook
        return create_api(self._config, self._router)


def build_app(args: dict[str, Any]) -> serve.Application:
    """Serve application builder named by `import_path: ingress.app:build_app`."""
    config = AppConfig.model_validate(args)
    models = {
        model.name: serve.deployment(ModelServer)
        .options(name=model.deployment_name, **model.serve_options())
        .bind(model.model_dump())
        for model in config.models
    }
    options = {"max_ongoing_requests": INGRESS_MAX_ONGOING_REQUESTS, **config.ingress.deployment.serve_options()}
    ingress = serve.deployment(Ingress).options(name="ingress", **options)
    return ingress.bind(config.model_dump(), models)
