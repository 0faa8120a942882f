"""Route a request's `model` to the deployment that serves it.

`ModelClient` is what the ingress needs from a model deployment; in production it wraps a
Ray Serve `DeploymentHandle`, in unit tests an in-process `ModelServer` (no Ray). Readiness
is remembered per model once its engine has answered, so `/v1/models` lists only models
that can actually serve (Ray Serve LLM lists them tens of seconds before they answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from deployments.config import AppConfig, ModelConfig
from deployments.errors import ModelNotFoundError
from deployments.calls import Delta, GenerateCall, ModelInfo


class ModelClient(Protocol):
    """Calls into one model deployment."""

    def generate(self, call: GenerateCall) -> AsyncIterator[list[Delta]]: ...

    async def info(self) -> ModelInfo: ...

    async def check_health(self) -> None: ...

    async def running_replicas(self) -> int | None:
        """Replicas up now, asked without a request (None: unknown); only scale-to-zero
        models are asked, so an idle one is not woken by probes."""
        ...


class ServeModelClient:
    """`ModelClient` over a Ray Serve deployment handle."""

    def __init__(self, handle) -> None:  # noqa: ANN001 - ray.serve.handle.DeploymentHandle
        self._handle = handle

    def generate(self, call: GenerateCall) -> AsyncIterator[list[Delta]]:
        return self._handle.options(method_name="generate", stream=True).remote(call)

    async def info(self) -> ModelInfo:
        return await self._handle.info.remote()

    async def check_health(self) -> None:
        await self._handle.check_health.remote()

    async def running_replicas(self) -> int | None:
        """From Serve's controller (a status call, not a request to the deployment)."""
        from ray import serve

        app, name = self._handle.app_name, self._handle.deployment_name
        try:
            status = (await asyncio.to_thread(serve.status)).applications[app].deployments[name]
        except Exception:  # status unavailable: fall back to probing the deployment
            return None
        if status.status in ("UNHEALTHY", "DEPLOY_FAILED"):  # Serve's str enums
            return None  # failing, not idle: the probe reports it
        return status.replica_states.get("RUNNING", 0)


@dataclass
class Route:
    """One served model: its config, its client, and whether it has answered yet."""

    config: ModelConfig
    client: ModelClient
    info: ModelInfo | None = None
    idle: bool = False  # scaled to zero: no replica, one starts with the next request


@dataclass
class ModelRouter:
    """Model name -> route; the default model serves requests that name none."""

    routes: dict[str, Route]
    default_model: str

    @classmethod
    def from_clients(cls, config: AppConfig, clients: dict[str, ModelClient]) -> ModelRouter:
        routes = {m.name: Route(m, clients[m.name]) for m in config.models}
        return cls(routes=routes, default_model=config.default_model_name)

    def route_to_model(self, model: str | None) -> Route:
        """The route for `model` (the default when empty); 404 for unknown names."""
        name = model or self.default_model
        route = self.routes.get(name)
        if route is None:
            raise ModelNotFoundError(
                f"The model `{name}` does not exist.", param="model", code="model_not_found"
            )
        return route

    async def context_length(self, route: Route) -> int | None:
        """The model's context (max_model_len): its engine's once it answered, else asked now
        (the request is about to wait on that replica anyway), else the configured engine
        argument; None when none of these is known."""
        if route.info is None:
            try:
                route.info = await route.client.info()
            except Exception:  # the request's own call reports the failure
                pass
        if route.info is not None:
            return route.info.max_model_len
        configured = route.config.engine_args.get("max_model_len")
        return configured if isinstance(configured, int) else None

    async def probe(self, timeout_s: float) -> dict[str, bool]:
        """Ask every model's engine whether it can answer; remember the ones that did."""

        async def one(route: Route) -> bool:
            # not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that lands as
            # the call completes (deployments/batching.py), leaving a /health that never ends
            try:
                if route.config.scales_to_zero:
                    async with asyncio.timeout(timeout_s):
                        running = await route.client.running_replicas()
                    route.idle = running == 0
                    if route.idle:  # nothing to ask, and asking would start a replica
                        return True
                async with asyncio.timeout(timeout_s):
                    await route.client.check_health()
                if route.info is None:
                    async with asyncio.timeout(timeout_s):
                        route.info = await route.client.info()
                return True
            except Exception:  # TimeoutError included; a cancellation goes through
                return False

        results = await asyncio.gather(*(one(r) for r in self.routes.values()))
        return dict(zip(self.routes, results))

    async def media_limits(self, route: Route) -> tuple[int | None, int]:
        """The model's context (`context_length`; None: unknown) and the most tokens one image or
        video may take (0: no limit known, while its engine has not answered)."""
        context = await self.context_length(route)
        return context, route.info.max_media_item_tokens if route.info is not None else 0

    def ready_models(self) -> list[ModelInfo]:
        """Models whose engine has answered at least once."""
        return [r.info for r in self.routes.values() if r.info is not None]

    def listed_routes(self) -> list[Route]:
        """What `/v1/models` lists: models that answered, and scaled-to-zero ones (a request
        starts them)."""
        return [r for r in self.routes.values() if r.info is not None or r.idle]
