"""Bounded decoding: an image decoded at a bounded size, within a memory budget, a few at a time.

What the dashboard does with an image never needs more than `DECODE_MAX_SIDE` pixels per side (the model
sees 224 x 224, the pages show at most 1024). So a large image is decoded small:
- a JPEG through libjpeg's DCT scaling (`Image.draft`: 1/2, 1/4 or 1/8 of its size, never below the
  target), so a 9000 x 9000 JPEG is decoded as 2250 x 2250 without ever holding the full image;
- any other format is reduced right after decoding (`Image.reduce`, a box average; NEAREST for palette
  and 1-bit images), then resized to the target (LANCZOS).
Before a pixel is decoded, the decode's peak memory is estimated from the header (`decode_cost`) and the
image is refused over the budget (`DECODE_BUDGET`, 192 MiB) with a message naming the file: a
9000 x 9000 RGB PNG (324 MB of pixels) is refused, the same picture as a JPEG is not.
`DecodeGate` lets at most `slots` decodes run at once (the others wait their turn) and hands the freed
memory back to the operating system after each (`release_memory`).

An image whose longest side is at most the target decodes exactly as `open_image_rgb` decodes it (same
pixels as the CLI); a larger one gets a bounded copy (the caption of a huge image may differ slightly from
`python -m medcap caption`, which decodes it whole). No TensorFlow, no Streamlit here.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
import io
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from PIL import Image, ImageOps

from medcap.data.images import (
    _SCALE_ROWS,
    MAX_UPLOAD_BYTES,
    _to_8bit,
    check_opened,
    decode_errors,
    to_rgb,
    upload_label,
)

log = logging.getLogger(__name__)

DECODE_MAX_SIDE = 2048  # longest side of a decoded upload
DECODE_BUDGET = 192 * 2**20  # peak bytes one decode may need (estimated from the header, before decoding)
DECODE_SLOTS = 2  # decodes at once per DecodeGate
DECODE_WAIT_S = 120.0  # how long a decode waits for a free slot before giving up

_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # scaled to 8 bits by value range
_ONE_BYTE_MODES = ("1", "L", "P")  # PIL stores these in one byte per pixel; RGB and the rest in four


def bytes_per_pixel(mode: str) -> int:
    """Bytes PIL keeps per pixel of an image of `mode` (RGB is padded to 4)."""
    if mode in _ONE_BYTE_MODES:
        return 1
    return 2 if mode.startswith("I;16") else 4


def target_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """`size` scaled so that its longest side is `max_side` (unchanged when already within it)."""
    width, height = size
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def decode_cost(mode: str, size: tuple[int, int], max_side: int = DECODE_MAX_SIDE,
                source_size: tuple[int, int] | None = None, progressive: bool = False, bands: int = 3) -> int:
    """Peak bytes of decoding an image of `mode` whose decoded size is `size` (after any JPEG draft).

    The decoded pixels; for 16/32-bit images also the 8-bit scaling (a raw copy, the 8-bit result and the
    float64 row blocks); for a progressive JPEG the whole-image DCT coefficient buffer libjpeg keeps
    (2 bytes per coefficient of `source_size`); then the box-reduced copy, the resized copy and the RGB
    result, in the bytes per pixel of the mode they are in.
    """
    width, height = size
    pixels = width * height
    cost = pixels * bytes_per_pixel(mode)
    if mode in _DEPTH_MODES:
        cost += pixels * (bytes_per_pixel(mode) + 1) + 3 * _SCALE_ROWS * width * 8
    if progressive and source_size is not None:
        cost += source_size[0] * source_size[1] * 2 * bands
    after = 1 if mode in _DEPTH_MODES else bytes_per_pixel(mode)  # 16/32-bit images are reduced as 8-bit
    factor = max(1, max(width, height) // max_side)
    reduced = -(-width // factor) * -(-height // factor)
    target = target_size(size, max_side)
    return cost + (reduced + target[0] * target[1]) * after + target[0] * target[1] * 4


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.0f} MB"


def _reduce(img: Image.Image, max_side: int) -> Image.Image:
    """A loaded image over `max_side` brought to it: 8-bit first, then a box reduction and a LANCZOS resize."""
    if img.mode in _DEPTH_MODES:
        img = _to_8bit(img)
    if img.mode in ("1", "P"):  # no box filter for these; NEAREST keeps the palette and transparency
        return img.resize(target_size(img.size, max_side), Image.Resampling.NEAREST)
    factor = max(img.size) // max_side
    if factor >= 2:
        img = img.reduce(factor)  # (H / f, W / f): the full-size pixels are freed with the old image
    if max(img.size) > max_side:
        img = img.resize(target_size(img.size, max_side), Image.Resampling.LANCZOS)
    return img


def decode_bounded(source: str | os.PathLike[str] | io.BytesIO, label: str, max_side: int = DECODE_MAX_SIDE,
                   budget: int = DECODE_BUDGET, formats: Sequence[str] | None = None) -> Image.Image:
    """Decode an image as 8-bit RGB with its longest side at most `max_side`, within `budget` bytes.

    ValueError naming `label` when the image is not one of `formats` (None: any), not an image, corrupt,
    over `MAX_PIXELS`, or would need more than `budget` bytes to decode (checked before decoding).
    """
    with decode_errors(label), warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limits decide
        with Image.open(source) as img:
            check_opened(img, label, formats)
            if max(img.size) <= max_side:  # small: exactly the pixels `open_image_rgb` gives
                img.load()
                return to_rgb(ImageOps.exif_transpose(img) or img)
            full = img.size
            if img.format == "JPEG":  # DCT scaling: decodes at 1/2, 1/4 or 1/8, never below the target
                img.draft(img.mode, target_size(full, max_side))
            progressive = bool(img.info.get("progressive") or img.info.get("progression"))
            cost = decode_cost(img.mode, img.size, max_side, full, progressive and img.format == "JPEG",
                               len(img.getbands()))
            if cost > budget:
                raise ValueError(
                    f"{label}: decoding this {full[0]} x {full[1]} {img.format or ''} image needs about "
                    f"{_mb(cost)}, over the {_mb(budget)} one image may use here; send it as a (baseline) "
                    f"JPEG or at most {max_side} px per side")
            img.load()
            small = _reduce(img, max_side)
            return to_rgb(ImageOps.exif_transpose(small) or small)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim` (None elsewhere)."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc keeps them otherwise)."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class DecodeGate:
    """At most `slots` bounded decodes at once; each within `budget` bytes; memory handed back after each.

    One gate per server (the dashboard keeps one in `st.cache_resource`):

        gate = DecodeGate(slots=2)
        image = gate.upload(data, "scan.jpg")    # waits for a free slot, up to `wait_s` seconds
    """

    def __init__(self, slots: int = DECODE_SLOTS, budget: int = DECODE_BUDGET, max_side: int = DECODE_MAX_SIDE,
                 wait_s: float = DECODE_WAIT_S) -> None:
        if slots < 1 or budget < 1 or max_side < 1:
            raise ValueError(f"DecodeGate needs slots, budget and max_side >= 1, got {slots}, {budget}, {max_side}")
        self.slots, self.budget, self.max_side, self.wait_s = slots, budget, max_side, wait_s
        self._free = threading.BoundedSemaphore(slots)

    @contextlib.contextmanager
    def slot(self, label: str) -> Iterator[None]:
        """Hold one decode slot (ValueError naming `label` when none frees up within `wait_s`)."""
        if not self._free.acquire(timeout=self.wait_s):
            raise ValueError(f"{label}: the server is busy decoding other images; try again in a moment")
        try:
            yield
        finally:
            self._free.release()
            release_memory()

    def try_slot(self) -> bool:
        """Take a slot without waiting (True when taken; give it back with `release`)."""
        return self._free.acquire(blocking=False)

    def release(self) -> None:
        """Give back a slot taken with `try_slot`."""
        self._free.release()

    def upload(self, data: bytes, name: str, max_bytes: int = MAX_UPLOAD_BYTES,
               formats: Sequence[str] | None = ("PNG", "JPEG")) -> Image.Image:
        """Decode an upload held in memory (never written to disk), bounded; ValueError naming it otherwise
        (empty, over `max_bytes`, not one of `formats`, corrupt, over MAX_PIXELS or over the budget)."""
        label = upload_label(data, name, max_bytes)
        with self.slot(label):
            return decode_bounded(io.BytesIO(data), label, self.max_side, self.budget, formats)


def open_bounded(path: str | os.PathLike[str], max_side: int = DECODE_MAX_SIDE,
                 budget: int = DECODE_BUDGET) -> Image.Image:
    """An image file decoded as 8-bit RGB at most `max_side` px per side; ValueError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: image file not found")
    return decode_bounded(p, str(p), max_side, budget)


__all__ = ["DECODE_BUDGET", "DECODE_MAX_SIDE", "DECODE_SLOTS", "DecodeGate", "bytes_per_pixel", "decode_bounded",
           "decode_cost", "open_bounded", "release_memory", "target_size"]
