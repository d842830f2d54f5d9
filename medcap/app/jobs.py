"""The dashboard's background work: runs, evaluations, synthetic sets and the demo, started and stopped.

Every child process goes through `medcap.base.procs`. No Streamlit and no TensorFlow here.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from medcap.base import paths, procs
from medcap.base.io import read_json, safe_name, write_json
from medcap.base.procs import Launch, spawn
from medcap.config import RunConfig, train_cli_args
from medcap.runs.folder import ACTIVE_STATES, demo_dir, effective_state, now_iso
from medcap.runs.index import RunInfo

log = logging.getLogger(__name__)


def stop(status: dict[str, Any], what: str, group: bool = False) -> int:
    """SIGTERM the process a status dict records (see `procs.terminate`); ValueError when it is not running."""
    state = effective_state(status)
    pid = status.get("pid")
    if state not in ACTIVE_STATES or not pid:
        raise ValueError(f"{what} is not running (state {state})")
    return procs.terminate(int(pid), what, group=group)


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
    return stop(info.dir.read_status(), f"run {info.run_id}")


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
    pid = stop(job, f"generation of synthetic:{int(n)}", group=True)
    write_json(synthetic_job_file(n), {**job, "state": "cancelled", "updated": now_iso()})
    return pid


# ----------------------------------------------------------------------------------------------
# the demo (`python -m medcap demo`, `medcap.experiments.demo`)


def demo_status() -> dict[str, Any]:
    """The demo's status (state 'none' before any demo); a dead 'running' demo shows 'interrupted'."""
    folder = demo_dir()
    if not folder.status.exists():
        return {"state": "none"}
    status = folder.read_status()
    status["state"] = effective_state(status)
    return status


def start_demo(extra_args: Iterable[str] = ()) -> Launch:
    """Start `python -m medcap demo` in the background unless one is already running.

    The status says 'queued' (with the child's pid) before the child writes its own status, so a
    second click during start-up is refused.
    """
    if demo_status()["state"] in ACTIVE_STATES:
        raise ValueError("the demo is already running")
    folder = demo_dir()
    folder.write_status("queued", stage="starting", progress=0.0, message="starting", error=None, pid=None, runs={})
    try:
        launch = spawn(["demo", *extra_args], folder.log)
    except OSError as exc:
        folder.write_status("failed", error=f"could not start the demo: {exc}")
        raise
    if folder.read_status().get("state") == "queued":
        folder.write_status("queued", pid=launch.pid)
    return launch


def cancel_demo() -> int:
    """Stop a running demo (SIGTERM; it stops its current step and marks itself cancelled)."""
    return stop(demo_status(), "demo")
