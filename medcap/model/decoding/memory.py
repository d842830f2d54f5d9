"""The caption memory of retrieval-aware decoding (beyond the paper), indexed by image id.

For each query image, the k training images closest in the run's global features (cosine) and their
captions form a small caption "memory". At every decoding step the model's next-word distribution is
interpolated with a distribution read from that memory (kNN-LM style; `processors.MemoryMix`):

    p(w | prefix, image) = (1 - lam) * p_model(w | prefix, image) + lam * p_memory(w | prefix)

p_memory looks, in each neighbour caption, for the last `order` generated words (backing off to fewer
words) and takes the word that follows there (`<end>` after the caption's last word); neighbours vote
with softmax(similarity / temperature) weights. The model still writes the caption word by word, but a run that
mixes the memory in is retrieval-augmented: spans of its neighbours' captions are copied (with one matching
neighbour it gets the whole memory weight), so its captions are reported beside its neural-only variant
(`medcap.eval.hybrid`). The attention maps are the model's own. Each row of the
memory belongs to one image id: a decoder is told which image each caption is for, so features may be
decoded in any order (the image-reliance check decodes them permuted). Pure NumPy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from medcap.base.neighbours import top_k

MEMORY_ORDER = 2  # p_memory continues the last (up to) 2 generated words


@dataclass(frozen=True, eq=False)
class CaptionMemory:
    """Per query image (one row each, named by `image_ids`): its neighbours' captions and vote weights."""

    image_ids: tuple[str, ...]  # (Q,) distinct
    captions: list[list[list[int]]]  # (Q, k) token-id lists, no markers
    weights: np.ndarray  # (Q, k) softmax(similarity / temperature), rows sum to 1
    neighbours: np.ndarray  # (Q, k) training row indices
    similarity: np.ndarray  # (Q, k) cosine similarities
    _row: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = tuple(str(i) for i in self.image_ids)
        object.__setattr__(self, "image_ids", ids)
        row = {image_id: r for r, image_id in enumerate(ids)}
        if len(row) != len(ids):
            twice = sorted(i for i, n in Counter(ids).items() if n > 1)
            raise ValueError(f"caption memory: image ids must be distinct, {twice[:5]} appear more than once")
        sizes = {len(self.captions), len(self.weights), len(self.neighbours), len(self.similarity)}
        if sizes != {len(ids)}:
            raise ValueError(f"caption memory: {len(ids)} image ids but rows of sizes {sorted(sizes)}")
        object.__setattr__(self, "_row", row)

    @property
    def k(self) -> int:
        """Neighbours per image (memory_k, capped at the number of training images)."""
        return int(self.neighbours.shape[1])

    def rows(self, image_ids: Sequence[str]) -> np.ndarray:
        """The memory row of each image id (N,); ValueError naming an id the memory does not hold."""
        try:
            return np.array([self._row[str(i)] for i in image_ids], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"caption memory has no image {exc.args[0]!r} (it holds {len(self.image_ids)} "
                             f"images)") from None


def build_memory(train_feats: np.ndarray, train_token_ids: Sequence[Sequence[int]], query_feats: np.ndarray,
                 query_ids: Sequence[str], k: int = 8, temperature: float = 0.05) -> CaptionMemory:
    """The caption memory of each query image (row i of `query_feats` is image `query_ids[i]`)."""
    if len(train_feats) != len(train_token_ids):
        raise ValueError(f"build_memory: {len(train_feats)} features but {len(train_token_ids)} captions")
    if len(query_feats) != len(query_ids):
        raise ValueError(f"build_memory: {len(query_feats)} query features but {len(query_ids)} image ids")
    if temperature <= 0:
        raise ValueError(f"build_memory: temperature must be > 0, got {temperature}")
    idx, sims = top_k(train_feats, query_feats, k)
    logits = (sims - sims.max(axis=1, keepdims=True)) / temperature  # (Q, k)
    w = np.exp(logits)
    w /= w.sum(axis=1, keepdims=True)
    caps = [[list(map(int, train_token_ids[j])) for j in row] for row in idx]
    return CaptionMemory(image_ids=tuple(query_ids), captions=caps, weights=w.astype(np.float64), neighbours=idx,
                         similarity=sims)


def memory_next_word(memory: CaptionMemory, rows: np.ndarray, generated: np.ndarray, n_generated: np.ndarray,
                     vocab_size: int, end_id: int, order: int = MEMORY_ORDER) -> np.ndarray:
    """p_memory (a, V) for `a` partial captions: memory `rows` (a,), `generated` (a, W) word ids, `n_generated` (a,).

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
