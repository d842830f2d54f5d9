"""Background `python -m medcap ...` processes: start, stop, read their logs.

The one place that builds a child's environment and command line, used by the dashboard and by
the demo. No Streamlit and no TensorFlow here (children import TensorFlow, never this process).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import medcap
from medcap import paths
from medcap.config import RunConfig, train_cli_args
from medcap.io import read_json, safe_name, write_json
from medcap.rundir import ACTIVE_STATES, effective_state, now_iso, pid_alive
from medcap.runs import RunInfo

log = logging.getLogger(__name__)


def project_root() -> Path:
    """The folder holding the `medcap` package (the working directory of launched processes)."""
    return Path(medcap.__file__).resolve().parent.parent


def child_env() -> dict[str, str]:
    """This process's environment plus the artifacts root (children import the installed `medcap`)."""
    env = dict(os.environ)
    env["MEDCAP_ARTIFACTS"] = str(paths.artifacts_dir().resolve())
    return env


def medcap_command(args: Sequence[str]) -> list[str]:
    """The command line of `python -m medcap <args>` with this interpreter."""
    return [sys.executable, "-m", "medcap", *args]


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


def run_json(args: Sequence[str], what: str, timeout: float = 600.0) -> dict[str, Any]:
    """Run `python -m medcap <args>` to the end and parse its stdout as JSON.

    ValueError starting with `what` when it times out, fails (with its last error line) or prints
    something that is not JSON.
    """
    try:
        done = subprocess.run(
            medcap_command(args),
            cwd=project_root(),
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ValueError(f"{what}: no answer within {timeout:.0f} s") from exc
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        raise ValueError(f"{what} failed: {lines[-1] if lines else done.returncode}")
    try:
        out = json.loads(done.stdout)
    except ValueError as exc:
        raise ValueError(f"{what}: output is not JSON") from exc
    return out if isinstance(out, dict) else {"result": out}


def _is_medcap_process(pid: int) -> bool:
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


def terminate(status: dict[str, Any], what: str, group: bool = False) -> int:
    """SIGTERM the process recorded in a status dict (`group`: the whole process group a `spawn`ed child
    leads, its workers too); ValueError when it is not running or is not a medcap process."""
    state = effective_state(status)
    pid = status.get("pid")
    if state not in ACTIVE_STATES or not pid:
        raise ValueError(f"{what} is not running (state {state})")
    if not _is_medcap_process(int(pid)):
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


# ----------------------------------------------------------------------------------------------
# runs launched from the dashboard


def launches_dir() -> Path:
    """Where the logs of runs launched from the dashboard go until the run folder exists."""
    path = paths.artifacts_dir() / "launches"
    path.mkdir(parents=True, exist_ok=True)
    return path


def launch_log(name: str) -> Path:
    """The launch log called `name` (a file name shown on a page; never a path)."""
    return launches_dir() / safe_name(Path(name).name, max_len=120)


def launch_train(settings: RunConfig | Mapping[str, Any]) -> Launch:
    """Start a training run of `settings` (a RunConfig or field -> value) in the background.

    The command line comes from `config.train_cli_args`; the log goes to artifacts/launches/<stamp>-<name>.log.
    """
    args = train_cli_args(settings)
    name = settings.get("name") if isinstance(settings, Mapping) else settings.name
    return spawn(args, _stamped_log(str(name or "run")))  # unique even within a second


def _writable(info: RunInfo, action: str) -> None:
    """ValueError for an example run: the bundle is read-only."""
    if info.example:
        raise ValueError(f"{info.run_id} is an example run (read-only): it cannot be {action}")


def launch_resume(info: RunInfo) -> Launch:
    """Resume an interrupted/cancelled/failed run in the background (log appended to the run's log)."""
    _writable(info, "resumed")
    if info.state in ACTIVE_STATES:
        raise ValueError(f"run {info.run_id} is still {info.state}")
    return spawn(["train", "--resume", str(info.path.resolve())], info.dir.log)


def launch_evaluate(info: RunInfo) -> Launch:
    """Evaluate a finished run in the background (log in the run folder)."""
    _writable(info, "evaluated again")
    return spawn(["evaluate", str(info.path.resolve())], info.dir.eval_log)


def cancel_run(info: RunInfo) -> int:
    """Ask a running run to stop (SIGTERM to its pid; the trainer marks it cancelled)."""
    _writable(info, "cancelled")
    return terminate(info.dir.read_status(), f"run {info.run_id}")


# ----------------------------------------------------------------------------------------------
# synthetic sets generated for the dashboard

SYNTHETIC_MAX = 5000  # largest `synthetic:N` the dashboard generates (the CLI has no such limit)


def _stamped_log(label: str) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return launch_log(f"{stamp}-{safe_name(label, max_len=40)}-{secrets.token_hex(3)}.log")


def synthetic_job_file(n: int) -> Path:
    """The status file of the dashboard's generation of `synthetic:n` (artifacts/launches/)."""
    return launches_dir() / f"synthetic-{int(n)}.json"


def synthetic_job(n: int) -> dict[str, Any]:
    """{state, pid, n, log, ...} of the last generation of `synthetic:n` started here; state 'none' when
    none was, 'interrupted' once its process is gone (finished or killed: the set on disk tells which)."""
    path = synthetic_job_file(n)
    try:
        job = read_json(path)
    except (OSError, ValueError):
        return {"state": "none", "n": int(n)}
    if not isinstance(job, dict):
        return {"state": "none", "n": int(n)}
    return {**job, "state": effective_state(job)}


def launch_synthetic(n: int) -> Launch:
    """Generate `synthetic:n` in a background `python -m medcap data --dataset synthetic:n` (never in the
    dashboard's process); at most SYNTHETIC_MAX images. ValueError when out of bounds or already running."""
    n = int(n)
    if not 1 <= n <= SYNTHETIC_MAX:
        raise ValueError(f"synthetic:{n}: the dashboard generates 1 to {SYNTHETIC_MAX:,} images; generate larger "
                         f"sets with `python -m medcap data --dataset synthetic:{n}`")
    job = synthetic_job(n)
    if job["state"] in ACTIVE_STATES:
        raise ValueError(f"synthetic:{n} is already being generated (pid {job.get('pid')})")
    launch = spawn(["data", "--dataset", f"synthetic:{n}"], _stamped_log(f"synthetic-{n}"))
    write_json(synthetic_job_file(n), {"state": "running", "pid": launch.pid, "n": n, "log": launch.log_path.name,
                                       "started": now_iso(), "updated": now_iso()})
    return launch


def cancel_synthetic(n: int) -> int:
    """Stop the generation of `synthetic:n` (SIGTERM to its process group: its render workers too)."""
    job = synthetic_job(n)
    pid = terminate(job, f"generation of synthetic:{int(n)}", group=True)
    write_json(synthetic_job_file(n), {**job, "state": "cancelled", "updated": now_iso()})
    return pid


def compare_cli(a: RunInfo, b: RunInfo, timeout: float = 600.0) -> dict[str, Any]:
    """`python -m medcap compare A B --json` (paired bootstrap over shared test images) as a dict.

    Runs in a child process so the dashboard never imports TensorFlow; ValueError with the
    command's last error line when it fails.
    """
    args = ["compare", str(a.path.resolve()), str(b.path.resolve()), "--json"]
    return run_json(args, f"compare {a.run_id} {b.run_id}", timeout)
