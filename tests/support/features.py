"""Helpers for the FEATURES tests: tiny image datasets and a tiny stand-in backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf
from PIL import Image

from medcap.data.records import LoadResult
from medcap.features.backbones import Backbone


def write_colour_images(folder: Path, colours: dict[str, tuple[int, int, int]], size: int = 40) -> dict[str, Path]:
    """One constant-colour PNG per id; returns id -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for image_id, colour in colours.items():
        path = folder / f"{image_id}.png"
        Image.new("RGB", (size, size), colour).save(path)
        out[image_id] = path
    return out


def make_result(paths: dict[str, Path], name: str = "toy") -> LoadResult:
    """A LoadResult over the given images (captions irrelevant to features)."""
    table = pd.DataFrame({
        "image_id": list(paths),
        "image_path": [str(p) for p in paths.values()],
        "caption": ["a caption"] * len(paths),
        "group": list(paths),
        "split": [""] * len(paths),
    })
    root = next(iter(paths.values())).parent
    return LoadResult(spec=f"test:{root}", kind="test", name=name, root=root, table=table)


def tiny_backbone(calls: list[int] | None = None) -> Backbone:
    """28x28 input; grid = 4x4 average pool of pixels/255 (7, 7, 3); global = grid mean (3,)."""

    def build():
        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 3], tf.uint8)])
        def run(images):
            x = tf.cast(images, tf.float32) / 255.0  # (B, 28, 28, 3)
            grid = tf.nn.avg_pool2d(x, 4, 4, "VALID")  # (B, 7, 7, 3)
            return tf.reduce_mean(grid, axis=[1, 2]), grid  # (B, 3), (B, 7, 7, 3)

        def counted(images):
            if calls is not None:
                calls.append(int(images.shape[0]))
            return run(images)

        return counted

    return Backbone("tiny", 28, 3, (7, 7, 3), "test weights", "0" * 64, "mean(grid)", "avgpool", "x/255", build)


def rgb(colour: tuple[int, int, int]) -> np.ndarray:
    """Expected global vector of a constant-colour image under the tiny backbone."""
    return np.array(colour, dtype=np.float32) / 255.0
