"""Captions that agree with the findings line: words stating another value of a sure fact are not generated.

For each decoded image, the facts its fact predictor is sure of (`medcap.model.facts_head.sure_facts`:
modality, plane, body region) ban every one-word phrase of the facts lexicon (`medcap.data.facts_lexicon`)
that states a different value of the same fact: a sure "ct" bans "mri", "t2", "flair", "gadolinium"...
(words implying MR), a sure "axial" bans "coronal" and "sagittal", a sure "head" bans "lung", "liver"...
The finding and location facts of the synthetic set ban nothing (an image may hold several findings).
Pure NumPy; applied by `FactWords` like every other decoding processor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np

from medcap.data.facts_lexicon import IMPLIED_CT, IMPLIED_MR, PHRASES

BANNING_FACTS: tuple[str, ...] = ("modality", "plane", "region")


@cache
def _word_values() -> dict[str, dict[str, frozenset[str]]]:
    """fact -> {value: the one-word phrases stating it}."""
    out: dict[str, dict[str, set[str]]] = {f: {} for f in BANNING_FACTS}
    for fact in BANNING_FACTS:
        for phrase, value in PHRASES[fact].items():
            if " " not in phrase:
                out[fact].setdefault(value, set()).add(phrase)
    for value, words in (("mr", IMPLIED_MR), ("ct", IMPLIED_CT)):
        out["modality"].setdefault(value, set()).update(w for w in words if " " not in w)
    return {f: {v: frozenset(ws) for v, ws in values.items()} for f, values in out.items()}


def contradicting_words(fact: str, value: str) -> frozenset[str]:
    """The one-word phrases that state another value of `fact` than `value` (none for other facts)."""
    if fact not in BANNING_FACTS:
        return frozenset()
    words = _word_values()[fact]
    own = words.get(value, frozenset())
    return frozenset(w for v, ws in words.items() if v != value for w in ws if w not in own)


def fact_bans(vocab: Any, sure: Sequence[Mapping[str, str]]) -> list[np.ndarray]:
    """Per image: the vocabulary ids its sure facts ban (sorted int64 array, maybe empty)."""
    out = []
    for facts in sure:
        words = set().union(*(contradicting_words(f, v) for f, v in facts.items())) if facts else set()
        ids = sorted({vocab.index[w] for w in words if w in vocab.index})
        out.append(np.asarray(ids, dtype=np.int64))
    return out
