"""Cheap image validation and robust RGB opening (RGBA, palette, grayscale, 16-bit)."""

from __future__ import annotations

import logging
import os
import struct
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

# Reason keys returned by `check_image` (also used as skip reasons by the loaders).
IMAGE_REASONS = ("missing_file", "empty_file", "not_an_image", "corrupt_image", "decompression_bomb")

# Extensions the loaders accept when resolving an image by its stem, in order of preference.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")

# File signatures of common image formats: an unreadable file that starts with one is "corrupt_image".
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")

_DRAFT_SIZE = (64, 64)  # JPEG draft decode size: decodes at 1/8 scale, cheap but catches truncation


def _pixel_limit() -> int | None:
    return Image.MAX_IMAGE_PIXELS


def check_image(path: str | os.PathLike[str]) -> str | None:
    """Return None when `path` is a readable image, else a reason key from IMAGE_REASONS.

    Cheap: header parse + `verify()`; JPEGs get an extra reduced (draft) decode to catch truncation.
    Images over PIL's decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`) are rejected.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError:
        return "missing_file"
    if not p.is_file():
        return "missing_file"
    if size == 0:
        return "empty_file"
    try:
        with Image.open(p) as img:
            limit = _pixel_limit()
            if limit is not None and img.width * img.height > limit:
                return "decompression_bomb"
            fmt = img.format
            img.verify()
        if fmt == "JPEG":
            with Image.open(p) as img:
                img.draft("RGB", _DRAFT_SIZE)
                img.load()
    except Image.DecompressionBombError:
        return "decompression_bomb"
    except UnidentifiedImageError:
        return "corrupt_image" if _looks_like_image(p) else "not_an_image"
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error):
        return "corrupt_image"
    return None


def _looks_like_image(path: Path) -> bool:
    """True when the file starts with a known image signature."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    return head.startswith(_MAGIC)


def check_images(paths: Sequence[str | os.PathLike[str]], workers: int | None = None) -> list[str | None]:
    """Run `check_image` over many paths in a thread pool; results in input order."""
    if not paths:
        return []
    n_workers = workers or min(16, (os.cpu_count() or 1) * 4)
    with warnings.catch_warnings():
        # Over-limit images are reported as "decompression_bomb"; PIL's own warning is noise here.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            return list(pool.map(check_image, paths, chunksize=64))


def _to_8bit(img: Image.Image) -> Image.Image:
    """Scale a 16-bit / 32-bit / float single-channel image to 8-bit grayscale by its value range."""
    arr = np.asarray(img, dtype=np.float64)  # (H, W)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        out = np.zeros(arr.shape, dtype=np.uint8)  # (H, W)
    else:
        out = np.round((arr - lo) * (255.0 / (hi - lo))).astype(np.uint8)  # (H, W)
    return Image.fromarray(out, mode="L")


def _composite_on_black(img: Image.Image) -> Image.Image:
    """Drop alpha by compositing over black (transparent pixels become black)."""
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL image to 8-bit RGB (16-bit scaled by range, alpha composited on black)."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _to_8bit(img).convert("RGB")
    if mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        return _composite_on_black(img)
    if mode == "P":
        if "transparency" in img.info:
            return _composite_on_black(img)
        return img.convert("RGB")
    if mode == "RGB":
        return img
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def open_image_rgb(path: str | os.PathLike[str]) -> Image.Image:
    """Open an image file as a fully loaded 8-bit RGB PIL image.

    Raises ValueError naming the file when it is missing, empty, not an image, corrupt or too large.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: image file not found")
    if p.stat().st_size == 0:
        raise ValueError(f"{p}: image file is empty (0 bytes)")
    try:
        with Image.open(p) as img:
            img.load()
            img = ImageOps.exif_transpose(img) or img
            return to_rgb(img)
    except Image.DecompressionBombError as exc:
        raise ValueError(f"{p}: image exceeds the decompression-bomb pixel limit ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ValueError(f"{p}: not an image file PIL can read") from exc
    except (OSError, SyntaxError, EOFError) as exc:
        raise ValueError(f"{p}: corrupt image ({exc})") from exc


def index_images(folder: Path) -> dict[str, Path]:
    """Map file stem -> image path for the image files directly in `folder` (preferred extension wins)."""
    rank = {ext: i for i, ext in enumerate(IMAGE_EXTENSIONS)}
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    with os.scandir(folder) as entries:
        for entry in entries:
            suffix = os.path.splitext(entry.name)[1].lower()
            if suffix not in rank:
                continue
            stem = os.path.splitext(entry.name)[0]
            old = found.get(stem)
            if old is None or rank[suffix] < rank[old.suffix.lower()]:
                found[stem] = folder / entry.name
    return found
