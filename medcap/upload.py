"""An uploaded image, decoded in memory for captioning (never written to disk). No TensorFlow here.

A thin wrapper over `medcap.data.images.open_upload_bytes`, the one image reader: an upload gets the
same 8-bit RGB pixels (16-bit PNGs scaled, not clipped) and the same `MAX_PIXELS` limit as the CLI.
"""

from __future__ import annotations

from PIL import Image

from medcap.data.images import MAX_PIXELS, MAX_UPLOAD_BYTES, display_copy, open_upload_bytes


def open_upload(data: bytes, name: str, max_bytes: int = MAX_UPLOAD_BYTES) -> Image.Image:
    """Decode an uploaded PNG/JPEG as RGB, exactly as `open_image_rgb` reads the same file; ValueError
    naming the file and the problem (empty, too big, not PNG/JPEG, corrupt, over MAX_PIXELS) otherwise."""
    return open_upload_bytes(data, name, max_bytes=max_bytes, formats=("PNG", "JPEG"))


__all__ = ["MAX_PIXELS", "MAX_UPLOAD_BYTES", "display_copy", "open_upload"]
