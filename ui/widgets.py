"""The pages' shared widgets: run and evaluation pickers, state badges, guards, the similar-cases panel, filters.

They lay out what `ui.caches` reads; nothing here computes a metric.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from medcap.app import facts, tables
from medcap.data import confined
from medcap.data.images import display_copy
from medcap.inference import similar
from medcap.runs import index as runs
from ui import caches

log = logging.getLogger("medcap.pages")


STATE_BADGES = {
    "interrupted": "interrupted (process gone)",
    "unknown": "unknown (half-written?)",
}




def show_image(image: Image.Image, **kwargs: Any) -> None:
    """`st.image` of a bounded copy (`display_copy`): the browser never gets a huge original."""
    st.image(display_copy(image), **kwargs)


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
    info = next(i for i in infos if i.run_id == chosen)
    for problem in info.problems:  # this run alone: its unreadable files, by name
        st.warning(f"`{info.run_id}`: {problem}")
    return info


def run_choice(infos: Sequence[runs.RunInfo], run_id: str) -> str:
    """How a run reads in a picker: `<name> · <id> (<state>)`, `... (example · <state>)` for the bundle's runs."""
    info = next((i for i in infos if i.run_id == run_id), None)
    if info is None:
        return f"{run_id} (unknown)"
    name = tables.run_label(info).removesuffix(" (example)")
    unreadable = " · unreadable files" if info.problems else ""
    return f"{name} · {run_id} ({'example · ' if info.example else ''}{badge(info.state)}{unreadable})"


def pick_eval(info: runs.RunInfo, key: str = "eval") -> str | None:
    """A selectbox over a run's evaluations (newest first)."""
    if not info.evals:
        return None
    newest = tables.latest_eval(info)
    names = [newest, *[e for e in info.evals if e != newest]]
    return st.selectbox("Evaluation", names, key=key) if len(names) > 1 else names[0]


def no_runs_hint() -> None:
    """The message shown on a page when there is nothing to show yet."""
    st.info("No evaluated runs yet. Go to **Home** and press **Build the demo**, or launch a run on **Train**.")


def _problem(exc: Exception) -> str:
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def similar_cases_panel(
    info: runs.RunInfo, image_id: str | None = None, query: np.ndarray | None = None, key: str = "sim"
) -> None:
    """The k training images closest to an image (by id in the run's store, or its features `query`)."""
    st.subheader("Similar cases")
    k = st.slider("Training images to show", 1, 10, 5, key=f"{key}_k")
    try:
        memory = caches.case_memory(info)
        if query is None:
            if image_id is None:
                return
            query = similar.stored_features(info.path, [image_id])[0]  # (D,)
        cases = similar.similar_cases(memory, query, k=k, exclude=image_id)
    except (ValueError, FileNotFoundError, KeyError, OSError) as exc:
        st.info(f"Similar cases are unavailable for this run: {_problem(exc)}")
        return
    st.caption(
        f"The {len(cases)} training images of `{info.run_id}` closest to this image in the run's global image "
        f"features (cosine similarity, 1 = same direction), out of {len(memory)}, with the captions the model "
        "learnt from them."
    )
    cols = st.columns(min(max(len(cases), 1), 5))
    for i, row in enumerate(cases.itertuples(index=False)):
        with cols[i % len(cols)]:
            img = confined.thumbnail(row.image_path, 220)
            if img is None:
                st.caption(f"{row.image_id}: unreadable image")
            else:
                st.image(img, caption=f"#{row.rank} · similarity {row.similarity:.3f}")
            st.markdown(f"*{row.caption}*")
    st.dataframe(
        cases.drop(columns=["image_path"]),
        hide_index=True,
        width="stretch",
        column_config={"similarity": st.column_config.NumberColumn("cosine similarity", format="%.3f")},
        key=f"{key}_table",
    )


def metadata_filters(frame: pd.DataFrame, key_prefix: str) -> dict[str, list[str]]:
    """One multiselect per metadata column worth filtering (`tables.metadata_columns`), four per row.

    Returns column -> chosen values (empty: no filter); widget keys are `<key_prefix><column>`.
    """
    meta = tables.metadata_columns(frame)
    chosen: dict[str, list[str]] = {}
    if meta:
        cols = st.columns(min(len(meta), 4))
        for i, col in enumerate(meta):
            options = sorted(frame[col].dropna().astype(str).unique())
            chosen[col] = cols[i % len(cols)].multiselect(col.replace("_", " ").capitalize(), options,
                                                          key=f"{key_prefix}{col}")
    return chosen


def findings(row: dict[str, Any]) -> None:
    """An evaluated image's findings line and its clinical-fact marks (nothing for evaluations without them)."""
    if row.get("facts_line") is not None:
        st.markdown(f"**Findings line:** {row['facts_line'] or 'not sure of any fact'}")
    marks = facts.fact_marks_text(row)
    if marks:
        st.markdown(f"**Clinical facts** (findings line + caption vs the labels): {marks}")


def paper_beside(beside: pd.DataFrame) -> None:
    """medcap beside the paper (`medcap.eval.paper.comparison`): the difference signed to 4 places, and left
    blank, not "None", where the data are not comparable."""
    shown = beside.assign(difference=["" if pd.isna(v) else f"{v:+.4f}" for v in beside["difference"]])
    st.dataframe(shown, hide_index=True, width="stretch")
