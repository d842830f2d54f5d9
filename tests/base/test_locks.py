"""The run lock against a real second process: refused while it lives, taken over after SIGKILL."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from medcap.base.locks import LOCK_NAME, FolderLock, LockedError, RunLock, lock_holder

PROJECT_ROOT = Path(__file__).resolve().parents[2]

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


_RELEASER = """
import sys
from medcap.base.locks import FolderLock
lock = FolderLock(sys.argv[1]).acquire()
print("locked", flush=True)
sys.stdin.readline()
lock.release()
print("released", flush=True)
"""


class _Waiting(logging.Handler):
    """Sets `seen` when a lock logs that it waits."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "waiting for it" in record.getMessage():
            self.seen.set()


def test_waiting_lock_blocks_until_the_holder_releases(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-c", _RELEASER, str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    handler = _Waiting()
    logger = logging.getLogger("medcap.base.locks")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    got: list[FolderLock] = []
    waiter = threading.Thread(target=lambda: got.append(FolderLock(folder, wait=True).acquire()))
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "locked"
        waiter.start()
        assert handler.seen.wait(60)  # the waiter found the lock taken and said so...
        assert not got and lock_holder(folder) == proc.pid  # ...and does not hold it
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "released"
        waiter.join(60)
        assert len(got) == 1 and got[0].held
        assert got[0].stale_pid is None  # released cleanly, not taken over
        assert lock_holder(folder) == os.getpid()
        assert (folder / LOCK_NAME).read_text().strip() == str(os.getpid())
        got[0].release()
        assert (folder / LOCK_NAME).read_text() == ""
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        for lock in got:
            lock.release()


def test_run_lock_is_the_folder_lock_that_refuses(tmp_path: Path) -> None:
    assert RunLock is FolderLock
    with FolderLock(tmp_path, wait=True), pytest.raises(LockedError):
        RunLock(tmp_path).acquire()
