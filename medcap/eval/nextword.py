"""Next-word classification over (prefix, next word) pairs, as the paper's Table 2.

A caption of n words (ids w1..wn, no markers) gives n + 1 pairs: prefix `<start> w1..wk`
(right-padded with 0 to `max_len`) and target w(k+1), the last target being `<end>`; these are
the pairs the model is trained on. Reference words outside the run's vocabulary are `<unk>` here.
The model is any callable taking {"global", "grid", "prefix"} (raw store features: a run's model
applies its own feature scale) and returning {"probs": (B, V)} (a Keras model); TensorFlow is not
imported by this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medcap.eval.metrics import classification_metrics


def next_word_pairs(token_ids: Sequence[Sequence[int]], start_id: int, end_id: int, max_len: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs of the captions: (image index (P,), prefixes (P, max_len) int32, targets (P,) int64).

    Prefixes longer than `max_len` keep their last `max_len` tokens.
    """
    if max_len < 1:
        raise ValueError(f"next_word_pairs: max_len must be >= 1, got {max_len}")
    images: list[int] = []
    prefixes: list[list[int]] = []
    targets: list[int] = []
    for i, ids in enumerate(token_ids):
        seq = [start_id, *ids, end_id]
        for k in range(1, len(seq)):
            images.append(i)
            prefixes.append(seq[max(0, k - max_len) : k])
            targets.append(seq[k])
    out = np.zeros((len(prefixes), max_len), dtype=np.int32)  # (P, T), 0 = pad
    for row, prefix in enumerate(prefixes):
        out[row, : len(prefix)] = prefix
    return np.array(images, dtype=np.int64), out, np.array(targets, dtype=np.int64)


def predict_next_words(model: Any, global_feats: np.ndarray, grid_feats: np.ndarray, images: np.ndarray,
                       prefixes: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Arg-max next word of every pair (P,), features gathered per pair from the per-image arrays."""
    g_all = np.asarray(global_feats, dtype=np.float32)  # (N, D)
    r_all = np.asarray(grid_feats, dtype=np.float32).reshape(len(g_all), 49, -1)  # (N, 49, 512)
    preds = np.zeros(len(prefixes), dtype=np.int64)
    for start in range(0, len(prefixes), batch_size):
        rows = images[start : start + batch_size]
        out = model({"global": g_all[rows], "grid": r_all[rows], "prefix": prefixes[start : start + batch_size]},
                    training=False)
        probs = np.asarray(out["probs"])  # (B, V)
        preds[start : start + len(rows)] = probs.argmax(axis=1)
    return preds


def next_word_metrics(model: Any, global_feats: np.ndarray, grid_feats: np.ndarray,
                      token_ids: Sequence[Sequence[int]], start_id: int, end_id: int, max_len: int,
                      batch_size: int = 256) -> dict[str, float]:
    """Accuracy and macro/weighted precision, recall, F1 of the model's next-word predictions."""
    images, prefixes, targets = next_word_pairs(token_ids, start_id, end_id, max_len)
    if len(targets) == 0:
        return classification_metrics([], [])
    preds = predict_next_words(model, global_feats, grid_feats, images, prefixes, batch_size)
    return classification_metrics(targets, preds)
