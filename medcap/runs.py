"""Run folders: ids, listing and lookup. No TensorFlow here (the dashboard imports it).

The folder layout, its file names and the run states belong to `medcap.rundir` (`RunDir`, `EvalDir`).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from medcap import paths
from medcap.io import safe_name
from medcap.rundir import STATES, RunDir, effective_state, pid_alive

__all__ = [
    "STATES",
    "RunInfo",
    "effective_state",
    "list_evals",
    "list_runs",
    "new_run_dir",
    "new_unique_dir",
    "pid_alive",
    "read_config",
    "read_history",
    "read_status",
    "resolve_run",
    "write_status",
]


def new_unique_dir(root: Path, label: str) -> Path:
    """Create a fresh folder `<root>/<utc-timestamp>-<label>-<random>` (label sanitised).

    `mkdir(exist_ok=False)` guarantees that two callers at the same moment never share a folder.
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    label = safe_name(label, max_len=40)
    for _ in range(100):
        path = root / f"{stamp}-{label}-{secrets.token_hex(3)}"
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a unique folder under {root}")


def new_run_dir(name: str = "", preset: str = "run", root: Path | None = None) -> Path:
    """Create a fresh, uniquely named run folder: `<utc-timestamp>-<name|preset>-<random>`.

    The user's name is sanitised (no separators, no `..`).
    """
    return new_unique_dir(root or paths.runs_dir(), name or preset)


def resolve_run(run: str | os.PathLike[str], root: Path | None = None) -> Path:
    """Accept a run folder path or a bare run id (looked up under the runs folder)."""
    p = Path(run)
    if p.is_dir():
        return p
    root = root or paths.runs_dir()
    cand = root / safe_name(str(run), max_len=200)
    if cand.is_dir():
        return cand
    raise FileNotFoundError(f"run not found: {run} (looked in {root})")


def write_status(run_dir: Path, state: str, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into the run's status file (atomically) and stamp the update time."""
    return RunDir(run_dir).write_status(state, **fields)


def read_status(run_dir: Path) -> dict[str, Any]:
    """The run's status; a missing or broken file gives `state` 'unknown' and a `problem`."""
    return RunDir(run_dir).read_status()


def read_history(run_dir: Path) -> pd.DataFrame:
    """The run's epoch history as a DataFrame (empty when absent or unreadable)."""
    return RunDir(run_dir).read_history()


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's config as a dict ({} when absent or malformed)."""
    return RunDir(run_dir).read_config()


@dataclass
class RunInfo:
    """What a listing needs to know about one run folder."""

    run_id: str
    path: Path
    state: str
    config: dict[str, Any]
    status: dict[str, Any]
    evals: list[str]

    @property
    def preset(self) -> str:
        return str(self.config.get("run", self.config).get("preset", "?"))

    @property
    def dataset(self) -> str:
        return str(self.config.get("run", self.config).get("dataset", "?"))

    @property
    def dir(self) -> RunDir:
        """The run folder's files."""
        return RunDir(self.path)


def list_evals(run_dir: Path) -> list[str]:
    """Names of the complete evaluations of a run (those with a metrics file)."""
    return [e.name for e in RunDir(run_dir).evals()]


def list_runs(root: Path | None = None) -> list[RunInfo]:
    """Every run folder, newest first; broken folders are listed with state 'unknown', never raise."""
    root = root or paths.runs_dir()
    infos = []
    for run in sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True):
        status = read_status(run)
        infos.append(
            RunInfo(
                run_id=run.name,
                path=run,
                state=effective_state(status),
                config=read_config(run),
                status=status,
                evals=list_evals(run),
            )
        )
    return infos
