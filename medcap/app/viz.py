"""Drawing for the dashboard: Plotly figures and attention overlays. No Streamlit, no TensorFlow.

Every function returns a figure or an image; the pages decide where to put it.
Attention maps are (7, 7) grids over the image (the VGG conv5 regions), values >= 0.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from medcap.data.images import DISPLAY_MAX_SIDE, display_copy, open_image_rgb

log = logging.getLogger(__name__)

ATTENTION_COLORSCALE = "Inferno"
ATTENTION_LABEL = "attention weight"

# Axis labels (with units) for the training history columns.
HISTORY_LABELS = {
    "loss": "cross-entropy loss (nats per word)",
    "accuracy": "next-word accuracy (fraction)",
    "lr": "learning rate",
    "seconds": "epoch time (s)",
}


def colormap_lut(name: str = ATTENTION_COLORSCALE, n: int = 256) -> np.ndarray:
    """A Plotly colorscale sampled into an (n, 3) uint8 lookup table."""
    colors = sample_colorscale(name, list(np.linspace(0.0, 1.0, n)), colortype="tuple")  # floats in [0, 1]
    return (np.asarray(colors, dtype=np.float64) * 255.0).round().astype(np.uint8)  # (n, 3)


def upsample_attention(att: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a (h, w) attention grid to `size` = (width, height); float32 (H, W)."""
    grid = np.asarray(att, dtype=np.float32)
    if grid.ndim != 2:
        raise ValueError(f"attention must be a 2-D grid, got shape {grid.shape}")
    img = Image.fromarray(grid, mode="F").resize(size, Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)  # (H, W)


def attention_overlay(
    image: Image.Image,
    att: np.ndarray,
    alpha: float = 0.55,
    vmax: float | None = None,
    colorscale: str = ATTENTION_COLORSCALE,
) -> Image.Image:
    """Blend a colour-mapped attention grid over a (grey or RGB) image; 0 maps to the scale's bottom.

    `vmax` fixes the top of the scale (share it across words to make maps comparable);
    by default the map's own maximum.
    """
    base = image.convert("RGB")
    heat = upsample_attention(att, base.size)  # (H, W)
    top = float(vmax) if vmax else float(np.max(att)) if np.size(att) else 0.0
    scaled = np.clip(heat / top, 0.0, 1.0) if top > 0 else np.zeros_like(heat)
    lut = colormap_lut(colorscale)
    colored = lut[(scaled * (len(lut) - 1)).round().astype(np.int64)]  # (H, W, 3)
    mixed = (1.0 - alpha) * np.asarray(base, dtype=np.float32) + alpha * colored.astype(np.float32)
    return Image.fromarray(mixed.clip(0, 255).astype(np.uint8))


def explicit_colorscale(name: str = ATTENTION_COLORSCALE, n: int = 11) -> list[list[Any]]:
    """A named colorscale as explicit `[position, "rgb(r, g, b)"]` stops (renders the same everywhere)."""
    positions = list(np.linspace(0.0, 1.0, n))
    return [[float(p), c] for p, c in zip(positions, sample_colorscale(name, positions), strict=True)]


def _colorbar_trace(vmax: float) -> go.Scatter:
    """An invisible marker trace whose colour bar is the attention legend (drawn at full opacity)."""
    return go.Scatter(
        x=[None],
        y=[None],
        mode="markers",
        showlegend=False,
        hoverinfo="skip",
        marker={
            "color": [0.0],
            "colorscale": explicit_colorscale(),
            "cmin": 0.0,
            "cmax": vmax or 1.0,
            "showscale": True,
            "colorbar": {"title": {"text": ATTENTION_LABEL, "side": "right"}},
        },
    )


def _image_axes(fig: go.Figure, row: int | None = None, col: int | None = None) -> None:
    kwargs: dict[str, Any] = {"showticklabels": False, "showgrid": False, "zeroline": False}
    if row is not None:
        kwargs.update(row=row, col=col)
    fig.update_xaxes(**kwargs)
    fig.update_yaxes(**kwargs)


