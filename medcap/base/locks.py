"""One process per folder: an OS-level lock on `<folder>/.lock` holding the owner's pid.

The lock is `fcntl.flock` on the lock file, so the operating system drops it when its process dies,
even by SIGKILL: a lock file left behind by a dead process is stale and simply taken over. One class,
`FolderLock`, serves every folder: a run folder (train/resume refuse a run another process trains)
and a feature store folder (an extraction waits for another process extracting the same store).

    with RunLock(run_dir):          # LockedError("<run_dir> is already being trained by pid N")
        train(...)
    with FolderLock(store_dir, wait=True):   # blocks until the other process releases it
        extract(...)

The file itself is never replaced or deleted (the lock lives on its inode: replacing it, as an atomic
write would, or deleting it would let two processes lock two different files), so the pid is written
into the locked file in place; it is informational, the flock decides.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


class LockedError(RuntimeError):
    """The folder is locked by another live process (`pid`, None when it wrote none)."""

    def __init__(self, folder: Path, pid: int | None) -> None:
        self.folder = folder
        self.pid = pid
        who = f"pid {pid}" if pid else "another process"
        super().__init__(f"{folder} is already being trained by {who}")


def _read_pid(fd: int) -> int | None:
    """The pid written in an open lock file, or None."""
    try:
        raw = os.pread(fd, 64, 0)
    except OSError:
        return None
    text = raw.decode("ascii", errors="replace").strip()
    return int(text) if text.isdigit() else None


class FolderLock:
    """An exclusive lock on `<folder>/.lock` (context manager, or `acquire`/`release`).

    `acquire` raises LockedError when another live process holds it, or with `wait=True` logs that it
    waits and blocks until that process releases it (or dies). A lock left by a dead process is taken
    over (`stale_pid` then names that process). Not re-entrant: a second lock on the same folder in the
    same process is refused too (with `wait=True` it would wait forever).
    """

    def __init__(self, folder: str | os.PathLike[str], wait: bool = False) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.wait = wait
        self.stale_pid: int | None = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> FolderLock:
        """Take the lock and write this process's pid into it; LockedError if a live process holds it
        (unless `wait`: then block until it is free)."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: lock already held by this object")
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            busy = exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
            pid = _read_pid(fd)
            if not (busy and self.wait):
                os.close(fd)
                if busy:
                    raise LockedError(self.folder, pid) from None
                raise
            log.info("%s is locked by %s: waiting for it", self.folder, f"pid {pid}" if pid else "another process")
            _blocking_flock(fd)
        previous = _read_pid(fd)
        if previous is not None and previous != os.getpid():
            self.stale_pid = previous
            log.warning("%s: taking over a stale lock left by pid %d (no longer running)", self.folder, previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Clear the pid and drop the lock (the empty file stays); no-op when not held."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


RunLock = FolderLock  # the name the run code uses: a run folder's lock is a FolderLock that does not wait


def _blocking_flock(fd: int) -> None:
    """Block until the exclusive flock on `fd` is ours (closing `fd` on failure)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise


def lock_holder(folder: str | os.PathLike[str]) -> int | None:
    """The pid of the live process holding `folder`'s lock (0 if it wrote none), or None when unlocked.

    Read-only probe for dashboards: it never creates the lock file and never holds the lock.
    """
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return _read_pid(fd) or 0
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


__all__ = ["LOCK_NAME", "FolderLock", "LockedError", "RunLock", "lock_holder"]
