"""The one owner of run-folder and evaluation-folder file names, run states and split names.

No TensorFlow here (the dashboard imports it). Nothing else in medcap joins a run-folder file name:
code asks a `RunDir` or `EvalDir` for the path.

Layout of `artifacts/runs/<run-id>/`:
    config.json   RunConfig + provenance (dataset fingerprint, feature store, feature scale, versions)
    vocab.json    the vocabulary
    split.json    {"train": [image ids], "val": [...], "test": [...]}
    history.csv   epoch, loss, accuracy, val_loss, val_accuracy, lr, seconds
    status.json   state, epoch, epochs, step, progress, message, error, pid, updated
    weights/      best.weights.h5, last.weights.h5, resume.npz
    tensorboard/  TensorBoard event files (Keras' own callback): `tensorboard --logdir <run>/tensorboard`
    train.log     the run's log (evaluate.log for evaluations launched from the dashboard)
    eval/<name>/  metrics.json, predictions.csv, attention.npz
    eval/.tmp-<name>-<hex>/  an evaluation being written (`EvalDir.staging`); never listed
    .lock         the run lock (`medcap.base.locks.RunLock`, held by train/resume; empty when free)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import pandas as pd

from medcap.base import paths
from medcap.base.io import read_json, safe_name, write_json
from medcap.base.procs import pid_alive
from medcap.runs.schema import RunFileError, status_problem

RunState = Literal["queued", "running", "finished", "failed", "cancelled"]
STATES: tuple[str, ...] = get_args(RunState)
ACTIVE_STATES: tuple[str, ...] = ("running", "queued")  # a process is (or should be) working on the run
RESUMABLE_STATES: tuple[str, ...] = ("interrupted", "cancelled", "failed")  # as shown by `effective_state`
SplitName = Literal["train", "val", "test"]
SPLITS: tuple[str, ...] = get_args(SplitName)
EVAL_SPLITS: tuple[str, ...] = (*SPLITS, "all")  # what an evaluation may cover: a run split or every image


def now_iso() -> str:
    """UTC time stamp, to the second, as written into status files."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def read_status_file(path: Path) -> dict[str, Any]:
    """A status.json as a dict; a missing, broken or wrong-typed file (`medcap.runs.schema.status_problem`) gives
    `state` 'unknown' and a `problem` ("unreadable status.json: pid is a list; expected an integer or null")."""
    if not path.exists():
        return {"state": "unknown", "problem": f"{path.name} missing (half-written folder?)"}
    try:
        status = read_json(path)
    except (ValueError, OSError) as exc:
        return {"state": "unknown", "problem": str(exc)}
    problem = status_problem(status)  # a wrong-typed field marks this folder alone, never breaks a listing
    if problem:
        return {"state": "unknown", "problem": str(RunFileError(path.name, problem))}
    return status


