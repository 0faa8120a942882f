"""The process tree under a pid, read from /proc (Linux): who descends from whom, what each
runs, and the CPU it has used. `qwen-vl-serve run` finds the haproxy processes of its own
Ray with it (haproxy_reaper.py); bench/load_bench.py sums a server's CPU with it."""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Process:
    pid: int
    parent: int
    program: str  # argv[0], or the title a process set for itself (setproctitle)
    cpu_seconds: float  # user + system, this process only


def read_process(pid: int) -> Process | None:
    """One process, or None when it is gone (or a zombie's empty command line)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            program = f.read().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return None
    # the command name may hold spaces and parentheses: fields start after the last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    return Process(pid, int(fields[1]), program, (int(fields[11]) + int(fields[12])) / _TICKS_PER_S)


def process_tree(root: int) -> dict[int, Process]:
    """Every live process under `root` (itself included), by pid."""
    processes = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (process := read_process(int(name))) is not None:
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
