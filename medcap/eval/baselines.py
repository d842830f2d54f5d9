"""Two reference baselines for captioning (pure NumPy): most-frequent training caption, 1-NN retrieval."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from medcap.base.neighbours import top_k


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


def nearest_neighbour_captions(train_feats: np.ndarray, train_tokens: Sequence[Sequence[str]],
                               query_feats: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
    """1-NN retrieval: for each query, the caption of the closest training image (cosine on global features).

    Returns (indices (Q,), captions): the training row with the highest cosine similarity to each query row
    (ties: lowest index), exact and by blocks (`medcap.base.neighbours.top_k`, the one neighbour search).
    """
    if len(train_feats) != len(train_tokens):
        raise ValueError(f"nearest_neighbour_captions: {len(train_feats)} features but {len(train_tokens)} captions")
    idx = top_k(train_feats, query_feats, 1)[0][:, 0]  # (Q,)
    return idx, [list(train_tokens[i]) for i in idx]
