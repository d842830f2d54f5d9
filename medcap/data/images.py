"""Cheap image validation and robust RGB opening (RGBA, palette, grayscale, 16-bit).

The one image reader of medcap: loaders (`check_image`), features and `caption` (`open_image_rgb`) and
dashboard uploads (`open_upload_bytes`) all decode here and share one pixel limit, `MAX_PIXELS`.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import struct
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from medcap.base.io import safe_name

log = logging.getLogger(__name__)

# Reason keys returned by `check_image` (also used as skip reasons by the loaders).
IMAGE_REASONS = ("outside_root", "missing_file", "symlink_loop", "empty_file", "not_an_image", "corrupt_image",
                 "decompression_bomb")

# The one pixel limit (width x height) for every image medcap decodes: 89,478,485 px (~89.5 MP, e.g.
# 9459 x 9459), PIL's own default `Image.MAX_IMAGE_PIXELS`. Larger images are refused as decompression
# bombs by the loaders, feature extraction, `caption` and dashboard uploads alike.
MAX_PIXELS = 89_478_485

# Longest side of the copies the dashboard shows (`display_copy`).
DISPLAY_MAX_SIDE = 1024

# Largest upload accepted by `open_upload_bytes` by default: 10 MB as Streamlit counts them (2**20 bytes),
# the `maxUploadSize` of .streamlit/config.toml.
_MB = 1024 * 1024
MAX_UPLOAD_BYTES = 10 * _MB

# Extensions the loaders accept when resolving an image by its stem, in order of preference.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")

# File signatures of common image formats: an unreadable file that starts with one is "corrupt_image".
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")

_DRAFT_SIZE = (64, 64)  # JPEG draft decode size: decodes at 1/8 scale, cheap but catches truncation


def _pixel_limit() -> int:
    return MAX_PIXELS


def _too_many_pixels(img: Image.Image) -> bool:
    return img.width * img.height > _pixel_limit()


def _bomb_text(width: int | None = None, height: int | None = None) -> str:
    size = f"{width} x {height} = {width * height:,} pixels, " if width and height else ""
    return f"image is too large ({size}over the decompression-bomb limit of {_pixel_limit():,} pixels)"


def is_inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """True when `path`, with every symlink resolved, lies inside the (resolved) folder `root`."""
    real = os.path.realpath(path)
    base = os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def check_image(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str | None:
    """Return None when `path` is a readable image, else a reason key from IMAGE_REASONS.

    Cheap: header parse + `verify()`; JPEGs get an extra reduced (draft) decode to catch truncation.
    Images over `MAX_PIXELS` are rejected ("decompression_bomb"). With `root`, a path that resolves
    (symlinks included) outside that folder is "outside_root", checked before anything else so the
    answer never reveals whether a file outside the root exists.
    """
    p = Path(path)
    if root is not None and not is_inside(p, root):
        return "outside_root"
    try:
        size = p.stat().st_size
    except OSError as exc:
        return "symlink_loop" if exc.errno == errno.ELOOP else "missing_file"
    if not p.is_file():
        return "missing_file"
    if size == 0:
        return "empty_file"
    try:
        with Image.open(p) as img:
            if _too_many_pixels(img):
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


def check_images(
    paths: Sequence[str | os.PathLike[str]],
    workers: int | None = None,
    root: str | os.PathLike[str] | None = None,
) -> list[str | None]:
    """Run `check_image` (with the same `root`) over many paths in a thread pool; results in input order."""
    if not paths:
        return []
    n_workers = workers or min(16, (os.cpu_count() or 1) * 4)
    with warnings.catch_warnings():
        # Over-limit images are reported as "decompression_bomb"; PIL's own warning is noise here.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            return list(pool.map(lambda p: check_image(p, root), paths, chunksize=64))


_SCALE_ROWS = 512  # rows range-scaled at a time: bounds the float64 working memory of big 16-bit images


def _to_8bit(img: Image.Image) -> Image.Image:
    """Scale a 16-bit / 32-bit / float single-channel image to 8-bit grayscale by its value range.

    Works in row blocks, so a large 16-bit image costs about its own size plus the 8-bit result.
    """
    arr = np.asarray(img)  # (H, W) native dtype (uint16, int32 or float32)
    lo, hi = float(arr.min()), float(arr.max())
    out = np.zeros(arr.shape, dtype=np.uint8)  # (H, W)
    if hi > lo:
        scale = 255.0 / (hi - lo)
        for top in range(0, arr.shape[0], _SCALE_ROWS):
            block = arr[top:top + _SCALE_ROWS].astype(np.float64)  # (<=512, W)
            out[top:top + _SCALE_ROWS] = np.round((block - lo) * scale).astype(np.uint8)
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


def check_opened(img: Image.Image, label: str, formats: Sequence[str] | None = None) -> None:
    """ValueError naming `label` when an opened (not yet decoded) image is not one of `formats` (None: any) or is
    over `MAX_PIXELS`: the checks every reader makes before decoding."""
    if formats is not None and img.format not in formats:
        allowed = " and ".join(formats)
        raise ValueError(f"{label}: is {img.format or 'not an image'}; only {allowed} are accepted")
    if _too_many_pixels(img):
        raise ValueError(f"{label}: {_bomb_text(img.width, img.height)}")


def _decode_rgb(source: str | os.PathLike[str] | io.BytesIO, label: str,
                formats: Sequence[str] | None = None) -> Image.Image:
    """Open, check the pixel limit (before decoding), decode, apply EXIF orientation, convert to RGB."""
    with decode_errors(label), warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides
        with Image.open(source) as img:
            check_opened(img, label, formats)
            img.load()
            img = ImageOps.exif_transpose(img) or img
            return to_rgb(img)


@contextlib.contextmanager
def decode_errors(label: str) -> Iterator[None]:
    """Turn what PIL raises on a bad file into a ValueError naming `label` and the problem (every reader)."""
    try:
        yield
    except Image.DecompressionBombError as exc:
        raise ValueError(f"{label}: {_bomb_text()}") from exc
    except UnidentifiedImageError as exc:
        raise ValueError(f"{label}: not an image file PIL can read") from exc
    except (OSError, SyntaxError, EOFError, IndexError, TypeError, struct.error) as exc:
        raise ValueError(f"{label}: corrupt image ({exc})") from exc


def open_image_rgb(path: str | os.PathLike[str]) -> Image.Image:
    """Open an image file as a fully loaded 8-bit RGB PIL image (16-bit scaled by range, alpha over black).

    Raises ValueError naming the file when it is missing, empty, not an image, corrupt or over `MAX_PIXELS`.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError(f"{p}: image path is a symlink loop") from exc
        raise ValueError(f"{p}: image file not found") from exc
    if not p.is_file():
        raise ValueError(f"{p}: image file not found")
    if size == 0:
        raise ValueError(f"{p}: image file is empty (0 bytes)")
    return _decode_rgb(p, str(p))


