"""Caption health: the degenerate-output symptoms a reader spots at once (pure Python)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

Tokens = Sequence[str]


def has_adjacent_repeat(words: Tokens) -> bool:
    """A word repeated back to back ("right right")."""
    return any(a == b for a, b in pairwise(words))


def has_repeated_bigram(words: Tokens) -> bool:
    """Any 2-gram occurring twice ("of the ... of the")."""
    grams = Counter(pairwise(words))
    return any(c > 1 for c in grams.values())


def caption_health(hyps: Sequence[Tokens], refs: Sequence[Sequence[Tokens]] | None = None) -> dict[str, Any]:
    """Shares of captions with back-to-back repeats and repeated 2-grams, diversity and length.

    `hyps`: one token list per image; `refs`: per image its reference token lists (the first is used for
    the reference mean length). Shares are fractions of the images.
    """
    n = len(hyps)
    if n == 0:
        return {"n_images": 0}
    lengths = [len(h) for h in hyps]
    out: dict[str, Any] = {
        "n_images": n,
        "adjacent_repeat_share": sum(has_adjacent_repeat(h) for h in hyps) / n,
        "repeated_bigram_share": sum(has_repeated_bigram(h) for h in hyps) / n,
        "empty_share": sum(1 for length in lengths if length == 0) / n,
        "distinct_captions": len({tuple(h) for h in hyps}),
        "distinct_caption_ratio": len({tuple(h) for h in hyps}) / n,
        "distinct_words": len({w for h in hyps for w in h}),
        "mean_length": sum(lengths) / n,
    }
    if refs is not None:
        if len(refs) != n:
            raise ValueError(f"caption_health: {n} captions but {len(refs)} reference sets")
        ref_lengths = [len(r[0]) if r else 0 for r in refs]
        out["reference_mean_length"] = sum(ref_lengths) / n
        out["reference_distinct_words"] = len({w for r in refs for w in (r[0] if r else [])})
    return out
