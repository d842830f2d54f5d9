"""Seeded image augmentation for extra feature views (paper section 4.1: images are augmented).

Small rotation, scale-and-crop, brightness and contrast. No horizontal flip by default: captions
name sides ("left upper lobe") and a flip would make them wrong. Each view is reproducible from
(seed, image id, view number), so an interrupted extraction resumes with the same views.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageEnhance


@dataclass(frozen=True)
class AugmentSettings:
    """Ranges of the random transforms (uniform in +-range unless stated)."""

    rotation_deg: float = 10.0
    min_scale: float = 0.85  # crop side as a fraction of the image side, in [min_scale, 1]
    brightness: float = 0.15
    contrast: float = 0.15
    hflip: bool = False
    seed: int = 0

    def to_dict(self) -> dict:
        """JSON-ready settings (recorded in the store metadata and fingerprint)."""
        return asdict(self)


def view_rng(settings: AugmentSettings, image_id: str, view: int) -> np.random.Generator:
    """The generator for one view of one image (independent of row order and batch size)."""
    return np.random.default_rng([settings.seed, zlib.crc32(image_id.encode("utf-8")), view])


def augment_image(img: Image.Image, rng: np.random.Generator, settings: AugmentSettings) -> Image.Image:
    """One random view of an RGB image (same size as the input)."""
    w, h = img.size
    angle = float(rng.uniform(-settings.rotation_deg, settings.rotation_deg))
    out = img.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
    scale = float(rng.uniform(settings.min_scale, 1.0))
    cw, ch = max(1, round(w * scale)), max(1, round(h * scale))
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    out = out.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.Resampling.BILINEAR)
    out = ImageEnhance.Brightness(out).enhance(1.0 + float(rng.uniform(-settings.brightness, settings.brightness)))
    out = ImageEnhance.Contrast(out).enhance(1.0 + float(rng.uniform(-settings.contrast, settings.contrast)))
    if settings.hflip and rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return out


def augmented_views(img: Image.Image, image_id: str, k: int, settings: AugmentSettings) -> list[Image.Image]:
    """K seeded views of one image."""
    return [augment_image(img, view_rng(settings, image_id, v), settings) for v in range(k)]
