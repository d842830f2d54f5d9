"""Attention drawing for the dashboard: a word's (7, 7) map over its image, as an overlay or a Plotly figure.

Attention maps are (7, 7) grids over the image (the VGG conv5 regions), values >= 0. No Streamlit, no
TensorFlow; every function returns an image or a figure.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

log = logging.getLogger(__name__)

ATTENTION_COLORSCALE = "Inferno"
ATTENTION_LABEL = "attention weight"


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