def attention_figure(
    image: Image.Image,
    att: np.ndarray,
    title: str = "",
    boxes: Sequence[Mapping[str, Any]] | None = None,
    vmax: float | None = None,
    opacity: float = 0.55,
) -> go.Figure:
    """The image with its attention grid as a semi-transparent heatmap and a colour bar (the legend).

    `boxes`: optional true findings, each `{"finding": str, "box": [x0, y0, x1, y1]}` in fractions.
    """
    base = image.convert("RGB")
    width, height = base.size
    grid = np.asarray(att, dtype=np.float32)  # (7, 7)
    gh, gw = grid.shape
    top = float(vmax) if vmax else float(grid.max()) if grid.size else 1.0
    fig = go.Figure()
    # The blend is computed here (exact colormap); the heatmap above it is transparent and only
    # carries the colour bar (the legend) and the hover values of the 7x7 regions.
    fig.add_trace(go.Image(z=np.asarray(attention_overlay(base, grid, alpha=opacity, vmax=top)), hoverinfo="skip"))
    fig.add_trace(
        go.Heatmap(
            z=grid,
            x0=width / gw / 2,
            dx=width / gw,
            y0=height / gh / 2,
            dy=height / gh,
            zmin=0.0,
            zmax=top or 1.0,
            colorscale=ATTENTION_COLORSCALE,
            opacity=0.0,
            showscale=False,
            hovertemplate="region centre x=%{x:.0f}px, y=%{y:.0f}px<br>attention %{z:.3f}<extra></extra>",
        )
    )
    fig.add_trace(_colorbar_trace(top))
    for box in boxes or []:
        try:
            x0, y0, x1, y1 = (float(v) for v in box["box"])
        except (KeyError, TypeError, ValueError):
            log.warning("skipping malformed finding box %r", box)
            continue
        fig.add_shape(
            type="rect",
            x0=x0 * width,
            x1=x1 * width,
            y0=y0 * height,
            y1=y1 * height,
            line={"color": "#00e5ff", "width": 2, "dash": "dash"},
        )
        fig.add_annotation(
            x=x0 * width,
            y=y0 * height,
            text=f"true: {box.get('finding', '?')}",
            showarrow=False,
            xanchor="left",
            yanchor="bottom",
            font={"color": "#00e5ff", "size": 12},
            bgcolor="rgba(0,0,0,0.5)",
        )
    fig.update_layout(title=title or "Attention over the image", margin={"l": 10, "r": 10, "t": 50, "b": 10})
    fig.update_xaxes(range=[0, width])
    fig.update_yaxes(range=[height, 0])
    _image_axes(fig)
    return fig


def attention_strip(
    image: Image.Image,
    attention: np.ndarray,
    words: Sequence[str],
    cols: int = 5,
    thumb: int = 160,
) -> go.Figure:
    """Small multiples: one overlay per generated word, on one shared scale with one colour bar."""
    maps = np.asarray(attention, dtype=np.float32)  # (n_words, 7, 7)
    n = min(len(words), len(maps))
    if n == 0:
        raise ValueError("no attention maps to draw")
    vmax = float(maps[:n].max()) or 1.0
    small = image.convert("RGB").copy()
    small.thumbnail((thumb, thumb))
    rows = (n + cols - 1) // cols
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[f"{i + 1}. {w}" for i, w in enumerate(words[:n])],
        horizontal_spacing=0.01,
        vertical_spacing=0.08 / max(rows, 1),
    )
    for i in range(n):
        r, c = i // cols + 1, i % cols + 1
        over = attention_overlay(small, maps[i], vmax=vmax)
        fig.add_trace(go.Image(z=np.asarray(over), hoverinfo="skip"), row=r, col=c)
        _image_axes(fig, row=r, col=c)
    # An invisible marker trace carries the shared colour bar (the legend of every panel).
    fig.add_trace(_colorbar_trace(vmax), row=1, col=1)
    fig.update_layout(
        title="Attention per generated word (shared scale)",
        height=60 + 190 * rows,
        margin={"l": 10, "r": 10, "t": 70, "b": 10},
    )
    return fig


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
