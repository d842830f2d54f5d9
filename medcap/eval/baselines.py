"""Two reference baselines for captioning (pure NumPy): most-frequent training caption, 1-NN retrieval."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np


def most_frequent_caption(train_tokens: Sequence[Sequence[str]], groups: Sequence[str] | None = None) -> list[str]:
    """The most frequent training caption (token list); ties go to the caption seen first.

    With `groups` (each caption's case), a caption counts once per case that uses it, so one case with
    many images of the same caption cannot decide the baseline.
    """
    if not train_tokens:
        raise ValueError("most_frequent_caption: the training split has no captions")
    keys = [tuple(t) for t in train_tokens]
    if groups is None:
        counts = Counter(keys)
    else:
        if len(groups) != len(keys):
            raise ValueError(f"most_frequent_caption: {len(keys)} captions but {len(groups)} group labels")
        counts = Counter(k for k, _ in dict.fromkeys(zip(keys, map(str, groups), strict=True)))
    best = max(counts.values())
    return list(next(k for k in keys if counts[k] == best))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)  # (N, 1)
    return x / np.maximum(norm, 1e-12)


def nearest_neighbours(train_feats: np.ndarray, query_feats: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Index of the training row with the highest cosine similarity to each query row (ties: lowest index)."""
    if len(train_feats) == 0:
        raise ValueError("nearest_neighbours: no training features")
    if train_feats.shape[1] != query_feats.shape[1]:
        raise ValueError(f"nearest_neighbours: feature dims differ ({train_feats.shape[1]} vs {query_feats.shape[1]})")
    train = _unit_rows(train_feats)  # (Ntr, D)
    out = np.zeros(len(query_feats), dtype=np.int64)
    for start in range(0, len(query_feats), chunk):
        q = _unit_rows(query_feats[start : start + chunk])  # (c, D)
        sims = q @ train.T  # (c, Ntr)
        out[start : start + len(q)] = np.argmax(sims, axis=1)
    return out


def nearest_neighbour_captions(train_feats: np.ndarray, train_tokens: Sequence[Sequence[str]],
                               query_feats: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
    """1-NN retrieval: for each query, the caption of the closest training image (cosine on global features)."""
    if len(train_feats) != len(train_tokens):
        raise ValueError(f"nearest_neighbour_captions: {len(train_feats)} features but {len(train_tokens)} captions")
    idx = nearest_neighbours(train_feats, query_feats)
    return idx, [list(train_tokens[i]) for i in idx]
