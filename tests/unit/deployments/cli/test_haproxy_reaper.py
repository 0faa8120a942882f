"""The reaper ends the haproxy processes started under the command, and nothing else."""

from __future__ import annotations

import os
import subprocess
import time

from deployments.cli.haproxy_reaper import HAProxyReaper, haproxy_descendants


def _fake(tmp_path, name: str) -> subprocess.Popen:
    """A long sleep whose program path is named `name` (as Ray's haproxy binary is)."""
    program = tmp_path / name
    program.symlink_to("/bin/sleep")
    return subprocess.Popen([str(program), "60"])


def test_a_haproxy_child_is_seen_and_stopped(tmp_path):
    haproxy = _fake(tmp_path, "haproxy")
    try:
        assert haproxy.pid in haproxy_descendants(os.getpid())
        reaper = HAProxyReaper().start()
        assert reaper.stop() == [haproxy.pid]
        assert haproxy.wait(timeout=5) != 0
    finally:
        haproxy.kill()


def test_other_children_are_left_alone(tmp_path):
    other = _fake(tmp_path, "not-haproxy")
    try:
        assert HAProxyReaper().start().stop() == []
        time.sleep(0.2)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
