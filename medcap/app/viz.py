"""Charts for the dashboard (Plotly figures) and images read for display. No Streamlit, no TensorFlow.

Every function returns a figure or an image; the pages decide where to put it. Attention drawing is
`medcap.app.attention`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from medcap.data.images import DISPLAY_MAX_SIDE, display_copy, open_image_rgb

log = logging.getLogger(__name__)

# Axis labels (with units) for the training history columns.
HISTORY_LABELS = {
    "loss": "cross-entropy loss (nats per word)",
    "accuracy": "next-word accuracy (fraction)",
    "lr": "learning rate",
    "seconds": "epoch time (s)",
}


def history_figure(histories: Mapping[str, pd.DataFrame], metric: str = "loss") -> go.Figure:
    """Training curves of one metric (train solid, validation dashed) for one or more runs."""
    fig = go.Figure()
    for label, hist in histories.items():
        if hist is None or hist.empty or "epoch" not in hist.columns:
            continue
        for col, dash in ((metric, "solid"), (f"val_{metric}", "dash")):
            if col in hist.columns:
                fig.add_trace(
                    go.Scatter(
                        x=hist["epoch"],
                        y=hist[col],
                        mode="lines+markers",
                        name=f"{label} · {'validation' if col.startswith('val_') else 'train'}",
                        line={"dash": dash},
                    )
                )
    fig.update_layout(
        title=f"{metric.replace('_', ' ').capitalize()} per epoch",
        xaxis_title="epoch",
        yaxis_title=HISTORY_LABELS.get(metric, metric),
        legend_title="run · split",
    )
    return fig


def metric_bars(table: pd.DataFrame, title: str = "Metrics with 95% confidence intervals") -> go.Figure:
    """Grouped bars with asymmetric error bars. `table` columns: series, metric, value, lo, hi."""
    fig = go.Figure()
    for series, part in table.groupby("series", sort=False):
        value = part["value"].astype(float)
        lo = part["lo"].astype(float) if "lo" in part else value
        hi = part["hi"].astype(float) if "hi" in part else value
        fig.add_trace(
            go.Bar(
                x=part["metric"],
                y=value,
                name=str(series),
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": (hi - value).clip(lower=0).fillna(0),
                    "arrayminus": (value - lo).clip(lower=0).fillna(0),
                },
            )
        )
    fig.update_layout(
        title=title,
        barmode="group",
        xaxis_title="metric",
        yaxis_title="score (BLEU, ROUGE-L, METEOR: 0-1; CIDEr: 0-10)",
        legend_title="model",
    )
    return fig


def histogram(
    values: Sequence[float] | np.ndarray | pd.Series,
    title: str,
    x_label: str,
    bins: int = 30,
    y_label: str = "count",
) -> go.Figure:
    """A labelled histogram whose count axis has whole-number ticks (binned here, so the top count is known).

    Whole-number values (caption lengths) get bins centred on whole numbers."""
    x = np.asarray(list(values), dtype=np.float64)
    finite = x[np.isfinite(x)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    edges = np.linspace(lo, hi, bins + 1) if hi - lo > 1e-9 * max(1.0, abs(lo)) else np.array([lo - 0.5, lo + 0.5])
    if finite.size and np.all(finite == np.round(finite)):
        size = max(1.0, float(np.ceil((finite.max() - finite.min() + 1) / bins)))
        edges = np.arange(finite.min() - 0.5, finite.max() + 0.5 + size, size)
    counts, _ = np.histogram(finite, bins=edges)
    step = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 10**9) if counts.max(initial=0) / s <= 8)
    size = float(edges[1] - edges[0])
    fig = go.Figure(go.Histogram(x=list(x), xbins={"start": float(edges[0]), "end": float(edges[-1]) + size / 2,
                                                   "size": size}))
    fig.update_layout(title=title, xaxis_title=x_label, yaxis_title=y_label, bargap=0.05)
    fig.update_yaxes(tick0=0, dtick=step, rangemode="tozero")  # counts are whole numbers: no 0.5 steps
    return fig


def word_bars(counts: Sequence[tuple[str, int]], title: str = "Most frequent caption words") -> go.Figure:
    """Horizontal bars of (word, count), most frequent on top."""
    words = [w for w, _ in counts][::-1]
    values = [int(n) for _, n in counts][::-1]
    fig = go.Figure(go.Bar(x=values, y=words, orientation="h"))
    fig.update_layout(
        title=title, xaxis_title="occurrences (words)", yaxis_title="word", height=max(300, 22 * len(words) + 100)
    )
    return fig


def split_bars(sizes: Mapping[str, int], title: str = "Split sizes") -> go.Figure:
    """Bars of images per split."""
    fig = go.Figure(go.Bar(x=list(sizes), y=[int(v) for v in sizes.values()], text=list(sizes.values())))
    fig.update_layout(title=title, xaxis_title="split", yaxis_title="images")
    return fig


def word_probabilities(words: Sequence[str], probs: Sequence[float]) -> go.Figure:
    """Bar chart of the probability of each generated word, in order."""
    labels = [f"{i + 1}. {w}" for i, w in enumerate(words)]
    fig = go.Figure(go.Bar(x=labels, y=[float(p) for p in probs]))
    fig.update_layout(
        title="Probability of each generated word",
        xaxis_title="generated word (in order)",
        yaxis_title="probability (0-1)",
        yaxis_range=[0, 1],
    )
    return fig


def leakage_figure(report: pd.DataFrame, title: str = "Leakage: image-level vs group-level split") -> go.Figure:
    """Grouped bars of a leakage report per split mode: shared groups (left, counts) and captions of
    test/val also found in train (right, fractions). `report` columns: split_by, check, label, value."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Groups (cases) in two splits",
                                                        "Captions also in the training split"))
    for mode, part in report.groupby("split_by", sort=False):
        counts = part[part["check"].str.startswith("groups_")]
        fractions = part[part["check"].str.endswith("_fraction")]
        name = f"split by {mode}"
        color = "#d62728" if mode == "image" else "#1f77b4"
        fig.add_trace(go.Bar(x=counts["label"], y=counts["value"], name=name, marker_color=color,
                             legendgroup=name, texttemplate="%{y:.0f}", textposition="outside"), row=1, col=1)
        fig.add_trace(go.Bar(x=fractions["label"], y=fractions["value"], name=name, marker_color=color,
                             legendgroup=name, showlegend=False, texttemplate="%{y:.2f}", textposition="outside"),
                      row=1, col=2)
    fig.update_layout(title=title, barmode="group", legend_title="split")
    fig.update_yaxes(title_text="groups", row=1, col=1)
    fig.update_yaxes(title_text="fraction of images (0-1)", range=[0, 1], row=1, col=2)
    return fig


