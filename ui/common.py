"""Shared Streamlit helpers for the pages: cached readers (keyed on file mtimes), pickers and guards.

Layout only: everything computed comes from `medcap` (`dashboard`, `eval.artifacts`, `runs`, `viz`);
file names come from `medcap.rundir`.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from medcap import dashboard, paths, runs, viz
from medcap.eval import artifacts

log = logging.getLogger("medcap.pages")

STATE_BADGES = {
    "interrupted": "interrupted (process gone)",
    "unknown": "unknown (half-written?)",
}


def artifacts_key() -> str:
    """The artifacts root as text: part of every cache key (tests and users may switch roots)."""
    return str(paths.artifacts_dir().resolve())


def _signature(root: Path) -> tuple:
    """Cache key of the listing: the user's run folders and the example bundle's (when present)."""
    examples = runs.examples_runs_dir()
    return (dashboard.runs_signature(root), str(examples), dashboard.runs_signature(examples) if examples else ())


@st.cache_data(show_spinner=False, max_entries=64)
def _runs(root: str, signature: tuple) -> list[runs.RunInfo]:
    return runs.list_runs(Path(root))


def list_runs() -> list[runs.RunInfo]:
    """All runs, newest first, then the example bundle's (cached until any run folder changes)."""
    root = paths.runs_dir().resolve()
    return _runs(str(root), _signature(root))


@st.cache_data(show_spinner=False, max_entries=64)
def _runs_table(root: str, signature: tuple) -> pd.DataFrame:
    return dashboard.runs_table(Path(root))


def runs_table() -> pd.DataFrame:
    """The runs overview table (cached until any run folder changes)."""
    root = paths.runs_dir().resolve()
    return _runs_table(str(root), _signature(root))


@st.cache_data(show_spinner=False, max_entries=64)
def _metrics(run_path: str, eval_name: str, mtime: float) -> dict[str, Any]:
    return artifacts.read_metrics(Path(run_path), eval_name)


def metrics(info: runs.RunInfo, eval_name: str) -> dict[str, Any]:
    """The metrics of one evaluation (cached on the file's mtime)."""
    path = info.dir.eval_dir(eval_name).metrics
    return _metrics(str(info.path), eval_name, dashboard.file_signature(path))


def metrics_signature(info: runs.RunInfo, eval_name: str | None) -> float:
    """Cache key of an evaluation's metrics (0 when there is none)."""
    return dashboard.file_signature(info.dir.eval_dir(eval_name).metrics) if eval_name else 0.0


@st.cache_data(show_spinner=False, max_entries=32)
def _predictions(run_path: str, eval_name: str, mtime: float) -> pd.DataFrame:
    return artifacts.read_predictions(Path(run_path), eval_name)


def predictions(info: runs.RunInfo, eval_name: str) -> pd.DataFrame:
    """The per-image predictions of one evaluation (cached on the file's mtime)."""
    path = info.dir.eval_dir(eval_name).predictions
    return _predictions(str(info.path), eval_name, dashboard.file_signature(path))


@st.cache_data(show_spinner=False, max_entries=256)
def _history(run_path: str, mtime: float) -> pd.DataFrame:
    return runs.read_history(Path(run_path))


def history(info: runs.RunInfo) -> pd.DataFrame:
    """The epoch history of a run (cached on the file's mtime)."""
    return _history(str(info.path), dashboard.file_signature(info.dir.history))


@st.cache_data(show_spinner=False, max_entries=2048)
def _thumb_uri(path: str, mtime: float, size: int) -> str | None:
    img = viz.thumbnail(path, size)
    if img is None:
        return None
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumb_uri(path: str, size: int = 96) -> str | None:
    """A small JPEG data URI of an image (None when unreadable), cached."""
    return _thumb_uri(str(path), dashboard.file_signature(path), size)


@st.cache_data(show_spinner=False, max_entries=256)
def _attention(run_path: str, eval_name: str, image_id: str, mtime: float) -> np.ndarray | None:
    return artifacts.read_attention(Path(run_path), eval_name, image_id)


def attention(info: runs.RunInfo, eval_name: str, image_id: str) -> np.ndarray | None:
    """The (n_words, 7, 7) attention of one test image (cached)."""
    path = info.dir.eval_dir(eval_name).attention
    return _attention(str(info.path), eval_name, image_id, dashboard.file_signature(path))


def badge(state: str) -> str:
    """The state with a coloured marker."""
    return STATE_BADGES.get(state, state)


def guard(body: Callable[[], None], what: str = "this page") -> None:
    """Run a page body; any error becomes a warning box, never a traceback."""
    try:
        body()
    except Exception as exc:  # one broken folder must never break a page
        log.exception("error while drawing %s", what)
        st.warning(f"Could not show {what}: {exc}")


def pick_run(
    infos: Sequence[runs.RunInfo],
    label: str = "Run",
    key: str = "run",
    default: str | None = None,
) -> runs.RunInfo | None:
    """A selectbox over runs (by id, never by path); None when there is nothing to pick."""
    if not infos:
        return None
    ids = [i.run_id for i in infos]
    index = ids.index(default) if default in ids else 0
    chosen = st.selectbox(label, ids, index=index, key=key, format_func=lambda rid: run_choice(infos, rid))
    return next(i for i in infos if i.run_id == chosen)


def run_choice(infos: Sequence[runs.RunInfo], run_id: str) -> str:
    """How a run reads in a picker: `<id> (<state>)`, `<id> (example · <state>)` for the bundle's runs."""
    info = next((i for i in infos if i.run_id == run_id), None)
    if info is None:
        return f"{run_id} (unknown)"
    return f"{run_id} ({'example · ' if info.example else ''}{badge(info.state)})"


def pick_eval(info: runs.RunInfo, key: str = "eval") -> str | None:
    """A selectbox over a run's evaluations (newest first)."""
    if not info.evals:
        return None
    newest = dashboard.latest_eval(info)
    names = [newest, *[e for e in info.evals if e != newest]]
    return st.selectbox("Evaluation", names, key=key) if len(names) > 1 else names[0]


def no_runs_hint() -> None:
    """The message shown on a page when there is nothing to show yet."""
    st.info("No evaluated runs yet. Go to **Home** and press **Build the demo**, or launch a run on **Train**.")
