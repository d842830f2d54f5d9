"""Rendering of the synthetic demo images: chest films (PA) and axial CT slices, with lesions.

Pure numpy (vectorised over the pixel grid), float32 intensities in [0, 1]. Image x grows to the
image's right, which is the patient's left (radiology convention): the patient's right lung is on
the image's left half. Lung zones are vertical thirds of each lung field; on CT slices the thirds run
from anterior (top of the image) to posterior (bottom).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medcap.data.synthetic_shapes import (
    SIZE,
    ellipse,
    grid,
    segment_distance,
    smooth_noise,
    soft,
    stamp_ellipse,
    stamp_segment,
    window,
)

_XR_TISSUE = 0.34  # added density of a lesion on a film (additive projection)
_CT_TISSUE = 0.50  # soft-tissue value of a lesion on a CT slice (replaces what is there)
BOX_THRESHOLD = 0.04  # a pixel belongs to a lesion's box when the lesion changed it by more than this


@dataclass(frozen=True)
class Anatomy:
    """Per-image anatomy jitter: shift (px) and scale about the image centre."""

    kind: str  # "XR" or "CT"
    dx: float
    dy: float
    scale: float

    def xy(self, x: float, y: float) -> tuple[float, float]:
        """Map a canonical point to this image."""
        c = SIZE / 2
        return c + (x - c) * self.scale + self.dx, c + (y - c) * self.scale + self.dy

    def lung(self, side: str) -> tuple[float, float, float, float]:
        """(cx, cy, ax, ay) of the lung field ellipse for the patient's `side`."""
        if self.kind == "XR":
            cx, cy, ax, ay = (80.0, 124.0, 45.0, 88.0) if side == "right" else (176.0, 126.0, 44.0, 86.0)
        else:
            cx, cy, ax, ay = (84.0, 128.0, 42.0, 68.0) if side == "right" else (172.0, 128.0, 40.0, 66.0)
        x, y = self.xy(cx, cy)
        return x, y, ax * self.scale, ay * self.scale

    def zone_centre(self, location: str) -> tuple[float, float]:
        """Centre (x, y) of a named zone, e.g. "right upper zone"."""
        side, level, _ = location.split()
        cx, cy, _, ay = self.lung(side)
        top, bottom = cy - ay, cy + ay * 0.92
        k = ("upper", "middle", "lower").index(level)
        lateral = -6.0 if side == "right" else 6.0  # keep away from the mediastinum and heart
        return cx + lateral, top + (k + 0.5) * (bottom - top) / 3


@dataclass(frozen=True)
class Lesion:
    """One finding to draw: centre and characteristic size in pixels, plus its own shape seed."""

    finding: str
    location: str
    size: str
    x: float
    y: float
    radius: float  # radius (nodule, mass, cavity, consolidation), height (effusion), length (fracture)
    seed: int


def _rib_offset(u: np.ndarray | float) -> np.ndarray | float:
    """Posterior rib shape: rises a little leaving the spine, then curves down laterally."""
    return -0.15 * u + 0.0045 * u * u


_RIB_TOP, _RIB_STEP, _N_RIBS = 40.0, 19.0, 9


def rib_curve(anatomy: Anatomy, side: str, i: int, x: np.ndarray | float) -> np.ndarray | float:
    """y of the i-th posterior rib's centre line at image column x (chest films; `side` for symmetry)."""
    cx = anatomy.xy(128.0, 0.0)[0]
    u = np.abs(np.asarray(x, dtype=np.float32) - cx) / anatomy.scale  # distance from the spine
    y0 = anatomy.xy(0.0, _RIB_TOP + _RIB_STEP * i)[1]
    return y0 + _rib_offset(u) * anatomy.scale