def _size_text(n_bytes: int) -> str:
    """A byte count for people: '10.5 MB', '12 KB', '20 bytes' (MB and KB as powers of 2, as Streamlit counts)."""
    if n_bytes >= _MB:
        return f"{n_bytes / _MB:.3g} MB"
    return f"{n_bytes / 1024:.3g} KB" if n_bytes >= 1024 else f"{n_bytes} bytes"


def open_upload_bytes(
    data: bytes,
    name: str,
    max_bytes: int = MAX_UPLOAD_BYTES,
    formats: Sequence[str] | None = ("PNG", "JPEG"),
) -> Image.Image:
    """Decode an uploaded image held in memory into the same 8-bit RGB pixels `open_image_rgb` gives
    for the same file (nothing is written to disk).

    ValueError naming the upload when it is empty, over `max_bytes`, not one of `formats` (None: any
    format PIL reads), corrupt, or over `MAX_PIXELS` (checked from the header, before decoding).
    """
    label = upload_label(data, name, max_bytes)
    return _decode_rgb(io.BytesIO(data), label, formats=formats)


def upload_label(data: bytes, name: str, max_bytes: int = MAX_UPLOAD_BYTES) -> str:
    """An upload's safe display name; ValueError naming it when it is empty or over `max_bytes`."""
    label = safe_name(name or "upload", max_len=80)
    if not data:
        raise ValueError(f"{label}: the uploaded file is empty")
    if len(data) > max_bytes:
        raise ValueError(f"{label}: the uploaded file is {_size_text(len(data))}; the limit is "
                         f"{_size_text(max_bytes)}")
    return label


def display_copy(image: Image.Image, max_side: int = DISPLAY_MAX_SIDE) -> Image.Image:
    """A copy of `image` whose longest side is at most `max_side` (aspect kept); show this, never the original."""
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    width, height = image.size
    longest = max(width, height)
    if longest <= max_side:
        return image.copy()
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


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


def open_upload(data: bytes, name: str, max_bytes: int = MAX_UPLOAD_BYTES) -> Image.Image:
    """Decode an uploaded PNG/JPEG as RGB, exactly as `open_image_rgb` reads the same file; ValueError
    naming the file and the problem (empty, too big, not PNG/JPEG, corrupt, over MAX_PIXELS) otherwise."""
    return open_upload_bytes(data, name, max_bytes=max_bytes, formats=("PNG", "JPEG"))