def fold_figure(per_fold: pd.DataFrame, metric: str) -> go.Figure:
    """One metric per fold (x) for every system and baseline (a line each): a study's fold-to-fold spread."""
    fig = go.Figure()
    for column in per_fold.columns:
        if column in ("fold", "images"):
            continue
        dash = "dot" if column in ("nearest_neighbour", "most_frequent") else "solid"
        fig.add_trace(go.Scatter(x=per_fold["fold"], y=per_fold[column], mode="lines+markers", name=column,
                                 line={"dash": dash}))
    fig.update_layout(title=f"{metric} per fold", xaxis_title="fold", yaxis_title=metric, legend_title="system")
    fig.update_xaxes(dtick=1)  # folds are whole numbers
    return fig


def load_image(path: str | Path, max_side: int | None = DISPLAY_MAX_SIDE) -> Image.Image:
    """Open an image as RGB through medcap's one reader (`open_image_rgb`: EXIF orientation, 16-bit range
    scaling, the `MAX_PIXELS` limit), downscaled to at most `max_side` px (None: full size) for display.

    ValueError naming the file when unreadable.
    """
    img = open_image_rgb(path)
    return img if max_side is None else display_copy(img, max_side)


def thumbnail(path: str | Path, size: int = 160) -> Image.Image | None:
    """A small RGB copy of an image (longest side `size`), or None (logged) when it cannot be read."""
    try:
        return load_image(path, max_side=size)
    except ValueError as exc:
        log.warning("%s", exc)
        return None
