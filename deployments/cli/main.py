"""`qwen-vl-serve`: operator commands around a Serve config file.

    qwen-vl-serve run serve_config.cpu.yaml    # `serve run`, with metrics at :8080/metrics
    qwen-vl-serve download serve_config.yaml   # fetch every model into the shared cache
    qwen-vl-serve validate serve_config.yaml   # check the file: Ray Serve's schema, then ours (vLLM engine args too)
    qwen-vl-serve status                       # `serve status` (with the auth it needs), requests per model

`run` validates the file, starts a single-machine Ray on the loopback address with its
metrics export port fixed (Prometheus text of ours, Serve's and the engines' metrics), then
hands over to Ray Serve's own `serve run`; on a cluster, use `serve run` or KubeRay. Once
the app's `/health` answers 200 it prints `ready: http://127.0.0.1:8000/v1 (models: ...)`.

`download` resolves each configured model's `source` exactly as a replica would
(deployments/checkpoints/sources.py: hub, revision, QWEN_VL_SERVE_CACHE), so replicas started later
find the weights in the cache; run it on the shared volume before `serve run`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from ray.serve.schema import ServeDeploySchema

from deployments.config import AppConfig
from deployments.families import FamilyError, checkpoint_family
from deployments.placement import TensorParallelError, check_checkpoint_tensor_parallel
from deployments.checkpoints.sources import ModelSourceError, cache_root, resolve_model_path
from deployments.cli.haproxy_reaper import HAProxyReaper
from deployments.cli.readiness import Endpoint, ReadyAnnouncer, endpoint
from deployments.cli.status import status
from deployments.cli.ray_env import apply_serving_defaults, haproxy_enabled

BUILD_APP = "ingress.app:build_app"
DEFAULT_METRICS_EXPORT_PORT = 8080
SERVE_NAMESPACE = "serve"  # the namespace `serve run` uses


def load_app_configs(path: Path) -> dict[str, AppConfig]:
    """Application name -> validated args, for every qwen-vl-serve application in the file."""
    return {name: config for name, (config, _) in _load(path).items()}


def endpoints(path: Path) -> list[Endpoint]:
    """Where each qwen-vl-serve application of the file will answer, with its models."""
    document: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    return [endpoint(document, application, [m.name for m in config.models])
            for config, application in _load(path).values()]


def _load(path: Path) -> dict[str, tuple[AppConfig, dict[str, Any]]]:
    """The file checked by Ray's own Serve config schema, then each of our applications' args."""
    document: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    try:
        ServeDeploySchema.model_validate(document)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise SystemExit(f"{path}: {'.'.join(map(str, error['loc']))}: {error['msg']}") from None
    configs = {}
    for index, application in enumerate(document.get("applications") or []):
        if application.get("import_path") != BUILD_APP:
            continue
        name = application.get("name", f"applications[{index}]")
        try:
            configs[name] = (AppConfig.model_validate(application.get("args") or {}), application)
        except ValidationError as exc:
            raise SystemExit(f"{path}: application {name!r}: {exc}") from None
    if not configs:
        raise SystemExit(f"{path}: no application with import_path {BUILD_APP}")
    return configs


def download(path: Path, only: list[str]) -> int:
    """Resolve every model's source into the cache; 1 if any failed."""
    failed = 0
    for app_name, config in load_app_configs(path).items():
        for model in config.models:
            if only and model.name not in only:
                continue
            print(f"[{app_name}] {model.name}: {model.source}", flush=True)
            try:
                local = resolve_model_path(model)
                check_checkpoint_tensor_parallel(local, model.engine_args)
                checkpoint_family(model.family, str(local))
            except (ModelSourceError, TensorParallelError, FamilyError) as exc:
                print(f"  failed: {exc}", file=sys.stderr, flush=True)
                failed += 1
                continue
            print(f"  ready at {local}", flush=True)
    print(f"cache: {cache_root()}", flush=True)
    return 1 if failed else 0


def run(path: Path, metrics_export_port: int) -> int:
    """Validate `path`, start a local Ray with a fixed metrics port, then `serve run` it."""
    announcer = ReadyAnnouncer(endpoints(path))  # a config error names its field before Ray starts
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # listen on loopback only
    settings = apply_serving_defaults()
    print("ray settings: " + " ".join(f"{k}={v}" for k, v in settings.items()), flush=True)
    import ray
    from ray.serve.scripts import run as serve_run

    # only HAProxy mode can leave a process behind: no /proc scans otherwise
    reaper = HAProxyReaper().start() if haproxy_enabled() else None
    announcer.start()
    try:
        # `_metrics_export_port` is private: `ray start --metrics-export-port` is its only public
        # form; tests/unit/deployments/cli/test_main.py fails if ray.init stops taking it.
        ray.init(namespace=SERVE_NAMESPACE, _metrics_export_port=metrics_export_port)
        print(f"metrics: http://127.0.0.1:{metrics_export_port}/metrics", flush=True)
        serve_run.main(args=[str(path)], prog_name="serve run", standalone_mode=False)
    finally:
        announcer.stop()
        if reaper is not None and (stopped := reaper.stop()):
            print(f"stopped {len(stopped)} haproxy process(es) Ray left running", flush=True)
    return 0


def validate(path: Path) -> int:
    for app_name, config in load_app_configs(path).items():
        print(f"[{app_name}] ok: {', '.join(m.name for m in config.models)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qwen-vl-serve", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("download", help="fetch the configured models into the shared cache")
    fetch.add_argument("config", type=Path, help="a Serve config file (serve_config.yaml)")
    fetch.add_argument("--model", action="append", default=[], help="only this model name (repeatable)")
    check = commands.add_parser("validate", help="validate a Serve config file against the schema")
    check.add_argument("config", type=Path)
    serve = commands.add_parser("run", help="serve a config on this machine, metrics on a fixed port")
    serve.add_argument("config", type=Path, help="a Serve config file (serve_config.cpu.yaml)")
    serve.add_argument(
        "--metrics-export-port", type=int, default=DEFAULT_METRICS_EXPORT_PORT,
        help=f"Ray's Prometheus metrics port (default {DEFAULT_METRICS_EXPORT_PORT})",
    )
    state = commands.add_parser("status", help="`serve status` with the auth Ray 2.60 needs, then requests per model")
    state.add_argument("--address", help="Ray dashboard address (default: Serve's, http://localhost:8265)")
    state.add_argument(
        "--metrics-url", default=f"http://127.0.0.1:{DEFAULT_METRICS_EXPORT_PORT}/metrics",
        help="the app's Prometheus metrics, for the request counts",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # download progress lines
    if args.command == "download":
        return download(args.config, args.model)
    if args.command == "run":
        return run(args.config, args.metrics_export_port)
    if args.command == "status":
        return status(args.address, args.metrics_url)
    return validate(args.config)


if __name__ == "__main__":
    sys.exit(main())
