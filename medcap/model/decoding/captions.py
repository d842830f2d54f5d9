"""What the searches read and write: feature batches in, `Caption`s out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medcap.model.layers import GRID_CHANNELS, GRID_REGIONS


@dataclass
class Caption:
    """One decoded caption."""

    words: list[str]
    token_ids: list[int]  # ids of `words` (no <start>/<end>)
    probs: list[float]  # model probability of each generated word
    attention: np.ndarray | None  # (n_words, 7, 7) last prefix position's map; None for attention="self"
    text: str  # " ".join(words)
    score: float  # sum log-prob of the generated tokens (<end> included when reached)
    attention_mean: np.ndarray | None = None  # (n_words, 7, 7) mean over the prefix positions
    # the image's findings line: {fact: (value, probability, sure)} (medcap.model.facts_head); None without one
    facts: dict[str, tuple[str, float, bool]] | None = None


def check_inputs(global_feats: Any, grid_feats: Any, image_ids: Sequence[str] | None) -> int:
    """Validate shapes (arrays or memmaps stay unread) and the number of image ids; return N."""
    shape = tuple(np.shape(global_feats))
    if len(shape) != 2:
        raise ValueError(f"global features must be (N, D), got shape {shape}")
    n = shape[0]
    if grid_feats is not None:
        gshape = tuple(np.shape(grid_feats))
        if gshape[1:] not in ((7, 7, GRID_CHANNELS), (GRID_REGIONS, GRID_CHANNELS)) or gshape[0] != n:
            raise ValueError(f"grid features must be (N={n}, 7, 7, 512), got shape {gshape}")
    if image_ids is not None and len(image_ids) != n:
        raise ValueError(f"{len(image_ids)} image ids for {n} images")
    return n


def feature_batch(global_feats: Any, grid_feats: Any, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows lo:hi as float32 (only this batch is converted): (b, D), (b, 49, 512)."""
    g = np.asarray(global_feats[lo:hi], dtype=np.float32)  # (b, D)
    if grid_feats is None:
        return g, np.zeros((len(g), GRID_REGIONS, GRID_CHANNELS), dtype=np.float32)  # (b, 49, 512)
    grid = np.asarray(grid_feats[lo:hi], dtype=np.float32).reshape(len(g), GRID_REGIONS, GRID_CHANNELS)
    return g, grid  # (b, D), (b, 49, 512)


def make_caption(vocab: Any, ids: list[int], probs: list[float], last: np.ndarray | None,
                 mean: np.ndarray | None, score: float) -> Caption:
    """A `Caption` from generated ids, their probabilities and per-word maps (n, 49) (None: no maps)."""
    words = [vocab.words[i] for i in ids]

    def grid(att: np.ndarray | None) -> np.ndarray | None:
        return None if att is None else np.asarray(att, dtype=np.float32).reshape(len(ids), 7, 7)  # (n, 7, 7)

    return Caption(words=words, token_ids=list(ids), probs=list(probs), attention=grid(last), text=" ".join(words),
                   score=float(score), attention_mean=grid(mean))
