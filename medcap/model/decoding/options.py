"""`DecodeOptions`: how captions are searched, one frozen record whose field names are `RunConfig`'s.

A run's options come from its config (`DecodeOptions.from_config(cfg)`); a change is made by name
(`options.replace(beam_size=3)`). Every field is a `RunConfig` field with the same meaning and default,
so a setting has one name from the command line to the decoder. The defaults reproduce plain greedy search.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medcap.model.decoding.memory import MEMORY_ORDER, CaptionMemory

if TYPE_CHECKING:
    from medcap.config import RunConfig


@dataclass(frozen=True)
class DecodeOptions:
    """How captions are searched (each field as documented on `medcap.config.RunConfig`).

    beam_size: 1 greedy search, else beam search with that many beams.
    max_words: a caption stops after this many words.
    length_penalty: GNMT alpha of the beam scorer; beams are ranked by score / ((5 + n) / 6) ** alpha,
        n = generated tokens (0: the raw sum of log-probabilities, which favours short captions).
    min_words: `<end>` is forbidden before this many words.
    block_repeats: forbid repeating the previous word ("right right").
    no_repeat_ngram: forbid completing an n-gram already in the caption (0: off; >= 2).
    memory_k / memory_lambda / memory_temperature: retrieval-aware decoding with the k nearest training
        captions (0: off); p = (1 - lambda) p_model + lambda p_memory (`medcap.model.decoding.memory`).
    facts_constrain: no word that contradicts a sure fact of the image's findings line
        (`medcap.model.decoding.facts`; needs the run's fact predictors).
    facts_silent: with facts_constrain, no word of a fact the findings line is not sure of either.
    """

    beam_size: int = 1
    max_words: int = 20
    length_penalty: float = 0.0
    min_words: int = 0
    block_repeats: bool = False
    no_repeat_ngram: int = 0
    memory_k: int = 0
    memory_lambda: float = 0.3
    memory_temperature: float = 0.1
    facts_constrain: bool = False
    facts_silent: bool = False

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # settings from JSON or flags: 3 for 3.0, numpy scalars
            kind = {"int": int, "float": float, "bool": bool}[str(f.type)]
            object.__setattr__(self, f.name, kind(getattr(self, f.name)))
        problems = [(name, why) for name, bad, why in (
            ("beam_size", self.beam_size < 1, "must be >= 1"),
            ("max_words", self.max_words < 1, "must be >= 1"),
            ("length_penalty", self.length_penalty < 0, "must be >= 0"),
            ("min_words", self.min_words < 0, "must be >= 0"),
            ("no_repeat_ngram", self.no_repeat_ngram < 0, "must be >= 0"),
            ("memory_k", self.memory_k < 0, "must be >= 0"),
            ("memory_lambda", not 0.0 <= self.memory_lambda <= 1.0, "must be in [0, 1]"),
            ("memory_temperature", self.memory_temperature <= 0, "must be > 0"),
        ) if bad]
        if problems:
            name, why = problems[0]
            raise ValueError(f"decoding option {name} {why}, got {getattr(self, name)!r}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_config(cls, cfg: RunConfig) -> DecodeOptions:
        """The decoding settings of a run."""
        return cls(**{name: getattr(cfg, name) for name in cls.field_names()})

    def replace(self, **overrides: Any) -> DecodeOptions:
        """A copy with the named fields changed; ValueError for a name that is not a field."""
        unknown = sorted(set(overrides) - set(self.field_names()))
        if unknown:
            raise ValueError(f"unknown decoding options {unknown}; known: {', '.join(self.field_names())}")
        return dataclasses.replace(self, **overrides)

    @property
    def memory_mixed(self) -> bool:
        """Whether the caption memory is mixed into the next-word distribution."""
        return self.memory_k > 0 and self.memory_lambda > 0

    def describe(self, memory: CaptionMemory | None) -> dict[str, Any]:
        """JSON record of the search as decoded with `memory` (metrics.json's `decode_options`).

        Keeps the record's historic keys (`beam`, `block_adjacent`) and reports the memory's own k (capped at
        the training set's size), so evaluations written before and after compare key for key.
        """
        return {"beam": self.beam_size, "max_words": self.max_words, "length_penalty": self.length_penalty,
                "min_words": self.min_words, "block_adjacent": self.block_repeats,
                "no_repeat_ngram": self.no_repeat_ngram,
                "memory_lambda": self.memory_lambda if memory is not None else 0.0,
                "memory_k": memory.k if memory is not None else 0, "memory_order": MEMORY_ORDER}
