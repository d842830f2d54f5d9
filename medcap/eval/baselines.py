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


QUERY_BLOCK = 1024  # query rows per block
TRAIN_BLOCK = 8192  # training rows per block: similarities (QUERY_BLOCK, TRAIN_BLOCK) float32 = 32 MiB


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)  # (N, 1)
    return x / np.maximum(norm, 1e-12)


def nearest_neighbours(train_feats: np.ndarray, query_feats: np.ndarray, chunk: int = QUERY_BLOCK,
                       train_block: int = TRAIN_BLOCK) -> np.ndarray:
    """Index of the training row with the highest cosine similarity to each query row (ties: lowest index).

    Exact top-1 by blocks: memory O(chunk x train_block + (chunk + train_block) x D) whatever the
    sizes, so float16 memmaps of any length work. Training blocks are visited in index order and a
    later block wins only with a strictly higher similarity, which keeps arg-max's lowest-index ties.
    """
    if len(train_feats) == 0:
        raise ValueError("nearest_neighbours: no training features")
    if train_feats.shape[1] != query_feats.shape[1]:
        raise ValueError(f"nearest_neighbours: feature dims differ ({train_feats.shape[1]} vs {query_feats.shape[1]})")
    if chunk < 1 or train_block < 1:
        raise ValueError(f"nearest_neighbours: block sizes must be >= 1 (got {chunk}, {train_block})")
    n_query = len(query_feats)
    best = np.full(n_query, -np.inf, dtype=np.float32)  # (Nq,)
    out = np.zeros(n_query, dtype=np.int64)  # (Nq,)
    for t0 in range(0, len(train_feats), train_block):
        train = _unit_rows(train_feats[t0 : t0 + train_block])  # (t, D)
        for q0 in range(0, n_query, chunk):
            q = _unit_rows(query_feats[q0 : q0 + chunk])  # (c, D)
            sims = q @ train.T  # (c, t)
            arg = np.argmax(sims, axis=1)  # (c,) first maximum within the block
            top = sims[np.arange(len(q)), arg]  # (c,)
            better = top > best[q0 : q0 + len(q)]  # strictly: earlier blocks keep ties
            best[q0 : q0 + len(q)][better] = top[better]
            out[q0 : q0 + len(q)][better] = arg[better] + t0
    return out


def nearest_neighbour_captions(train_feats: np.ndarray, train_tokens: Sequence[Sequence[str]],
                               query_feats: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
    """1-NN retrieval: for each query, the caption of the closest training image (cosine on global features)."""
    if len(train_feats) != len(train_tokens):
        raise ValueError(f"nearest_neighbour_captions: {len(train_feats)} features but {len(train_tokens)} captions")
    idx = nearest_neighbours(train_feats, query_feats)
    return idx, [list(train_tokens[i]) for i in idx]
