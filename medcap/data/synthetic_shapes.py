"""Pixel-grid primitives of the synthetic images: soft ellipses and segments stamped into an image, smooth noise.

Pure numpy, vectorised over the pixel grid of `SIZE` x `SIZE` images; float32 intensities.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SIZE = 256  # images are SIZE x SIZE, 8-bit grayscale


def grid() -> tuple[np.ndarray, np.ndarray]:
    """Open pixel grids: yy (H, 1) and xx (1, W), broadcasting to (H, W)."""
    axis = np.arange(SIZE, dtype=np.float32)
    return axis[:, None], axis[None, :]


def smooth_noise(rng: np.random.Generator, cells: int, shape: tuple[int, int] = (SIZE, SIZE)) -> np.ndarray:
    """Smooth noise in about [-1, 1]: about `cells` Gaussian values per SIZE px, upsampled bicubically."""
    h, w = shape
    ch, cw = max(3, round(cells * h / SIZE)), max(3, round(cells * w / SIZE))
    coarse = rng.standard_normal((ch, cw), dtype=np.float32)  # (ch, cw)
    img = Image.fromarray(coarse, mode="F").resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float32) / 1.5  # (h, w)


def soft(signed: np.ndarray, edge: float) -> np.ndarray:
    """Soft mask from a signed distance (positive inside), ramp width `edge` px."""
    return np.clip(signed / edge + 0.5, 0.0, 1.0)


def ellipse(xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, ax: float, ay: float, edge: float) -> np.ndarray:
    d = np.sqrt(((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2)  # (H, W) normalised radius
    return soft((1.0 - d) * min(ax, ay), edge)


def segment_distance(xx: np.ndarray, yy: np.ndarray, p: tuple[float, float], q: tuple[float, float]) -> np.ndarray:
    px, py = p
    vx, vy = q[0] - px, q[1] - py
    t = np.clip(((xx - px) * vx + (yy - py) * vy) / max(vx * vx + vy * vy, 1e-6), 0.0, 1.0)
    return np.hypot(xx - (px + t * vx), yy - (py + t * vy))  # (H, W)


def window(x0: float, y0: float, x1: float, y1: float) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    """Slices and absolute pixel grids of the image window covering [x0, x1] x [y0, y1] (None if empty)."""
    ys, ye = max(int(y0) - 1, 0), min(int(y1) + 2, SIZE)
    xs, xe = max(int(x0) - 1, 0), min(int(x1) + 2, SIZE)
    if ys >= ye or xs >= xe:
        return None
    yy = np.arange(ys, ye, dtype=np.float32)[:, None]  # (h, 1)
    xx = np.arange(xs, xe, dtype=np.float32)[None, :]  # (1, w): broadcasts to (h, w)
    return slice(ys, ye), slice(xs, xe), yy, xx


def stamp_ellipse(img: np.ndarray, cx: float, cy: float, rx: float, ry: float, value: float,
                   edge: float, mask: np.ndarray | None = None, mode: str = "add") -> None:
    """Draw a small soft ellipse in place, computing only its window ("add" or "max")."""
    win = window(cx - rx - edge, cy - ry - edge, cx + rx + edge, cy + ry + edge)
    if win is None:
        return
    sy, sx, yy, xx = win
    m = value * ellipse(xx, yy, cx, cy, rx, ry, edge)  # (h, w)
    if mask is not None:
        m = m * mask[sy, sx]
    img[sy, sx] = img[sy, sx] + m if mode == "add" else np.maximum(img[sy, sx], m)


def stamp_segment(img: np.ndarray, p: tuple[float, float], q: tuple[float, float], width: float,
                   value: np.ndarray | float, edge: float, mask: np.ndarray | None = None) -> None:
    """Add a soft line segment of half-width `width` in place, computing only its window."""
    pad = width + edge
    win = window(min(p[0], q[0]) - pad, min(p[1], q[1]) - pad, max(p[0], q[0]) + pad, max(p[1], q[1]) + pad)
    if win is None:
        return
    sy, sx, yy, xx = win
    m = soft(width - segment_distance(xx, yy, p, q), edge)  # (h, w)
    if mask is not None:
        m = m * mask[sy, sx]
    img[sy, sx] += value * m
