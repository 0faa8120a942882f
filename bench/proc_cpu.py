"""CPU seconds of a server's process tree, split into engine and serving-path processes.

The serving path's CPU cost per request is what carries over to GPU machines, where the
engine no longer competes for the CPU: every process of a server's tree that is not a vLLM
engine process (raw vLLM: its API server; ours: Ray's proxy, controller, GCS, raylet, the
ingress and model replicas' own Python), divided by the requests served. vLLM names its
engine processes `VLLM::EngineCore` / `VLLM::Worker...` (setproctitle), which is how they
are told apart. The tree itself is read from /proc by deployments/cli/procfs.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from deployments.cli.procfs import Process, process_tree

snapshot = process_tree  # a tree's processes and their CPU at one instant

ENGINE_TITLE_PREFIX = "VLLM::"


def descendants(root: int) -> list[int]:
    """Pids of the tree under `root`, root last (the order to signal them in)."""
    return [pid for pid in process_tree(root) if pid != root] + [root]


@dataclass(frozen=True)
class CpuDelta:
    serving_s: float
    engine_s: float
    by_program: dict[str, float]  # serving CPU seconds per process title (ray::ServeReplica:..., raylet)


def cpu_between(before: dict[int, Process], after: dict[int, Process]) -> CpuDelta:
    """CPU spent between two snapshots of one tree (processes born in between count whole)."""
    serving = engine = 0.0
    by_program: dict[str, float] = {}
    for pid, process in after.items():
        spent = process.cpu_seconds - (before[pid].cpu_seconds if pid in before else 0.0)
        if process.program.startswith(ENGINE_TITLE_PREFIX):
            engine += spent
        else:
            serving += spent
            name = program_group(process.program)
            by_program[name] = by_program.get(name, 0.0) + spent
    return CpuDelta(serving, engine, by_program)


def program_group(program: str) -> str:
    """A process's role: its title without per-replica ids (`ray::ServeReplica:app:Model`)."""
    name = program.rsplit("/", 1)[-1]
    if name.startswith("ray::ServeReplica:"):
        return name.split(" ", 1)[0]
    return name.split(" ", 1)[0][:48]
