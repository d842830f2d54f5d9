"""Exact cosine nearest neighbours by blocks (pure NumPy): the 1-NN baseline, the caption memory and
similar cases all use this one search.

Memory stays O(query_block x train_block + (query_block + train_block) x D) whatever the sizes, so
float16 memmaps of any length work. Training blocks are visited in index order and candidates from
earlier blocks come first when similarities tie, so ties always go to the lower training index.
"""

from __future__ import annotations

import numpy as np

QUERY_BLOCK = 1024  # query rows per block
TRAIN_BLOCK = 8192  # training rows per block: similarities (QUERY_BLOCK, TRAIN_BLOCK) float32 = 32 MiB


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, float32 (all-zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)  # (N, D)


def top_k(train_feats: np.ndarray, query_feats: np.ndarray, k: int, query_block: int = QUERY_BLOCK,
          train_block: int = TRAIN_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Indices (Q, k) and cosine similarities (Q, k) of each query's k closest training rows, best first.

    k is capped at the number of training rows; ties go to the lower training index.
    """
    if len(train_feats) == 0:
        raise ValueError("nearest neighbours: no training features")
    if np.shape(train_feats)[1] != np.shape(query_feats)[1]:
        raise ValueError(f"nearest neighbours: feature dims differ ({np.shape(train_feats)[1]} vs "
                         f"{np.shape(query_feats)[1]})")
    if query_block < 1 or train_block < 1:
        raise ValueError(f"nearest neighbours: block sizes must be >= 1 (got {query_block}, {train_block})")
    k = max(1, min(int(k), len(train_feats)))
    n_query = len(query_feats)
    idx = np.zeros((n_query, k), dtype=np.int64)  # (Q, k)
    sims = np.full((n_query, k), -np.inf, dtype=np.float32)  # (Q, k)
    for q0 in range(0, n_query, query_block):
        q = unit_rows(query_feats[q0 : q0 + query_block])  # (c, D)
        best_i = np.zeros((len(q), 0), dtype=np.int64)  # (c, 0)
        best_s = np.zeros((len(q), 0), dtype=np.float32)  # (c, 0)
        for t0 in range(0, len(train_feats), train_block):
            s = q @ unit_rows(train_feats[t0 : t0 + train_block]).T  # (c, t)
            # (c, k'): the block's best, lowest index first on ties (arg-max alone when k == 1: no sort)
            cand = np.argmax(s, axis=1)[:, None] if k == 1 else np.argsort(-s, axis=1, kind="stable")[:, :k]
            all_i = np.concatenate([best_i, cand + t0], axis=1)  # earlier blocks first
            all_s = np.concatenate([best_s, np.take_along_axis(s, cand, axis=1)], axis=1)
            keep = np.argsort(-all_s, axis=1, kind="stable")[:, :k]  # (c, k)
            best_i = np.take_along_axis(all_i, keep, axis=1)
            best_s = np.take_along_axis(all_s, keep, axis=1)
        idx[q0 : q0 + len(q)] = best_i
        sims[q0 : q0 + len(q)] = best_s
    return idx, sims
