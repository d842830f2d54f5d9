"""Features of one in-memory image (e.g. an upload to caption), exactly as a store computed them."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from medcap.features import imageload
from medcap.features.backbones import Backbone, get_backbone


class ImageFeaturizer:
    """Same backbone, weights and preprocessing as a feature store; one image per call."""

    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone

    @classmethod
    def from_meta(cls, meta: dict) -> ImageFeaturizer:
        """Featurizer matching a store's meta.json; error when this machine's weights differ."""
        name = meta.get("backbone")
        if not name:
            raise ValueError("feature store metadata names no backbone")
        backbone = get_backbone(str(name), str(meta.get("precision", "float32")))
        want = meta.get("weights_sha256")
        if want and backbone.weights_sha256 != want:
            raise ValueError(
                f"backbone {name!r} here uses weights {backbone.weights_source} "
                f"(sha256 {backbone.weights_sha256[:12]}), "
                f"but the store was extracted with {meta.get('weights_source')} (sha256 {str(want)[:12]}): "
                "features would not match"
            )
        return cls(backbone)

    def __call__(self, image: Image.Image | str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
        """Global (D,) float32 and grid (7, 7, C) float32 of one image (PIL image or file path)."""
        pixels = imageload.load_array(image, self.backbone.input_size)  # (S, S, 3) uint8
        glob, grid = self.backbone.feature_fn()(pixels[None])  # (1, D), (1, 7, 7, C)
        return glob.numpy()[0].astype(np.float32), grid.numpy()[0].astype(np.float32)
