"""Run folders: ids, listing and lookup. No TensorFlow here (the dashboard imports it).

The folder layout, its file names and the run states belong to `medcap.runs.folder` (`RunDir`, `EvalDir`).
Besides the user's runs (`artifacts/runs/`), listings include the read-only example runs of the
pre-built bundle (`examples/demo/runs/`, see `examples_runs_dir`), flagged `RunInfo.example`.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from medcap.base import paths
from medcap.base.io import read_json, safe_name
from medcap.runs.folder import STATES, RunDir, effective_state, pid_alive
from medcap.runs.schema import RunFileError, config_problem, metrics_problem, predictions_header_problem

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
    "run_problems",
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
    problems: list[str] = field(default_factory=list)  # "unreadable <file>: <why>", one per bad run file

    @property
    def preset(self) -> str:
        run = self.config.get("run", self.config)
        return str(run.get("preset", "?")) if isinstance(run, dict) else "?"

    @property
    def dataset(self) -> str:
        run = self.config.get("run", self.config)
        return str(run.get("dataset", "?")) if isinstance(run, dict) else "?"

    @property
    def dir(self) -> RunDir:
        """The run folder's files."""
        return RunDir(self.path)


def list_evals(run_dir: Path) -> list[str]:
    """Names of the complete evaluations of a run (those with a metrics file)."""
    return [e.name for e in RunDir(run_dir).evals()]


def _json_problem(path: Path, label: str, problem_of: Any) -> str | None:
    """"unreadable <label>: <why>" for a JSON file that is there but malformed or of the wrong shape."""
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return str(RunFileError(label, "not valid JSON (truncated?)")) if path.is_file() else None
    problem = problem_of(data)
    return str(RunFileError(label, problem)) if problem else None


def _header(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            return next(csv.reader([fh.readline(65536)]), [])
    except OSError:
        return []


def run_problems(run_dir: Path) -> list[str]:
    """Why a run's files cannot be read, one line each (`medcap.runs.schema`): its config.json and, per
    evaluation, metrics.json and predictions.csv's columns. A bad status.json shows as state 'unknown'."""
    run = RunDir(run_dir)
    found = [_json_problem(run.config, RunDir.CONFIG, config_problem)]
    for ev in run.evals():
        label = f"{RunDir.EVAL}/{ev.name}/"
        found.append(_json_problem(ev.metrics, label + ev.METRICS, metrics_problem))
        if ev.predictions.is_file():
            problem = predictions_header_problem(_header(ev.predictions))
            found.append(str(RunFileError(label + ev.PREDICTIONS, problem)) if problem else None)
    return [p for p in found if p]


def _infos(root: Path, example: bool) -> list[RunInfo]:
    infos = []
    for run in sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True):
        status = read_status(run)
        problems = run_problems(run)
        config = read_config(run)
        if config_problem(config) is not None:
            config = {}  # listed by id with its problem; nothing downstream reads a wrong-shaped config
        infos.append(
            RunInfo(
                run_id=run.name,
                path=run,
                state=effective_state(status),
                config=config,
                status=status,
                evals=list_evals(run),
                example=example,
                problems=problems,
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
