"""The one child-process runner: `python -m medcap ...` in the background or to the end, and stopping one.

Every child gets the same command line (`medcap_command`), environment (`child_env`: this process's, plus
the artifacts root) and working directory (`project_root`). Three ways to run one:
- `spawn`: detached in its own session, output appended to a log (the dashboard's launches);
- `ChildGroup.run`: to the end, stdout captured, several at once from threads, all stopped together
  (the demo pipeline's steps);
- `terminate`: SIGTERM a recorded pid, only when it is a medcap process.
No Streamlit and no TensorFlow here (children import TensorFlow, never this process).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import medcap
from medcap.base import paths

log = logging.getLogger(__name__)


class ChildFailedError(RuntimeError):
    """A child command exited with an error."""


class CancelledError(RuntimeError):
    """The group was cancelled (SIGTERM) while a child ran."""


def project_root() -> Path:
    """The folder holding the `medcap` package (the working directory of launched processes)."""
    return Path(medcap.__file__).resolve().parent.parent


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus the artifacts root (children import the installed `medcap`) and `extra`."""
    env = dict(os.environ)
    env["MEDCAP_ARTIFACTS"] = str(paths.artifacts_dir().resolve())
    env.update(extra or {})
    return env


def medcap_command(args: Sequence[str]) -> list[str]:
    """The command line of `python -m medcap <args>` with this interpreter."""
    return [sys.executable, "-m", "medcap", *args]


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists on this machine."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Launch:
    """A process started in the background."""

    pid: int
    log_path: Path
    command: list[str]


def spawn(args: Sequence[str], log_path: Path) -> Launch:
    """Start `python -m medcap <args>` detached (own session), stdout+stderr appended to `log_path`.

    The child keeps running when the page reloads or the browser closes. A daemon thread reaps it
    when it ends, so a finished child never lingers as a zombie that looks alive.
    """
    command = medcap_command(args)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:  # a growing log cannot be written atomically
        proc = subprocess.Popen(
            command,
            cwd=project_root(),
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
    log.info("started pid %d: %s (log %s)", proc.pid, " ".join(args), log_path)
    return Launch(pid=proc.pid, log_path=log_path, command=command)


def is_medcap_process(pid: int) -> bool:
    """Whether `pid` runs medcap: an argument of its command line is exactly `medcap` (`python -m medcap ...`).

    A path that merely contains "medcap" (the project folder, its venv's python) does not count.
    """
    cmdline = Path(f"/proc/{int(pid)}/cmdline")
    if not cmdline.parent.parent.is_dir() or not cmdline.exists():
        return pid_alive(pid)
    try:
        return b"medcap" in cmdline.read_bytes().split(b"\0")
    except OSError:
        return False


def terminate(pid: int, what: str, group: bool = False) -> int:
    """SIGTERM `pid` (`group`: the whole process group a `spawn`ed child leads, its workers too);
    ValueError when it is not a medcap process."""
    if not is_medcap_process(int(pid)):
        raise ValueError(f"{what}: process {pid} is not a medcap process; not signalled")
    if group:
        try:
            os.killpg(int(pid), signal.SIGTERM)  # spawn() starts a new session: pgid == pid
        except (ProcessLookupError, PermissionError):
            os.kill(int(pid), signal.SIGTERM)
    else:
        os.kill(int(pid), signal.SIGTERM)
    log.info("sent SIGTERM to %s (%s %s)", what, "process group" if group else "pid", pid)
    return int(pid)


def tail(path: Path, max_bytes: int = 4000) -> str:
    """The last bytes of a log file as text ('' when absent)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


class ChildGroup:
    """Runs child commands to the end (several at once from threads); `cancel` (e.g. on SIGTERM) stops them all."""

    def __init__(self, log_hint: str = "its log") -> None:
        self.children: set[subprocess.Popen[str]] = set()
        self.cancelled = False
        self.lock = threading.Lock()
        self.log_hint = log_hint

    def on_sigterm(self, signum: int, frame: Any) -> None:
        """A signal handler: cancel the group."""
        self.cancel()

    def cancel(self) -> None:
        """Mark the group cancelled and SIGTERM every running child."""
        self.cancelled = True
        with self.lock:
            children = list(self.children)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    def run(
        self,
        args: list[str],
        poll: Callable[[], None] | None = None,
        every: float = 1.0,
        env: dict[str, str] | None = None,
    ) -> str:
        """Run `python -m medcap <args>`; return its stdout. `poll` is called while it runs; `env` adds variables.

        CancelledError when the group is cancelled, ChildFailedError when the child exits non-zero.
        """
        if self.cancelled:
            raise CancelledError("cancelled")
        log.info("child: %s", " ".join(args))
        child = subprocess.Popen(
            medcap_command(args), stdout=subprocess.PIPE, stderr=None, text=True, env=child_env(env)
        )
        with self.lock:
            self.children.add(child)
        chunks: list[str] = []
        reader = threading.Thread(
            target=lambda: chunks.append(child.stdout.read() if child.stdout else ""), daemon=True
        )
        reader.start()
        while child.poll() is None:
            if poll is not None:
                try:
                    poll()
                except (OSError, ValueError) as exc:
                    log.debug("progress poll: %s", exc)
            time.sleep(every)
        reader.join(timeout=10)
        code = child.returncode
        with self.lock:
            self.children.discard(child)
        if self.cancelled:
            raise CancelledError("cancelled")
        if code != 0:
            what = " ".join(args[:1])
            raise ChildFailedError(f"`python -m medcap {what}` exited with code {code} (see {self.log_hint})")
        return "".join(chunks)
