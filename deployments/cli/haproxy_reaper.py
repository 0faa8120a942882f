"""Make sure no HAProxy outlives `qwen-vl-serve run`.

Ray Serve 2.60's HAProxy mode runs `haproxy` as a child of its HAProxyManager actor. When
the local Ray goes down before that actor's graceful shutdown has run (a Ctrl-C reaching
every process of the terminal's group, say), the haproxy process is re-parented to init and
keeps the HTTP port bound: the next start then fails, or a dead app seems to answer. This
watcher remembers the haproxy processes started under this command and ends them on exit.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

_SCAN_INTERVAL_S = 2.0
_TERM_GRACE_S = 3.0


def _processes() -> Iterator[tuple[int, int, str]]:
    """(pid, parent pid, program path) of every live process."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            with open(f"/proc/{name}/cmdline", "rb") as f:
                program = f.read().split(b"\0", 1)[0].decode(errors="replace")
        except OSError:
            continue
        yield int(name), int(stat[stat.rindex(")") + 2 :].split()[1]), program


def haproxy_descendants(root: int) -> set[int]:
    """Pids of the haproxy processes in the process tree under `root`."""
    processes = list(_processes())
    children: dict[int, list[int]] = {}
    for pid, parent, _ in processes:
        children.setdefault(parent, []).append(pid)
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo.extend(children.get(pid, []))
    return {pid for pid, _, program in processes if pid in tree and _is_haproxy(program)}


def _is_haproxy(program: str) -> bool:
    return os.path.basename(program) == "haproxy"


def _still_haproxy(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return _is_haproxy(f.read().split(b"\0", 1)[0].decode(errors="replace"))
    except OSError:
        return False


class HAProxyReaper:
    """Watches this process's tree for haproxy; `stop()` ends the ones still running."""

    def __init__(self, root: int | None = None) -> None:
        self._root = os.getpid() if root is None else root
        self.seen: set[int] = set()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="haproxy-reaper", daemon=True)

    def start(self) -> HAProxyReaper:
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._done.wait(_SCAN_INTERVAL_S):
            self.seen |= haproxy_descendants(self._root)

    def stop(self) -> list[int]:
        """SIGTERM (then SIGKILL) every haproxy seen that is still running; returns them."""
        self._done.set()
        self.seen |= haproxy_descendants(self._root)
        left = [pid for pid in self.seen if _still_haproxy(pid)]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in left:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + _TERM_GRACE_S
            while time.monotonic() < deadline and any(_still_haproxy(p) for p in left):
                time.sleep(0.1)
        return left
