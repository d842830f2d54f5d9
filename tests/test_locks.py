"""The run lock against a real second process: refused while it lives, taken over after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from medcap.base.locks import LOCK_NAME, LockedError, RunLock, lock_holder

PROJECT_ROOT = Path(__file__).resolve().parents[1]

_HOLDER = """
import sys, time
from medcap.base.locks import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path: Path):
    """A second Python process holding the lock on tmp_path/run (killed at the end in any case)."""
    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield folder, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_live_holder_refuses_then_sigkill_leaves_a_stale_lock_that_is_taken_over(holder) -> None:
    folder, proc = holder
    assert (folder / LOCK_NAME).read_text().strip() == str(proc.pid)
    assert lock_holder(folder) == proc.pid
    with pytest.raises(LockedError) as info:
        RunLock(folder).acquire()
    assert str(info.value) == f"{folder} is already being trained by pid {proc.pid}"
    assert info.value.pid == proc.pid

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (folder / LOCK_NAME).read_text().strip() == str(proc.pid)  # the dead pid is still written there
    assert lock_holder(folder) is None  # ...but the OS dropped the flock
    with RunLock(folder) as lock:
        assert lock.held and lock.stale_pid == proc.pid
        assert (folder / LOCK_NAME).read_text().strip() == str(os.getpid())
        assert lock_holder(folder) == os.getpid()
    assert not lock.held and lock_holder(folder) is None
    assert (folder / LOCK_NAME).read_text() == ""


def test_lock_in_this_process(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "run"
    assert lock_holder(folder) is None  # the probe creates nothing
    assert not folder.exists()
    first = RunLock(folder).acquire()
    try:
        with pytest.raises(LockedError, match=rf"is already being trained by pid {os.getpid()}$"):
            RunLock(folder).acquire()  # not re-entrant, even within one process
        with pytest.raises(RuntimeError, match="already held"):
            first.acquire()
    finally:
        first.release()
    first.release()  # releasing twice is harmless
    with RunLock(folder) as again:
        assert again.stale_pid is None  # a cleanly released lock is not stale
