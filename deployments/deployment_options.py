"""Ray Serve options of one deployment, checked against Ray's own schema before anything starts.

The config's `deployment:` block is what `build_app` passes to `Deployment.options`. Rather
than a hand-written copy of Ray's options (which falls behind Ray and refuses valid ones,
such as `max_replicas_per_node`, `logging_config` or `user_config`), the block is validated
by Ray's pydantic models: `ray.serve.schema.DeploymentSchema` for the block,
`RayActorOptionsSchema` for `ray_actor_options` and `ray.serve.config.AutoscalingConfig`
for `autoscaling_config`. Those models ignore unknown keys, so a typo would vanish
silently; unknown keys are refused here, naming the closest valid one.

Two keys are ours, not Ray's: `bundle_per_worker` (resources each tensor-parallel worker
reserves) and `placement_group_strategy` (Ray's name; applied to the placement group that
`deployments.placement` derives from `engine_args.tensor_parallel_size`).
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator
from ray.serve.config import AutoscalingConfig
from ray.serve.deployment import Deployment
from ray.serve.schema import DeploymentSchema, RayActorOptionsSchema

from deployments.placement import DEFAULT_STRATEGY, PlacementStrategy

# Set by build_app (`name`) or derived from the engine's parallel sizes (the bundles).
_NOT_OPERATOR_OPTIONS = frozenset({"name", "placement_group_bundles"})


@functools.cache
def ray_deployment_options() -> frozenset[str]:
    """Options Ray's schema knows and `Deployment.options` takes, less those we derive."""
    takes = inspect.signature(Deployment.options).parameters
    return frozenset(name for name in DeploymentSchema.model_fields if name in takes) - _NOT_OPERATOR_OPTIONS


def unknown_key_error(key: str, where: str, valid: Iterable[str]) -> str:
    """`where.key: not a ...; did you mean ...?` for a key no schema knows."""
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(valid)}"
    return f"{where}.{key}: unknown key; {hint}"


def _refuse_unknown(given: dict[str, Any], where: str, valid: Iterable[str]) -> None:
    valid = set(valid)
    for key in given:
        if key not in valid:
            raise ValueError(unknown_key_error(key, where, valid))


def _first_error(exc: ValidationError, where: str) -> str:
    error = exc.errors()[0]
    loc = ".".join(str(part) for part in (where, *error["loc"]))
    return f"{loc}: {error['msg'].removeprefix('Value error, ')}"


def check_ray_options(options: dict[str, Any]) -> None:
    """Raise a `ValueError` naming the key when Ray's schema refuses `options`."""
    _refuse_unknown(options, "deployment", ray_deployment_options())
    if isinstance(options.get("ray_actor_options"), dict):
        _refuse_unknown(options["ray_actor_options"], "deployment.ray_actor_options", RayActorOptionsSchema.model_fields)
    autoscaling = options.get("autoscaling_config")
    if isinstance(autoscaling, dict):
        _refuse_unknown(autoscaling, "deployment.autoscaling_config", AutoscalingConfig.model_fields)
        try:
            AutoscalingConfig.model_validate(autoscaling)
        except ValidationError as exc:
            raise ValueError(_first_error(exc, "deployment.autoscaling_config")) from None
    try:
        DeploymentSchema.model_validate({"name": "check", **options})
    except ValidationError as exc:
        raise ValueError(_first_error(exc, "deployment")) from None


class DeploymentOptions(BaseModel):
    """Ray Serve options of one deployment: Ray's own keys (validated by Ray's schema) plus
    `bundle_per_worker` and `placement_group_strategy` for tensor-parallel replicas."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    placement_group_strategy: PlacementStrategy = Field(
        default=DEFAULT_STRATEGY,
        description=(
            "Models: how the placement group of a tensor-parallel replica (one bundle per "
            "device) is placed; STRICT_PACK keeps all its devices on one node."
        ),
    )
    bundle_per_worker: dict[str, float] | None = Field(
        default=None,
        description=(
            "Models: resources each tensor-parallel worker reserves in the replica's "
            "placement group (default {GPU: 1}; CPU-only, e.g. {CPU: 1}, for the CPU build "
            "of vLLM, whose workers then run as processes of the replica)."
        ),
    )
    _autoscaling: AutoscalingConfig | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _ray_accepts_the_rest(self) -> DeploymentOptions:
        check_ray_options(self.ray_options)
        autoscaling = self.ray_options.get("autoscaling_config")
        if autoscaling is not None:
            self._autoscaling = AutoscalingConfig.model_validate(autoscaling)
        return self

    @property
    def ray_options(self) -> dict[str, Any]:
        """The Ray Serve options as the operator wrote them."""
        return dict(self.model_extra or {})

    @property
    def autoscaling_config(self) -> AutoscalingConfig | None:
        """Ray's validated autoscaling config (min_replicas, max_replicas, ...), if set."""
        return self._autoscaling

    @property
    def num_replicas(self) -> int | str | None:
        """The fixed replica count (`auto` lets Serve choose), if set."""
        return self.ray_options.get("num_replicas")

    @property
    def ray_actor_options(self) -> dict[str, Any]:
        """Ray actor options of each replica (num_cpus, num_gpus, ...)."""
        return dict(self.ray_options.get("ray_actor_options") or {})

    def serve_options(self) -> dict[str, Any]:
        """The options Ray Serve should get: only those the operator set (placement is
        derived from the engine's parallel sizes, see `deployments.placement`)."""
        return self.ray_options
