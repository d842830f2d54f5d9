"""Captions that agree with the findings line: words stating another value of a sure fact are not generated.

For each decoded image, the facts its fact predictor is sure of (`medcap.model.facts_head.sure_facts`:
modality, plane, body region) ban every one-word phrase of the facts lexicon (`medcap.data.facts_lexicon`)
that states a different value of the same fact: a sure "ct" bans "mri", "t2", "flair", "gadolinium"...
(words implying MR), a sure "axial" bans "coronal" and "sagittal", a sure "head" bans "lung", "liver"...
The finding and location facts of the synthetic set ban nothing (an image may hold several findings).
With `facts_silent` a fact the line is not sure of is banned whole (every word of every value of it).
Pure NumPy; applied by `FactWords` like every other decoding processor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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


def fact_words(fact: str) -> frozenset[str]:
    """Every one-word phrase that states some value of `fact` (none for facts that ban nothing)."""
    if fact not in BANNING_FACTS:
        return frozenset()
    return frozenset().union(*_word_values()[fact].values())


def fact_bans(vocab: Any, sure: Sequence[Mapping[str, str]],
              unsure: Sequence[Iterable[str]] | None = None) -> list[np.ndarray]:
    """Per image: the vocabulary ids its sure facts ban (sorted int64 array, maybe empty).

    `unsure` (per image, the facts its findings line is not sure of; decoding option `facts_silent`) also
    bans every word of those facts, except words that state a sure fact's own value: the caption then
    states no fact the line does not state."""
    out = []
    for row, facts in enumerate(sure):
        words = set().union(*(contradicting_words(f, v) for f, v in facts.items())) if facts else set()
        if unsure is not None:
            keep = set().union(*(_word_values()[f].get(v, frozenset()) for f, v in facts.items()
                                 if f in BANNING_FACTS)) if facts else set()
            words |= set().union(*(fact_words(f) for f in unsure[row])) - keep
        ids = sorted({vocab.index[w] for w in words if w in vocab.index})
        out.append(np.asarray(ids, dtype=np.int64))
    return out
