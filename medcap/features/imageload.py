"""Decode one image file (or in-memory PIL image) into a fixed-size RGB uint8 array for a backbone.

Decoding is the data layer's (`medcap.data.images`: RGBA over black, 16-bit scaled by its range,
EXIF orientation), so features see the same pixels as every other part of medcap. Resizing squashes
to `size x size` with bilinear filtering (the aspect ratio is not kept, as in Keras `load_img`).
No TensorFlow here: the pipeline calls it from `tf.numpy_function`, the featurizer directly.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from medcap.data.images import open_image_rgb, to_rgb


class ImageDecodeError(ValueError):
    """An image that cannot be used; the message names the file and the problem."""


def open_rgb(path: str | os.PathLike[str]) -> Image.Image:
    """Open and fully decode an image file as 8-bit RGB; ImageDecodeError naming the file otherwise."""
    try:
        return open_image_rgb(path)
    except ValueError as exc:
        raise ImageDecodeError(str(exc)) from exc
    except Exception as exc:  # anything PIL raises on hostile input is a decode failure
        raise ImageDecodeError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc


def resize_array(img: Image.Image, size: int) -> np.ndarray:
    """Squash-resize an RGB image to (size, size, 3) uint8."""
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)  # (S, S, 3)


def load_array(source: Image.Image | str | os.PathLike[str], size: int) -> np.ndarray:
    """Image file path or PIL image -> (size, size, 3) uint8 RGB."""
    img = to_rgb(source) if isinstance(source, Image.Image) else open_rgb(source)
    return resize_array(img, size)