def write_status_file(path: Path, state: str, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into a status.json (atomically), set `state` and stamp the update time."""
    if state not in STATES:
        raise ValueError(f"unknown run state {state!r}; choose one of {STATES}")
    status = read_status_file(path)
    status.pop("problem", None)
    status.update(fields)
    status["state"] = state
    status["updated"] = now_iso()
    write_json(path, status)
    return status


def effective_state(status: dict[str, Any]) -> str:
    """The state to show: a 'running'/'queued' job whose process is gone was killed ('interrupted')."""
    state = str(status.get("state", "unknown"))
    if state in ACTIVE_STATES and status.get("pid") and not pid_alive(status.get("pid")):
        return "interrupted"
    return state


@dataclass(frozen=True)
class EvalDir:
    """One evaluation of a run: `<run>/eval/<name>/`."""

    path: Path

    METRICS = "metrics.json"
    PREDICTIONS = "predictions.csv"
    ATTENTION = "attention.npz"  # per word: the last prefix position's map (older evaluations: the mean)
    ATTENTION_MEAN = "attention_mean.npz"  # per word: the mean over the prefix positions

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def predictions(self) -> Path:
        return self.path / self.PREDICTIONS

    @property
    def attention(self) -> Path:
        return self.path / self.ATTENTION

    @property
    def attention_mean(self) -> Path:
        return self.path / self.ATTENTION_MEAN

    def is_complete(self) -> bool:
        """An evaluation counts once its metrics.json exists (written last)."""
        return self.metrics.is_file()

    @contextlib.contextmanager
    def staging(self) -> Iterator[EvalDir]:
        """Write a whole evaluation, then put it in place at once.

            with run.eval_dir("test").staging() as tmp:   # tmp: EvalDir of eval/.tmp-test-<hex>/
                write_json(tmp.metrics, ...)               # write every file into tmp
            # here eval/test/ is the new evaluation, complete

        On success the temporary sibling folder is renamed onto this folder (an older evaluation of
        the same name is first renamed aside to `.old-<name>-<hex>`, then removed); on any error the
        temporary folder is removed and an older evaluation stays untouched. Dot-folders are never
        listed by `RunDir.evals()`.
        """
        parent = self.path.parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = parent / f".tmp-{self.name}-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            yield EvalDir(tmp)
            old = None
            if self.path.exists():
                old = parent / f".old-{self.name}-{secrets.token_hex(4)}"
                os.replace(self.path, old)
            os.replace(tmp, self.path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class JobDir:
    """A folder whose work is tracked by a status file (a run's format) and a log: a run, the demo."""

    path: Path

    STATUS = "status.json"
    LOG = "job.log"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def status(self) -> Path:
        return self.path / self.STATUS

    @property
    def log(self) -> Path:
        return self.path / self.LOG

    def read_status(self) -> dict[str, Any]:
        return read_status_file(self.status)

    def write_status(self, state: str, **fields: Any) -> dict[str, Any]:
        return write_status_file(self.status, state, **fields)


@dataclass(frozen=True)
class DemoDir(JobDir):
    """`artifacts/demo/`: the demo pipeline's status and log."""

    LOG = "demo.log"


def demo_dir() -> DemoDir:
    """The demo's folder under the artifacts root (it may not exist yet)."""
    return DemoDir(paths.artifacts_dir() / "demo")


@dataclass(frozen=True)
class RunDir(JobDir):
    """One training run folder; owns every file name in it (see the module docstring)."""

    CONFIG = "config.json"
    VOCAB = "vocab.json"
    SPLIT = "split.json"
    HISTORY = "history.csv"
    LOG = "train.log"
    EVAL_LOG = "evaluate.log"
    WEIGHTS = "weights"
    BEST = "best.weights.h5"
    LAST = "last.weights.h5"
    RESUME = "resume.npz"
    FACTS = "facts.json"
    EVAL = "eval"
    TENSORBOARD = "tensorboard"

    @property
    def run_id(self) -> str:
        return self.path.name

    # files
    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def vocab(self) -> Path:
        return self.path / self.VOCAB

    @property
    def split(self) -> Path:
        return self.path / self.SPLIT

    @property
    def history(self) -> Path:
        return self.path / self.HISTORY

    @property
    def eval_log(self) -> Path:
        return self.path / self.EVAL_LOG

    @property
    def weights_dir(self) -> Path:
        return self.path / self.WEIGHTS

    @property
    def best_weights(self) -> Path:
        return self.weights_dir / self.BEST

    @property
    def last_weights(self) -> Path:
        return self.weights_dir / self.LAST

    @property
    def resume_state(self) -> Path:
        return self.weights_dir / self.RESUME

    @property
    def facts(self) -> Path:
        """The run's fact predictors (`medcap.model.facts_head`), when it was trained with --facts."""
        return self.path / self.FACTS

    @property
    def tensorboard(self) -> Path:
        """TensorBoard log folder (`train/` and `validation/` event files, one scalar per epoch)."""
        return self.path / self.TENSORBOARD

    @property
    def eval_root(self) -> Path:
        return self.path / self.EVAL

    # evaluations
    def eval_dir(self, name: str) -> EvalDir:
        """The evaluation folder called `name` (sanitised; it may not exist yet)."""
        return EvalDir(self.eval_root / safe_name(name, max_len=200))

    def new_eval(self, name: str) -> contextlib.AbstractContextManager[EvalDir]:
        """`self.eval_dir(name).staging()`: yields a temporary EvalDir, renamed into place on success."""
        return self.eval_dir(name).staging()

    def evals(self) -> list[EvalDir]:
        """Complete evaluations (those with a metrics.json), by name."""
        if not self.eval_root.is_dir():
            return []
        found = (EvalDir(p) for p in self.eval_root.iterdir() if p.is_dir() and not p.name.startswith("."))
        return sorted((e for e in found if e.is_complete()), key=lambda e: e.name)

    # readers and writers
    def read_config(self) -> dict[str, Any]:
        """config.json as a dict ({} when absent or malformed)."""
        try:
            data = read_json(self.config)
        except (ValueError, OSError):
            return {}
        return data if isinstance(data, dict) else {}

    def read_split(self) -> dict[str, list[str]]:
        """split.json ({} when absent or malformed)."""
        try:
            data = read_json(self.split)
        except (ValueError, OSError):
            return {}
        return data if isinstance(data, dict) else {}

    def read_history(self) -> pd.DataFrame:
        """history.csv as a DataFrame (empty when absent or unreadable)."""
        if not self.history.exists():
            return pd.DataFrame()
        try:
            return pd.read_csv(self.history)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, UnicodeDecodeError):
            return pd.DataFrame()
