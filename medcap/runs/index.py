"""Run folders: ids, listing and lookup. No TensorFlow here (the dashboard imports it).

The folder layout, its file names and the run states belong to `medcap.runs.folder` (`RunDir`, `EvalDir`).
Besides the user's runs (`artifacts/runs/`), listings include the read-only example runs of the
pre-built bundle (`examples/demo/runs/`, see `examples_runs_dir`), flagged `RunInfo.example`.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from medcap.base import paths
from medcap.base.io import safe_name
from medcap.runs.folder import STATES, RunDir, effective_state, pid_alive

__all__ = [
    "EXAMPLES_ENV",
    "STATES",
    "RunInfo",
    "effective_state",
    "examples_runs_dir",
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


EXAMPLES_ENV = "MEDCAP_EXAMPLES"
EXAMPLES_OFF = ("", "0", "off", "none", "false")


def examples_root() -> Path | None:
    """The example bundle's folder: `$MEDCAP_EXAMPLES` ('off' disables it), else `<project>/examples/demo`."""
    env = os.environ.get(EXAMPLES_ENV)
    if env is not None:
        return None if env.strip().lower() in EXAMPLES_OFF else Path(env)
    return Path(__file__).resolve().parents[2] / "examples" / "demo"


def examples_runs_dir() -> Path | None:
    """The bundle's read-only runs folder (`<bundle>/runs`), None when there is no bundle."""
    root = examples_root()
    return root / "runs" if root is not None and (root / "runs").is_dir() else None


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
    name = safe_name(str(run), max_len=200)
    cand = root / name
    if cand.is_dir():
        return cand
    examples = examples_runs_dir()
    if examples is not None and (examples / name).is_dir():
        return examples / name
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
    example: bool = False  # a read-only run of the pre-built example bundle (no resume, cancel or evaluate)

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


def _infos(root: Path, example: bool) -> list[RunInfo]:
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
                example=example,
            )
        )
    return infos


def list_runs(root: Path | None = None, with_examples: bool = True) -> list[RunInfo]:
    """Every run folder, newest first, then the example bundle's runs (`with_examples`, when present).

    Broken folders are listed with state 'unknown', never raise. A user run never hides behind an
    example: an example whose id a user run also has is left out.
    """
    root = root or paths.runs_dir()
    infos = _infos(root, example=False)
    examples = examples_runs_dir() if with_examples else None
    if examples is not None and examples.resolve() != Path(root).resolve():
        taken = {i.run_id for i in infos}
        infos += [i for i in _infos(examples, example=True) if i.run_id not in taken]
    return infos