def _rib_bands(xx: np.ndarray, yy: np.ndarray, anatomy: Anatomy, offset: np.ndarray, half: float) -> np.ndarray:
    """Soft bands of all ribs at once: distance to the nearest of the evenly spaced rib curves."""
    s = anatomy.scale
    v = (yy - anatomy.xy(0.0, _RIB_TOP)[1] - offset * s) / (_RIB_STEP * s)  # rib index coordinate
    frac = np.abs(v - np.round(v)) * _RIB_STEP * s  # px to the nearest rib centre line
    inside = (v > -0.5) & (v < _N_RIBS - 0.5)
    return soft(half * s - frac, 2.0) * inside


def _chest(anatomy: Anatomy, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A PA chest film without findings: (image, lung mask, body mask)."""
    yy, xx = grid()
    s = anatomy.scale
    bx, by = anatomy.xy(128.0, 150.0)
    bu, bv = ((xx - bx) / (114 * s)) ** 2, ((yy - by) / (150 * s)) ** 2
    body = np.clip(1.0 - (bu * bu + bv * bv), 0.0, 1.0)  # superellipse of power 4
    img = 0.04 + 0.5 * np.sqrt(body)  # soft tissue, darker towards the edge
    lungs = np.zeros_like(img)
    for side in ("right", "left"):
        cx, cy, ax, ay = anatomy.lung(side)
        u2, v2 = ((xx - cx) / ax) ** 2, ((yy - cy) / ay) ** 2
        d = np.where(yy < cy, np.sqrt(u2 + v2), np.sqrt(np.sqrt(u2 * u2 + v2 * v2)))  # round apex, broad base
        lung = soft((1.0 - d) * ax, 4.0)
        dome = cy + ay * (0.92 if side == "right" else 0.96) - 0.004 * (xx - cx) ** 2  # diaphragm dome
        lung *= soft(dome - yy, 4.0)
        lungs = np.maximum(lungs, lung)
    img -= 0.36 * lungs
    hx, hy = anatomy.xy(144.0, 168.0)
    img += 0.24 * ellipse(xx, yy, hx, hy, 42 * s, 36 * s, 5.0)  # heart shadow
    sx = anatomy.xy(128.0, 0.0)[0]
    img += 0.08 * soft(10 * s - np.abs(xx - sx), 3.0)  # spine
    img -= 0.10 * soft(5 * s - np.abs(xx - sx), 2.0) * soft(anatomy.xy(0.0, 100.0)[1] - yy, 6.0)  # trachea
    u = np.abs(xx - sx) / s  # distance from the spine, canonical px
    lateral = soft(u - 8.0, 3.0) * body
    img += 0.075 * _rib_bands(xx, yy, anatomy, _rib_offset(u), 4.0) * lateral  # posterior ribs
    img += 0.035 * _rib_bands(xx, yy, anatomy, 30.0 - 0.38 * u, 3.5) * lateral * soft(u - 30, 8.0)  # anterior
    for sign in (-1.0, 1.0):  # clavicles
        p = anatomy.xy(128 + sign * 14, 50.0)
        q = anatomy.xy(128 + sign * 92, 34.0)
        stamp_segment(img, p, q, 4.5 * s, 0.14, 2.0)
    for sign in (-1.0, 1.0):  # vessels fanning out from the hilum
        for angle in rng.uniform(-1.2, 1.2, size=7):
            hx, hy = anatomy.xy(128 + sign * rng.uniform(20, 30), rng.uniform(110, 130))
            length = rng.uniform(40, 70) * s
            for t0, t1, w in ((0.0, 0.4, 2.2), (0.4, 0.75, 1.6), (0.75, 1.0, 1.1)):  # tapering
                p = (hx + sign * np.cos(angle) * length * t0, hy + np.sin(angle) * length * t0)
                q = (hx + sign * np.cos(angle) * length * t1, hy + np.sin(angle) * length * t1)
                stamp_segment(img, p, q, w, 0.06, 1.2, lungs)
    img += 0.03 * smooth_noise(rng, 24) * lungs + 0.02 * smooth_noise(rng, 8)
    return img.astype(np.float32), lungs.astype(np.float32), soft(body - 0.05, 0.1).astype(np.float32)


def _ct(anatomy: Anatomy, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An axial chest CT slice without findings: (image, lung mask, body mask)."""
    yy, xx = grid()
    s = anatomy.scale
    bx, by = anatomy.xy(128.0, 132.0)
    body = ellipse(xx, yy, bx, by, 114 * s, 86 * s, 2.0)
    inner = ellipse(xx, yy, bx, by, 106 * s, 78 * s, 2.0)
    img = 0.30 * body + 0.16 * inner  # fat rim, then muscle and soft tissue
    tx, ty = anatomy.xy(128.0, 230.0)
    img += 0.35 * soft(2.0 - np.abs(yy - ty - 0.002 * (xx - tx) ** 2), 1.0)  # scanner table
    lungs = np.zeros_like(img)
    for side in ("right", "left"):
        cx, cy, ax, ay = anatomy.lung(side)
        lungs = np.maximum(lungs, ellipse(xx, yy, cx, cy, ax, ay, 2.0))
    hx, hy = anatomy.xy(134.0, 112.0)
    heart = ellipse(xx, yy, hx, hy, 30 * s, 34 * s, 2.0)
    lungs *= 1.0 - heart
    img = img * (1.0 - lungs) + 0.04 * lungs
    img = np.maximum(img, 0.50 * heart)
    for angle in np.linspace(0.35, np.pi - 0.35, 4):  # ribs: small bony ovals along the wall
        for sign in (-1.0, 1.0):
            rx = bx + sign * np.cos(angle) * 100 * s
            ry = by - np.sin(angle) * 72 * s if angle < np.pi / 2 else by + np.sin(angle - np.pi / 2) * 60 * s
            stamp_ellipse(img, rx, ry, 6 * s, 4 * s, 0.82, 1.5, mode="max")
    for (x, y), r, v in (((148.0, 170.0), 11.0, 0.58), ((128.0, 192.0), 17.0, 0.85), ((128.0, 58.0), 6.0, 0.78)):
        cx, cy = anatomy.xy(x, y)  # descending aorta, vertebral body, sternum
        stamp_ellipse(img, cx, cy, r * s, r * s, v, 1.5, mode="max")
    px, py = anatomy.xy(128.0, 210.0)
    stamp_ellipse(img, px, py, 4 * s, 10 * s, 0.75, 1.5, mode="max")  # spinous process
    n_vessels = 36
    vx = rng.uniform(20, 236, n_vessels)
    vy = rng.uniform(50, 210, n_vessels)
    for x, y, r in zip(vx, vy, rng.uniform(1.2, 2.8, n_vessels), strict=True):
        stamp_ellipse(img, x, y, r, r, 0.22, 1.0, lungs)
    img += 0.025 * smooth_noise(rng, 32) * body
    return img.astype(np.float32), lungs.astype(np.float32), inner.astype(np.float32)


def _polar(xx: np.ndarray, yy: np.ndarray, lesion: Lesion) -> tuple[np.ndarray, np.ndarray]:
    return np.hypot(xx - lesion.x, yy - lesion.y), np.arctan2(yy - lesion.y, xx - lesion.x)


def _lesion_window(lesion: Lesion, anatomy: Anatomy) -> tuple[float, float, float, float]:
    """Pixel extent [x0, y0, x1, y1] that holds everything a lesion draws."""
    r = lesion.radius
    if lesion.finding == "effusion":
        cx, cy, ax, ay = anatomy.lung(lesion.location.split()[0])
        return cx - 1.1 * ax - 6, cy + ay * 0.92 - 1.8 * r - 8, cx + 1.1 * ax + 6, cy + ay + 8
    pad = r / 2 + 12 if lesion.finding == "fracture" else 1.45 * r + 8
    return lesion.x - pad, lesion.y - pad, lesion.x + pad, lesion.y + pad


def _lesion_maps(
    lesion: Lesion, anatomy: Anatomy, lungs: np.ndarray
) -> tuple[slice, slice, np.ndarray, np.ndarray, np.ndarray] | None:
    """Window slices and (tissue, air, line) maps in [0, 1] of one lesion; `line` is a fracture's dark core."""
    rng = np.random.default_rng(lesion.seed)
    win = window(*_lesion_window(lesion, anatomy))
    if win is None:
        return None
    sy, sx, yy, xx = win
    shape = (yy.shape[0], xx.shape[1])
    lungs = lungs[sy, sx]
    zero = np.zeros(shape, np.float32)
    tissue, air, line = zero, zero.copy(), zero.copy()
    r = lesion.radius
    d, theta = _polar(xx, yy, lesion)
    if lesion.finding == "nodule":
        tissue = soft(r - d, 2.0) * (0.9 + 0.1 * np.clip(1 - d / r, 0, 1))
    elif lesion.finding == "mass":
        p1, p2 = rng.uniform(0, 2 * np.pi, 2)
        edge = r * (1 + 0.14 * np.sin(3 * theta + p1) + 0.09 * np.sin(5 * theta + p2))  # lobulated
        tissue = soft(edge - d, 2.0) * (0.85 + 0.15 * smooth_noise(rng, 20, shape))
        spicules = np.zeros_like(tissue)
        ox, oy = sx.start, sy.start  # stamps draw in window coordinates
        for angle in rng.uniform(0, 2 * np.pi, 12):
            p = (lesion.x - ox + np.cos(angle) * r * 0.8, lesion.y - oy + np.sin(angle) * r * 0.8)
            q = (lesion.x - ox + np.cos(angle) * r * 1.3, lesion.y - oy + np.sin(angle) * r * 1.3)
            stamp_segment(spicules, p, q, 1.6, 1.0, 1.2)
        tissue = np.maximum(tissue, 0.8 * np.clip(spicules, 0.0, 1.0))
    elif lesion.finding == "cavity":
        inner = r * 0.62
        tissue = soft(r - d, 2.0) * soft(d - inner, 2.0)
        cavity = soft(inner - d, 2.0)
        fluid = cavity * soft(yy - (lesion.y + inner * 0.4), 1.0)  # air-fluid level
        tissue = np.maximum(tissue, fluid)
        air = cavity - fluid
    elif lesion.finding == "consolidation":
        tilt = rng.uniform(0, np.pi)
        u = (xx - lesion.x) * np.cos(tilt) + (yy - lesion.y) * np.sin(tilt)
        v = -(xx - lesion.x) * np.sin(tilt) + (yy - lesion.y) * np.cos(tilt)
        dn = np.hypot(u / r, v / (0.75 * r)) + 0.25 * smooth_noise(rng, 12, shape)  # ragged outline
        region = soft((1.0 - dn) * r, 6.0)
        tissue = region * np.clip(0.72 + 0.4 * smooth_noise(rng, 40, shape), 0.3, 1.0)  # patchy
        stem = rng.uniform(0, 2 * np.pi)  # air bronchograms: a stem with two branches
        lx, ly = lesion.x - sx.start, lesion.y - sy.start  # stamps draw in window coordinates
        p = (lx - np.cos(stem) * r * 0.55, ly - np.sin(stem) * r * 0.55)
        q = (lx + np.cos(stem) * r * 0.05, ly + np.sin(stem) * r * 0.05)
        tubes = [(p, q)]
        for turn in (-0.5, 0.45):
            end = (q[0] + np.cos(stem + turn) * r * 0.5, q[1] + np.sin(stem + turn) * r * 0.5)
            tubes.append((q, end))
        for a, b in tubes:
            stamp_segment(air, a, b, 1.1, 1.0, 1.0)
        air = 0.55 * np.clip(air, 0.0, 1.0) * region
    elif lesion.finding == "effusion":
        side = lesion.location.split()[0]
        cx, cy, ax, ay = anatomy.lung(side)
        if anatomy.kind == "XR":
            lateral = np.clip((xx - cx) * (-1 if side == "right" else 1) / ax, -1.0, 1.0)
            top = cy + ay * 0.92 - r - 0.8 * r * (lateral + 1) ** 2 / 4  # meniscus rises laterally
            tissue = soft(yy - top, 5.0) * lungs * soft(ax * 1.1 - np.abs(xx - cx), 3.0)
        else:
            level = cy + ay - r + 0.35 * r * ((xx - cx) / ax) ** 2  # dependent fluid, shallow meniscus
            tissue = soft(yy - level, 3.0) * lungs * soft(ax * 1.1 - np.abs(xx - cx), 3.0)
    elif lesion.finding == "fracture":
        tilt = rng.uniform(-0.35, 0.35)
        dx, dy = np.sin(tilt) * r / 2, np.cos(tilt) * r / 2
        p, q = (lesion.x - dx, lesion.y - dy), (lesion.x + dx, lesion.y + dy)
        zig = 2.0 * np.sin((yy - lesion.y) / 3.0)  # jagged line
        dist = segment_distance(xx + zig, yy, p, q)
        line = soft(2.2 - dist, 1.2)
        tissue = 0.6 * soft(6.0 - dist, 2.0) * (1.0 - line)  # sclerotic / callus margins
    else:
        raise ValueError(f"unknown finding {lesion.finding!r}")
    full = np.broadcast_to
    return sy, sx, full(tissue, shape), full(air, shape), full(line, shape)


def _apply(img: np.ndarray, kind: str, tissue: np.ndarray, air: np.ndarray, line: np.ndarray) -> np.ndarray:
    if kind == "XR":
        return img + _XR_TISSUE * tissue - 0.16 * air - 0.30 * line
    img = img * (1.0 - tissue) + _CT_TISSUE * tissue
    img = img * (1.0 - air) + 0.02 * air
    return img * (1.0 - line)


def _bbox(delta: np.ndarray, x0: int, y0: int) -> list[float]:
    """Tight box [x0, y0, x1, y1] (fractions, pixel edges) of pixels changed by > BOX_THRESHOLD.

    `delta` is a window whose top-left pixel is (x0, y0).
    """
    ys, xs = np.nonzero(np.abs(delta) > BOX_THRESHOLD)
    if len(xs) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    edges = (xs.min() + x0, ys.min() + y0, xs.max() + 1 + x0, ys.max() + 1 + y0)
    return [round(float(v) / SIZE, 4) for v in edges]


def render(
    anatomy: Anatomy, lesions: list[Lesion], noise_seed: int, draw_lesions: bool = True
) -> tuple[np.ndarray, list[list[float]]]:
    """Render one image: (uint8 array (SIZE, SIZE), one box per lesion).

    With `draw_lesions=False` the same image is rendered without its findings (for tests).
    """
    rng = np.random.default_rng(noise_seed)
    img, lungs, body = (_chest if anatomy.kind == "XR" else _ct)(anatomy, rng)
    boxes: list[list[float]] = []
    for lesion in lesions:
        maps = _lesion_maps(lesion, anatomy, lungs)
        if maps is None:
            boxes.append([0.0, 0.0, 0.0, 0.0])
            continue
        sy, sx, tissue, air, line = maps
        inside = body[sy, sx]
        old = img[sy, sx]
        new = _apply(old, anatomy.kind, tissue * inside, air * inside, line * inside)
        boxes.append(_bbox(new - old, sx.start, sy.start))
        if draw_lesions:
            img[sy, sx] = new
    contrast, brightness = rng.uniform(0.92, 1.08), rng.uniform(-0.03, 0.03)
    sigma = 0.018 if anatomy.kind == "XR" else 0.028
    img = img * contrast + brightness + sigma * rng.standard_normal(img.shape, dtype=np.float32)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), boxes
