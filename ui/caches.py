"""The pages' cached readers: runs, metrics, predictions, histories, thumbnails, attention, similar cases.

Every cache is keyed on the artifacts root and the files' modification times, so a page shows what is on disk
now. Layout-free: what they return comes from `medcap` (`medcap.app.tables`, `medcap.eval.artifacts`,
`medcap.inference.similar`, `medcap.runs.index`).
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from medcap.app import tables
from medcap.base import paths
from medcap.base.locks import lock_holder
from medcap.config import RunConfig
from medcap.data import confined, roots
from medcap.eval import artifacts
from medcap.inference import similar
from medcap.inference.opened import weights_missing_text
from medcap.runs import index as runs
from medcap.runs.folder import RunDir

log = logging.getLogger("medcap.pages")

WEIGHTS_MISSING = "finished (weights missing)"


def artifacts_key() -> str:
    """The artifacts root as text: part of every cache key (tests and users may switch roots)."""
    return str(paths.artifacts_dir().resolve())


def _signature(root: Path) -> tuple:
    """Cache key of the listing: the user's run folders and the example bundle's (when present)."""
    examples = runs.examples_runs_dir()
    return (tables.runs_signature(root), str(examples), tables.runs_signature(examples) if examples else ())


@st.cache_data(show_spinner=False, max_entries=64)
def _runs(root: str, signature: tuple) -> list[runs.RunInfo]:
    return runs.list_runs(Path(root))


def list_runs() -> list[runs.RunInfo]:
    """All runs, newest first, then the example bundle's (cached until any run folder changes)."""
    root = paths.runs_dir().resolve()
    return _runs(str(root), _signature(root))


@st.cache_data(show_spinner=False, max_entries=64)
def _runs_table(root: str, signature: tuple) -> pd.DataFrame:
    return tables.runs_table(Path(root))


def runs_table() -> pd.DataFrame:
    """The runs overview table (cached until any run folder changes); a finished run whose best
    weights are gone reads "finished (weights missing)"."""
    root = paths.runs_dir().resolve()
    table = _runs_table(str(root), _signature(root)).copy()
    if not table.empty:
        where = {i.run_id: i.path for i in list_runs()}  # example runs live outside the runs folder
        gone = [state == "finished" and not RunDir(where.get(str(run), root / str(run))).best_weights.is_file()
                for run, state in zip(table["run"], table["state"], strict=True)]
        table.loc[gone, "state"] = WEIGHTS_MISSING
    return table


def weights_missing(info: runs.RunInfo) -> str | None:
    """For a finished run whose best weights are gone: which file and what to do; else None."""
    if info.state != "finished" or info.dir.best_weights.is_file():
        return None
    return weights_missing_text(info.dir)


def config_problem(info: runs.RunInfo) -> str | None:
    """Why a run's config.json cannot be used (a wrong-typed value names the field), or None."""
    if not info.config:
        return None
    try:
        RunConfig.from_dict(info.config.get("run"), source=str(info.dir.config))
    except ValueError as exc:
        return str(exc)
    return None


def trained_by(info: runs.RunInfo) -> int | None:
    """The pid of the live process holding the run's lock (0 when unknown), or None when nobody trains it."""
    return lock_holder(info.path)


def dataset_choices(infos: Sequence[runs.RunInfo] = ()) -> list[str]:
    """Datasets the pages offer: what `roots.find_datasets` finds under $MEDCAP_DATA and the artifacts
    folder, plus the runs' own datasets that pass `roots.check_spec`, plus `synthetic:2000`."""
    specs = roots.find_datasets()
    for info in infos:
        spec = info.dataset
        if not spec or spec == "?":
            continue
        try:
            specs.append(roots.check_spec(spec))
        except ValueError:
            continue  # outside the data folders (or malformed): not offered
    specs.append("synthetic:2000")
    return list(dict.fromkeys(specs))


@st.cache_data(show_spinner=False, max_entries=64)
def _metrics(run_path: str, eval_name: str, mtime: float) -> dict[str, Any]:
    return artifacts.read_metrics(Path(run_path), eval_name)


def metrics(info: runs.RunInfo, eval_name: str) -> dict[str, Any]:
    """The metrics of one evaluation (cached on the file's mtime)."""
    path = info.dir.eval_dir(eval_name).metrics
    return _metrics(str(info.path), eval_name, tables.file_signature(path))


def metrics_signature(info: runs.RunInfo, eval_name: str | None) -> float:
    """Cache key of an evaluation's metrics (0 when there is none)."""
    return tables.file_signature(info.dir.eval_dir(eval_name).metrics) if eval_name else 0.0


@st.cache_data(show_spinner=False, max_entries=32)
def _predictions(run_path: str, eval_name: str, mtime: float) -> pd.DataFrame:
    return artifacts.read_predictions(Path(run_path), eval_name)


def predictions(info: runs.RunInfo, eval_name: str) -> pd.DataFrame:
    """The per-image predictions of one evaluation (cached on the file's mtime)."""
    path = info.dir.eval_dir(eval_name).predictions
    return _predictions(str(info.path), eval_name, tables.file_signature(path))


@st.cache_data(show_spinner=False, max_entries=256)
def _history(run_path: str, mtime: float) -> pd.DataFrame:
    return runs.read_history(Path(run_path))


def history(info: runs.RunInfo) -> pd.DataFrame:
    """The epoch history of a run (cached on the file's mtime)."""
    return _history(str(info.path), tables.file_signature(info.dir.history))


@st.cache_data(show_spinner=False, max_entries=2048)
def _thumb_uri(path: str, mtime: float, size: int) -> str | None:
    img = confined.thumbnail(path, size)  # inside the data folders only
    if img is None:
        return None
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumb_uri(path: str, size: int = 96) -> str | None:
    """A small JPEG data URI of an image (None when unreadable), cached."""
    return _thumb_uri(str(path), tables.file_signature(path), size)


@st.cache_data(show_spinner=False, max_entries=256)
def _attention(run_path: str, eval_name: str, image_id: str, mtime: float) -> np.ndarray | None:
    return artifacts.read_attention(Path(run_path), eval_name, image_id)


def attention(info: runs.RunInfo, eval_name: str, image_id: str) -> np.ndarray | None:
    """The (n_words, 7, 7) attention of one test image (cached)."""
    path = info.dir.eval_dir(eval_name).attention
    return _attention(str(info.path), eval_name, image_id, tables.file_signature(path))


def _run_files_signature(info: runs.RunInfo) -> tuple[float, float]:
    return tables.file_signature(info.dir.config), tables.file_signature(info.dir.split)


@st.cache_data(show_spinner="Reading the run's training features…", max_entries=8)
def _case_memory(run_path: str, signature: tuple) -> similar.CaseMemory:
    return similar.case_memory(Path(run_path))


def case_memory(info: runs.RunInfo) -> similar.CaseMemory:
    """The run's training images, features and captions (cached per run folder)."""
    return _case_memory(str(info.path), _run_files_signature(info))


@st.cache_data(show_spinner="Loading the run's dataset…", max_entries=8)
def _run_images(run_path: str, signature: tuple) -> pd.DataFrame:
    return similar.run_images(Path(run_path))


def run_images(info: runs.RunInfo) -> pd.DataFrame:
    """The images of a run's dataset with reference captions, test images first (cached per run folder)."""
    return _run_images(str(info.path), _run_files_signature(info))
