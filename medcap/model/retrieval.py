"""Retrieval-aware decoding (beyond the paper): next-word evidence from the nearest training captions.

For each image, the k training images closest in the run's global features (cosine) and their captions
form a small caption "memory". At every decoding step the model's next-word distribution is
interpolated with a distribution read from that memory (kNN-LM style):

    p(w | prefix, image) = (1 - lam) * p_model(w | prefix, image) + lam * p_memory(w | prefix)

p_memory looks, in each neighbour caption, for the last `order` generated words (backing off to fewer
words) and takes the word that follows there (`<end>` after the caption's last word); neighbours vote
with softmax(similarity / temperature) weights. The model still writes the caption word by word (the
result is new text, not a copied caption) and its attention maps are the model's own. Pure NumPy.

Also here: decoding constraints shared by greedy and beam search (no back-to-back repeats, no
repeated n-gram, minimum length).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medcap.base.neighbours import top_k


@dataclass
class CaptionMemory:
    """Per query image: its neighbours' captions (token ids, no markers) and their vote weights."""

    captions: list[list[list[int]]]  # (Q, k) token-id lists
    weights: np.ndarray  # (Q, k) softmax(similarity / temperature), rows sum to 1
    neighbours: np.ndarray  # (Q, k) training row indices
    similarity: np.ndarray  # (Q, k) cosine similarities

    def subset(self, rows: np.ndarray | Sequence[int]) -> CaptionMemory:
        rows = np.asarray(rows, dtype=np.int64)
        return CaptionMemory([self.captions[int(r)] for r in rows], self.weights[rows], self.neighbours[rows],
                             self.similarity[rows])


def build_memory(train_feats: np.ndarray, train_token_ids: Sequence[Sequence[int]], query_feats: np.ndarray,
                 k: int = 8, temperature: float = 0.05) -> CaptionMemory:
    """The caption memory of each query image: its k nearest training images' captions."""
    if len(train_feats) != len(train_token_ids):
        raise ValueError(f"build_memory: {len(train_feats)} features but {len(train_token_ids)} captions")
    if temperature <= 0:
        raise ValueError(f"build_memory: temperature must be > 0, got {temperature}")
    idx, sims = top_k(train_feats, query_feats, k)
    logits = (sims - sims.max(axis=1, keepdims=True)) / temperature  # (Q, k)
    w = np.exp(logits)
    w /= w.sum(axis=1, keepdims=True)
    caps = [[list(map(int, train_token_ids[j])) for j in row] for row in idx]
    return CaptionMemory(captions=caps, weights=w.astype(np.float64), neighbours=idx, similarity=sims)


def memory_next_word(memory: CaptionMemory, rows: np.ndarray, generated: np.ndarray, n_generated: np.ndarray,
                     vocab_size: int, end_id: int, order: int = 2) -> np.ndarray:
    """p_memory (a, V) for `a` partial captions: `generated` (a, W) word ids, `n_generated` (a,) lengths.

    Rows whose neighbours offer no continuation get an all-zero row (the caller keeps the model's).
    """
    out = np.zeros((len(rows), vocab_size), dtype=np.float64)  # (a, V)
    for i, (q, n) in enumerate(zip(rows, n_generated, strict=True)):
        words = [int(t) for t in generated[i, : int(n)]]
        for cap, w in zip(memory.captions[int(q)], memory.weights[int(q)], strict=True):
            seq = [*cap, end_id]
            nxt = _continuations(seq, words, order)
            for t in nxt:
                out[i, t] += w / len(nxt)
    total = out.sum(axis=1, keepdims=True)
    return np.divide(out, total, out=np.zeros_like(out), where=total > 0)


def _continuations(seq: list[int], words: list[int], order: int) -> list[int]:
    """Tokens of `seq` that follow the longest (<= order) suffix of `words` found in it; seq[0] at the start."""
    if not words:
        return [seq[0]]
    for m in range(min(order, len(words)), 0, -1):
        tail = words[-m:]
        found = [seq[p + m] for p in range(len(seq) - m) if seq[p : p + m] == tail]
        if found:
            return found
    return []


def mix(p_model: np.ndarray, p_memory: np.ndarray, lam: float) -> np.ndarray:
    """(1 - lam) * p_model + lam * p_memory, row-wise; rows with an empty memory keep p_model."""
    has = p_memory.sum(axis=1, keepdims=True) > 0  # (a, 1)
    mixed = (1.0 - lam) * p_model + lam * p_memory
    return np.where(has, mixed, p_model)


def ban_adjacent(scores: np.ndarray, generated: np.ndarray, n_generated: np.ndarray, banned_value: float
                 ) -> np.ndarray:
    """Forbid the previous word again (no back-to-back repeats). `scores` (a, V) is modified and returned."""
    rows = np.nonzero(np.asarray(n_generated) > 0)[0]
    if len(rows):
        last = generated[rows, np.asarray(n_generated)[rows] - 1]  # (r,)
        scores[rows, last] = banned_value
    return scores


def ban_repeats(scores: np.ndarray, generated: np.ndarray, n_generated: np.ndarray, no_repeat_ngram: int,
                banned_value: float) -> np.ndarray:
    """Forbid words that would complete an n-gram (n >= 2) already in the caption.

    `scores` (a, V) is modified in place and returned; `generated` (a, W), `n_generated` (a,).
    """
    n = int(no_repeat_ngram)
    if n < 2:
        return scores
    for i, length in enumerate(n_generated):
        words = [int(t) for t in generated[i, : int(length)]]
        if len(words) < n - 1:
            continue
        prefix = words[len(words) - (n - 1) :]
        for p in range(len(words) - n + 1):
            if words[p : p + n - 1] == prefix:
                scores[i, words[p + n - 1]] = banned_value
    return scores
