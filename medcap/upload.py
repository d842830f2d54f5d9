"""An uploaded image, decoded in memory for captioning (never written to disk). No TensorFlow here."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from medcap.io import safe_name

MAX_UPLOAD_BYTES = 10 * 1024 * 1024


def open_upload(data: bytes, name: str, max_bytes: int = MAX_UPLOAD_BYTES) -> Image.Image:
    """Decode an uploaded PNG/JPEG as RGB; ValueError naming the file and the problem otherwise."""
    label = safe_name(name or "upload", max_len=80)
    if len(data) > max_bytes:
        raise ValueError(f"{label}: file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    if not data:
        raise ValueError(f"{label}: the file is empty")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            if fmt not in ("PNG", "JPEG"):
                raise ValueError(f"{label}: is {fmt or 'not an image'}; only PNG and JPEG are accepted")
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{label}: not a readable PNG or JPEG image ({exc.__class__.__name__})") from exc
