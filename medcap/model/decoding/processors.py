"""Decoding constraints as small processors, composed once per decode call and applied by every search.

A processor takes the next-word scores of a batch of hypotheses (partial captions) and returns them
changed: `processor(scores (a, V), hyps) -> (a, V)`. Scores are probabilities (float64); a forbidden word
gets `BANNED` (-1: below every probability, so greedy never picks it and beam search reads it as log 0).
`build_processors` turns one `DecodeOptions` into the `Processors` list, in this order:

    MemoryMix            caption memory mixed into the distribution (memory_k, memory_lambda)
    BanTokens            words never generated: <pad>, <start>, <unk> (and <end> when asked)
    BlockAdjacentRepeat  not the previous word again (block_repeats)
    BlockRepeatedNgrams  no n-gram twice (no_repeat_ngram)
    MinLength            no <end> before min_words words (min_words)
    FactWords            no word contradicting a sure fact of the image's findings line (facts_constrain)

Greedy and beam search call the same list the same way (`medcap.model.decoding.search`); the length
penalty is not a processor: it only ranks finished beams (the beam scorer). Pure NumPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from medcap.model.decoding.memory import MEMORY_ORDER, CaptionMemory, memory_next_word
from medcap.model.decoding.options import DecodeOptions

BANNED = -1.0


@dataclass(frozen=True)
class Hypotheses:
    """The `a` partial captions scored at one step."""

    images: np.ndarray  # (a,) each hypothesis's image: its position among the images of the decode call
    generated: np.ndarray  # (a, W) word ids generated so far (no <start>), left-aligned
    n_generated: np.ndarray  # (a,) words generated so far


class Processor(Protocol):
    def __call__(self, scores: np.ndarray, hyps: Hypotheses) -> np.ndarray: ...


class MemoryMix:
    """(1 - lam) p_model + lam p_memory, where the hypothesis's image's caption memory offers a continuation."""

    def __init__(self, memory: CaptionMemory, image_ids: Sequence[str], lam: float, end_id: int,
                 order: int = MEMORY_ORDER) -> None:
        self.memory, self.rows = memory, memory.rows(image_ids)  # (N,) memory row of each decoded image
        self.lam, self.end_id, self.order = float(lam), int(end_id), int(order)

    def __call__(self, scores: np.ndarray, hyps: Hypotheses) -> np.ndarray:
        p_mem = memory_next_word(self.memory, self.rows[hyps.images], hyps.generated, hyps.n_generated,
                                 scores.shape[1], self.end_id, self.order)  # (a, V)
        has = p_mem.sum(axis=1, keepdims=True) > 0  # (a, 1): rows with an empty memory keep the model's
        return np.where(has, (1.0 - self.lam) * scores + self.lam * p_mem, scores)


class BanTokens:
    """Words never generated."""

    def __init__(self, token_ids: Sequence[int]) -> None:
        self.token_ids = sorted({int(t) for t in token_ids})

    def __call__(self, scores: np.ndarray, hyps: Hypotheses) -> np.ndarray:
        scores[:, self.token_ids] = BANNED
        return scores


class BlockAdjacentRepeat:
    """Not the previous word again (no back-to-back repeats)."""

    def __call__(self, scores: np.ndarray, hyps: Hypotheses) -> np.ndarray:
        n = np.asarray(hyps.n_generated)
        rows = np.nonzero(n > 0)[0]
        if len(rows):
            scores[rows, hyps.generated[rows, n[rows] - 1]] = BANNED
        return scores


class BlockRepeatedNgrams:
    """No word that would complete an n-gram (n >= 2) already in the caption."""

    def __init__(self, n: int) -> None:
        if int(n) < 2:
            raise ValueError(f"no_repeat_ngram must be >= 2 to block anything, got {n}")
        self.n = int(n)

    def __call__(self, scores: np.ndarray, hyps: Hypotheses) -> np.ndarray:
        n = self.n
        for i, length in enumerate(hyps.n_generated):
            words = [int(t) for t in hyps.generated[i, : int(length)]]
            if len(words) < n - 1:
                continue
            prefix = words[len(words) - (n - 1) :]
            for p in range(len(words) - n + 1):
                if words[p : p + n - 1] == prefix:
                    scores[i, words[p + n - 1]] = BANNED
        return scores


class MinLength:
    """No `<end>` before `min_words` words."""

    def __init__(self, min_words: int, end_id: int) -> None:
        self.min_words, self.end_id = int(min_words), int(end_id)

    def __call__(self, scores: np.ndarray, hyps: Hypotheses) -> np.ndarray:
        scores[np.asarray(hyps.n_generated) < self.min_words, self.end_id] = BANNED
        return scores


class FactWords:
    """Words that contradict the image's sure facts (`medcap.model.decoding.facts.fact_bans`, one array per image)."""

    def __init__(self, bans: Sequence[np.ndarray]) -> None:
        self.bans = [np.asarray(b, dtype=np.int64) for b in bans]

    def __call__(self, scores: np.ndarray, hyps: Hypotheses) -> np.ndarray:
        for row, image in enumerate(hyps.images):
            banned = self.bans[int(image)]
            if banned.size:
                scores[row, banned] = BANNED
        return scores


class Processors(list):
    """Processors applied in order to a float64 copy of the model's probabilities."""

    def __call__(self, probs: np.ndarray, hyps: Hypotheses) -> np.ndarray:
        scores = np.array(probs, dtype=np.float64)  # (a, V) a copy: the model's own probabilities stay
        for processor in self:
            scores = processor(scores, hyps)
        return scores


def build_processors(options: DecodeOptions, vocab: Any, memory: CaptionMemory | None = None,
                     image_ids: Sequence[str] | None = None, ban_end: bool = False,
                     fact_bans: Sequence[np.ndarray] | None = None) -> Processors:
    """The processors `options` ask for. `memory` (the caption memory of `image_ids`, the decoded images in
    order) is required when options.memory_k > 0 and refused otherwise; `ban_end` forbids `<end>`;
    `fact_bans` (per decoded image, the word ids its sure facts ban) applies when options.facts_constrain."""
    end_id = int(vocab.end_id)
    if (memory is not None) != (options.memory_k > 0):
        raise ValueError(f"decoding with memory_k={options.memory_k} needs a caption memory exactly when "
                         f"memory_k > 0 (got {'one' if memory is not None else 'none'})")
    out = Processors()
    if memory is not None and options.memory_mixed:
        if image_ids is None:
            raise ValueError("decoding with a caption memory needs the image id of each decoded image")
        out.append(MemoryMix(memory, image_ids, options.memory_lambda, end_id))
    out.append(BanTokens([vocab.pad_id, vocab.start_id, vocab.unk_id] + ([end_id] if ban_end else [])))
    if options.block_repeats:
        out.append(BlockAdjacentRepeat())
    if options.no_repeat_ngram >= 2:
        out.append(BlockRepeatedNgrams(options.no_repeat_ngram))
    if options.min_words > 0:
        out.append(MinLength(options.min_words, end_id))
    if options.facts_constrain and fact_bans is not None:
        out.append(FactWords(fact_bans))
    return out
