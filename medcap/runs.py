"""Run folders: ids, status, history and listing. No TensorFlow here (the dashboard imports it).

Layout of `artifacts/runs/<run-id>/`:
    config.json   RunConfig + provenance (dataset fingerprint, versions, git commit)
    vocab.json    the vocabulary
    split.json    {"train": [image ids], "val": [...], "test": [...]}
    history.csv   epoch, loss, accuracy, val_loss, val_accuracy, lr, seconds
    status.json   state, epoch, epochs, step, progress, message, error, pid, updated
    weights/      best.weights.h5, last.weights.h5, resume state
    train.log     the run's log
    eval/<name>/  metrics.json, predictions.csv, attention.npz
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
from medcap.io import read_json, safe_name, write_json

STATES = ("queued", "running", "finished", "failed", "cancelled")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


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
    """Merge `fields` into status.json (atomically) and stamp the update time."""
    if state not in STATES:
        raise ValueError(f"unknown run state {state!r}")
    status = read_status(run_dir)
    status.pop("problem", None)
    status.update(fields)
    status["state"] = state
    status["updated"] = _now()
    write_json(run_dir / "status.json", status)
    return status


def read_status(run_dir: Path) -> dict[str, Any]:
    """Read status.json; a missing or broken file gives a dict with `state` 'unknown' and a `problem`."""
    path = Path(run_dir) / "status.json"
    if not path.exists():
        return {"state": "unknown", "problem": "status.json missing (half-written run?)"}
    try:
        status = read_json(path)
    except (ValueError, OSError) as exc:
        return {"state": "unknown", "problem": str(exc)}
    if not isinstance(status, dict):
        return {"state": "unknown", "problem": f"{path}: not a JSON object"}
    return status


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists on this machine."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def effective_state(status: dict[str, Any]) -> str:
    """The state to show: a 'running' run whose process is gone was killed ('interrupted')."""
    state = str(status.get("state", "unknown"))
    if state in ("running", "queued") and status.get("pid") and not pid_alive(status.get("pid")):
        return "interrupted"
    return state


def read_history(run_dir: Path) -> pd.DataFrame:
    """history.csv as a DataFrame (empty when absent or unreadable)."""
    path = Path(run_dir) / "history.csv"
    if not path.exists():
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, UnicodeDecodeError):
        return pd.DataFrame()


def read_config(run_dir: Path) -> dict[str, Any]:
    """config.json as a dict ({} when absent or malformed)."""
    path = Path(run_dir) / "config.json"
    try:
        data = read_json(path)
    except (ValueError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


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


def list_evals(run_dir: Path) -> list[str]:
    """Names of the evaluations of a run that have a metrics.json."""
    eval_root = Path(run_dir) / "eval"
    if not eval_root.is_dir():
        return []
    return sorted(p.name for p in eval_root.iterdir() if (p / "metrics.json").is_file())


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
