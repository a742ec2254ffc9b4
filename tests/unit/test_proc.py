"""Whether a process runs, as the queue's lease owners and `syncd start` ask it."""

from __future__ import annotations

import os
import subprocess
import sys

from syncd.system.proc import pid_alive
from tests.support.daemonproc import wait_until


def _state(pid: int) -> bytes:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rpartition(b")")[2].split()[0]


def test_a_killed_process_not_yet_reaped_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert pid_alive(child.pid)
        child.kill()  # not waited for: a zombie until its parent (this test) reaps it
        wait_until(lambda: _state(child.pid) == b"Z", what="the child becomes a zombie")
        assert not pid_alive(child.pid)
    finally:
        child.wait()
    assert not pid_alive(child.pid)  # reaped, gone


def test_this_process_is_alive() -> None:
    assert pid_alive(os.getpid())
