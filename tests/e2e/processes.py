"""The processes behind the running e2e app, for the fault and soak tests: each replica's
pid (asked of the replica actor itself), its vLLM engine-core child, resident memory, and
the engines' gauges on Ray's metrics export port."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from deployments.cli.procfs import process_tree
from deployments.config import ModelConfig
from tests.e2e.conftest import cpu_app_args

APP = "qwen-vl"
INGRESS = "ingress"
ENGINE_CORE_TITLE = "VLLM::EngineCore"  # the title vLLM gives its engine-core process


@dataclass(frozen=True)
class Replica:
    actor: str  # Serve's actor name, SERVE_REPLICA::<app>#<deployment>#<id>
    pid: int
    worker_id: str  # Ray's WorkerId label on the metrics the replica records


def deployment_of(model: str) -> str:
    """The Serve deployment name of one of the shared app's models."""
    (config,) = [m for m in cpu_app_args()["models"] if m["name"] == model]
    return ModelConfig.model_validate(config).deployment_name


def _whoami(_replica: object) -> tuple[int, str]:
    import ray

    return os.getpid(), ray.get_runtime_context().get_worker_id()


def replicas(deployment: str, app: str = APP, timeout_s: float = 10) -> list[Replica]:
    """The live replicas of `deployment` that answer within `timeout_s` (a replica still
    in its constructor does not)."""
    import ray

    found = []
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if not actor["name"].startswith(f"SERVE_REPLICA::{app}#{deployment}#"):
            continue
        try:
            handle = ray.get_actor(actor["name"], namespace=actor["namespace"])
            pid, worker_id = ray.get(handle.__ray_call__.remote(_whoami), timeout=timeout_s)
        except (ray.exceptions.RayError, ValueError):
            continue  # starting, dying or gone
        found.append(Replica(actor["name"], pid, worker_id))
    return found


@dataclass(frozen=True)
class Pid:
    """A process, told apart from a later one given the same number (pids wrap around fast
    on a busy machine): its pid and its start time."""

    pid: int
    started: int  # clock ticks after boot

    @classmethod
    def of(cls, pid: int) -> Pid | None:
        fields = _stat_fields(pid)
        return cls(pid, int(fields[19])) if fields else None

    def alive(self) -> bool:
        """Still running (a zombie counts as gone), and not a newer process with its number."""
        fields = _stat_fields(self.pid)
        return fields is not None and fields[0] != "Z" and int(fields[19]) == self.started


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: state is [0], process group [2], start time [19]."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def engine_cores(replica_pid: int, wait_s: float = 60) -> list[Pid]:
    """The vLLM engine-core processes of a replica: its descendants titled so, or (should
    one have been re-parented) those in its process group (Ray gives each worker its own).
    Waits up to `wait_s` for one to appear; the failure lists the engine cores there were."""
    deadline = time.monotonic() + wait_s
    while True:
        below = process_tree(replica_pid)
        cores = [p for p in process_tree(1).values() if p.program.startswith(ENGINE_CORE_TITLE)]
        mine = [Pid.of(p.pid) for p in cores if p.pid in below or _group(p.pid) == replica_pid]
        if found := [pid for pid in mine if pid is not None]:
            return found
        if time.monotonic() > deadline:
            seen = [(p.pid, p.parent, _group(p.pid)) for p in cores]
            raise AssertionError(f"no engine core of replica {replica_pid}; (pid, parent, group) of those seen: {seen}")
        time.sleep(1)


def _group(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[2]) if fields else None


def rss_kib(pid: int) -> int:
    """Resident memory of one process (VmRSS, KiB)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise ValueError(f"no VmRSS for pid {pid}")


def gauge_by_worker(metrics_port: int, name: str, model: str) -> dict[str, float]:
    """One gauge of Ray's metrics export for `model`, per Ray worker that recorded it."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("model_name") == model:
                worker = sample.labels.get("WorkerId", "")
                values[worker] = values.get(worker, 0.0) + sample.value
    return values
