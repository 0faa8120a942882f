"""CPU seconds of a process tree, read from /proc, split into engine and serving-path processes.

The serving path's CPU cost per request is what carries over to GPU machines, where the
engine no longer competes for the CPU: every process of a server's tree that is not a vLLM
engine process (raw vLLM: its API server; ours: Ray's proxy, controller, GCS, raylet, the
ingress and model replicas' own Python), divided by the requests served. vLLM names its
engine processes `VLLM::EngineCore` / `VLLM::Worker...` (setproctitle), which is how they
are told apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
ENGINE_TITLE_PREFIX = "VLLM::"


@dataclass(frozen=True)
class ProcessCpu:
    pid: int
    parent: int
    seconds: float  # user + system, this process only
    engine: bool


def _read_process(pid: int) -> ProcessCpu | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            title = f.read().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:  # gone between listing and reading
        return None
    # the command name may hold spaces and parentheses: fields start after the last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    parent, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
    return ProcessCpu(pid, parent, (utime + stime) / _TICKS_PER_S, title.startswith(ENGINE_TITLE_PREFIX))


def snapshot(root: int) -> dict[int, ProcessCpu]:
    """Every live process in the tree under `root` (itself included)."""
    processes = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (process := _read_process(int(name))) is not None:
            processes[process.pid] = process
    children: dict[int, list[int]] = {}
    for process in processes.values():
        children.setdefault(process.parent, []).append(process.pid)
    tree, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in processes and pid not in tree:
            tree[pid] = processes[pid]
            todo.extend(children.get(pid, []))
    return tree


def descendants(root: int) -> list[int]:
    """Pids of the tree under `root`, root last (the order to signal them in)."""
    return [pid for pid in snapshot(root) if pid != root] + [root]


@dataclass(frozen=True)
class CpuDelta:
    serving_s: float
    engine_s: float


def cpu_between(before: dict[int, ProcessCpu], after: dict[int, ProcessCpu]) -> CpuDelta:
    """CPU spent between two snapshots of one tree (processes born in between count whole)."""
    serving = engine = 0.0
    for pid, process in after.items():
        spent = process.seconds - (before[pid].seconds if pid in before else 0.0)
        if process.engine:
            engine += spent
        else:
            serving += spent
    return CpuDelta(serving, engine)
