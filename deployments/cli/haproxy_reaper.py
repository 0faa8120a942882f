"""Make sure no HAProxy outlives `qwen-vl-serve run` (when HAProxy mode is turned on).

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

from deployments.cli.procfs import process_tree, read_process

_SCAN_INTERVAL_S = 2.0
_TERM_GRACE_S = 3.0


def haproxy_descendants(root: int) -> set[int]:
    """Pids of the haproxy processes in the process tree under `root`."""
    return {pid for pid, process in process_tree(root).items() if _is_haproxy(pid, process.program)}


def _is_haproxy(pid: int, program: str | None = None) -> bool:
    if program is None:
        process = read_process(pid)
        program = process.program if process else ""
    return os.path.basename(program) == "haproxy"


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
        left = [pid for pid in self.seen if _is_haproxy(pid)]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in left:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + _TERM_GRACE_S
            while time.monotonic() < deadline and any(_is_haproxy(p) for p in left):
                time.sleep(0.1)
        return left
