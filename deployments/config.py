"""Configuration of the application: which models are served, from where, and how.

The same schema validates `serve_config.yaml` (GPUs) and `serve_config.cpu.yaml` (the tiny
CPU default): it is the `args` block of the Serve application, read by
`ingress.app.build_app`. Errors name the offending field (pydantic's `loc`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ModelFamily = Literal["qwen2-vl", "qwen2.5-vl", "qwen2"]
VISION_FAMILIES: frozenset[str] = frozenset({"qwen2-vl", "qwen2.5-vl"})


class _Strict(BaseModel):
    """Base for config objects: unknown keys are typos, so they are errors."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class DeploymentOptions(_Strict):
    """Ray Serve options of one deployment, passed to `Deployment.options` as given."""

    num_replicas: int | Literal["auto"] | None = Field(
        default=None, description="Fixed replica count; leave unset when autoscaling_config is set."
    )
    autoscaling_config: dict[str, Any] | None = Field(
        default=None, description="Ray Serve autoscaling config (min_replicas, max_replicas, ...)."
    )
    max_ongoing_requests: int | None = Field(
        default=None, ge=1, description="Requests one replica works on at once."
    )
    max_queued_requests: int | None = Field(
        default=None, description="Requests queued per caller before Serve rejects; -1 = no bound."
    )
    ray_actor_options: dict[str, Any] = Field(
        default_factory=dict, description="Ray actor options of each replica (num_cpus, num_gpus, ...)."
    )
    health_check_period_s: float | None = Field(default=None, gt=0)
    health_check_timeout_s: float | None = Field(default=None, gt=0)
    graceful_shutdown_timeout_s: float | None = Field(default=None, ge=0)

    def serve_options(self) -> dict[str, Any]:
        """The options Ray Serve should get: only those the operator set."""
        return self.model_dump(exclude_none=True, exclude_defaults=True)


class ModelConfig(_Strict):
    """One served model: one Ray Serve deployment wrapping one vLLM engine per replica."""

    name: str = Field(min_length=1, description="Name clients send as `model`.")
    family: ModelFamily = Field(description="Model family: qwen2-vl, qwen2.5-vl or qwen2 (text only).")
    source: str = Field(
        min_length=1,
        description=(
            "Where the weights come from: a local directory, `tiny://<family>` (a tiny random "
            "checkpoint built locally), `modelscope://<id>`, `hf://<id>`, or a bare hub id."
        ),
    )
    revision: str | None = Field(default=None, description="Hub revision to pin.")
    engine_args: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments for vLLM's AsyncEngineArgs (max_model_len, dtype, ...).",
    )
    engine_env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables set in the replica before the engine starts (VLLM_*).",
    )
    deployment: DeploymentOptions = Field(default_factory=DeploymentOptions)
    stream_batch_interval_s: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description=(
            "Streaming: after the first delta, merge engine deltas arriving within this "
            "interval into one item across the Serve handle (0 = one item per engine step)."
        ),
    )

    @property
    def accepts_images(self) -> bool:
        """Whether the family has a vision tower."""
        return self.family in VISION_FAMILIES

    @property
    def deployment_name(self) -> str:
        """Ray Serve deployment name, derived from the served name."""
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in self.name)
        return f"model-{safe}"


class IngressConfig(_Strict):
    """Options of the HTTP ingress deployment."""

    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 beyond)."
    )
    health_timeout_s: float = Field(
        default=5.0, gt=0, description="How long /health waits for each model's engine."
    )
    deployment: DeploymentOptions = Field(default_factory=DeploymentOptions)


class AppConfig(_Strict):
    """The whole application: the models and the ingress in front of them."""

    models: list[ModelConfig] = Field(min_length=1, description="Models served, one deployment each.")
    default_model: str | None = Field(
        default=None, description="Model used when a request names none (default: the first)."
    )
    ingress: IngressConfig = Field(default_factory=IngressConfig)

    @model_validator(mode="after")
    def _names_are_unique_and_default_known(self) -> AppConfig:
        names = [m.name for m in self.models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"models: duplicate model names {duplicates}")
        if self.default_model is not None and self.default_model not in names:
            raise ValueError(f"default_model: {self.default_model!r} is not one of {names}")
        return self

    @property
    def default_model_name(self) -> str:
        """The model a request without `model` goes to."""
        return self.default_model or self.models[0].name
