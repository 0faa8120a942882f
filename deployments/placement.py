"""Tensor parallelism: one number in the config, a placement group per replica in Ray Serve.

The operator writes `engine_args.tensor_parallel_size: N` (vLLM's own name; with
`pipeline_parallel_size`, the world size is their product). `build_app` asks
`placement_options` for the deployment options that reserve the replica's devices:

- world size 1: no placement group; the replica holds its device itself
  (`ray_actor_options.num_gpus: 1`) and vLLM runs its one worker in the engine process.
- world size N > 1: a placement group of N bundles, one device each; bundle 0 also holds
  the replica actor's own CPUs (Ray Serve schedules the replica into bundle 0), e.g. for
  N = 2 on GPUs `[{"CPU": 4, "GPU": 1}, {"GPU": 1}]`, STRICT_PACK (one node) by default.
  On GPUs vLLM's Ray executor starts one worker actor per GPU bundle of the replica's
  placement group (`engine_executor_backend` -> "ray"); with CPU-only bundles (the CPU
  build of vLLM, `bundle_per_worker: {CPU: 1}`) its multiprocessing executor runs the
  workers as processes of the replica ("mp"), the bundles reserving their cores.

`check_tensor_parallel` rejects impossible sizes from the checkpoint's config.json before
any engine starts (at build time when the checkpoint is local, else in the replica).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

PlacementStrategy = Literal["STRICT_PACK", "PACK", "SPREAD", "STRICT_SPREAD"]
DEFAULT_STRATEGY: PlacementStrategy = "STRICT_PACK"
DEFAULT_BUNDLE_PER_WORKER: dict[str, float] = {"GPU": 1}


class TensorParallelError(ValueError):
    """The tensor-parallel size cannot work for this model or this deployment."""


def world_size(engine_args: dict[str, Any]) -> int:
    """Devices one replica needs: tensor x pipeline parallel size."""
    return int(engine_args.get("tensor_parallel_size", 1)) * int(engine_args.get("pipeline_parallel_size", 1))


def placement_options(
    engine_args: dict[str, Any],
    ray_actor_options: dict[str, Any],
    bundle_per_worker: dict[str, float] | None = None,
    strategy: PlacementStrategy = DEFAULT_STRATEGY,
) -> dict[str, Any]:
    """Ray Serve deployment options reserving one replica's devices (empty for one device)."""
    size = world_size(engine_args)
    if size < 1:
        raise TensorParallelError(f"engine_args.tensor_parallel_size: must be at least 1, got {size}")
    if size == 1:
        return {}
    if ray_actor_options.get("num_gpus"):
        raise TensorParallelError(
            "deployment.ray_actor_options.num_gpus: leave it out with tensor_parallel_size > 1; "
            "the replica's GPUs come from its placement group, one per tensor-parallel worker"
        )
    replica: dict[str, float] = {"CPU": ray_actor_options.get("num_cpus", 1)}
    replica.update(ray_actor_options.get("resources", {}))
    if "memory" in ray_actor_options:
        replica["memory"] = ray_actor_options["memory"]
    worker = dict(bundle_per_worker or DEFAULT_BUNDLE_PER_WORKER)
    first = {key: replica.get(key, 0) + worker.get(key, 0) for key in {**replica, **worker}}
    bundles = [first] + [dict(worker) for _ in range(size - 1)]
    return {"placement_group_bundles": bundles, "placement_group_strategy": strategy}


def engine_executor_backend(
    engine_args: dict[str, Any], bundle_per_worker: dict[str, float] | None = None
) -> str | None:
    """vLLM's `distributed_executor_backend` for this replica (None: vLLM's own choice)."""
    if "distributed_executor_backend" in engine_args or world_size(engine_args) == 1:
        return engine_args.get("distributed_executor_backend")
    return "ray" if (bundle_per_worker or DEFAULT_BUNDLE_PER_WORKER).get("GPU") else "mp"


def check_tensor_parallel(hf_config: dict[str, Any], tensor_parallel_size: int) -> None:
    """Raise `TensorParallelError` when the model's heads cannot be split `tensor_parallel_size` ways.

    vLLM's rule: attention heads must divide evenly; KV heads either divide evenly or are
    replicated (the size a multiple of them). The vision tower's heads are split too.
    """
    tp = tensor_parallel_size
    if tp == 1:
        return
    text = hf_config.get("text_config") or hf_config
    heads = text.get("num_attention_heads") or hf_config.get("num_attention_heads")
    kv_heads = text.get("num_key_value_heads") or hf_config.get("num_key_value_heads") or heads
    problems = []
    if heads and heads % tp:
        problems.append(f"its {heads} attention heads are not divisible by {tp}")
    if kv_heads and kv_heads % tp and tp % kv_heads:
        problems.append(f"its {kv_heads} KV heads neither divide by {tp} nor divide {tp}")
    vision_heads = (hf_config.get("vision_config") or {}).get("num_heads")
    if vision_heads and vision_heads % tp:
        problems.append(f"its vision tower's {vision_heads} attention heads are not divisible by {tp}")
    if problems:
        raise TensorParallelError(
            f"engine_args.tensor_parallel_size: {tp} cannot split this model: " + "; ".join(problems)
        )


def check_checkpoint_tensor_parallel(model_path: Path, engine_args: dict[str, Any]) -> None:
    """`check_tensor_parallel` on the config.json of a local checkpoint (no-op without one)."""
    config_file = Path(model_path) / "config.json"
    if not config_file.is_file():
        return
    check_tensor_parallel(json.loads(config_file.read_text()), int(engine_args.get("tensor_parallel_size", 1)))
