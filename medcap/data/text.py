"""Caption tokenization and filtering (paper section 4.1: lowercase, no punctuation, <= 20 words)."""

from __future__ import annotations

import logging
import re
import unicodedata

import pandas as pd

log = logging.getLogger(__name__)

# A decimal number with an optional unit glued on ("3.5", "2.4cm"), else a run of letters/digits ("t2", "lul").
_TOKEN = re.compile(r"\d+(?:\.\d+)+[^\W\d_]*|[^\W_]+")
_APOSTROPHES = str.maketrans("", "", "'\u2019\u2018`")

# Unfilled MedPix template: "Replace this - DESCRIPTION OF THE IMAGE OR FINDINGS."
_PLACEHOLDER_PREFIX = ("replace", "this", "description", "of", "the", "image")

LONG_CAPTION_MODES = ("drop", "truncate")


def tokenize(text: str) -> list[str]:
    """Lowercase and split into word tokens, stripping punctuation but keeping numbers and abbreviations.

    >>> tokenize("CT of the chest: 3.5 cm LUL mass, T2-bright.")
    ['ct', 'of', 'the', 'chest', '3.5', 'cm', 'lul', 'mass', 't2', 'bright']
    """
    if not isinstance(text, str) or not text:
        return []
    norm = unicodedata.normalize("NFKC", text).lower().translate(_APOSTROPHES)
    return _TOKEN.findall(norm)


def is_placeholder(tokens: list[str]) -> bool:
    """True for the unfilled caption template ("Replace this - DESCRIPTION OF THE IMAGE ...")."""
    return tuple(tokens[: len(_PLACEHOLDER_PREFIX)]) == _PLACEHOLDER_PREFIX


def caption_reason(tokens: list[str], max_words: int, long_captions: str = "drop") -> str | None:
    """Why a tokenized caption is dropped ("empty_caption", "placeholder", "too_long"), or None to keep it."""
    if not tokens:
        return "empty_caption"
    if is_placeholder(tokens):
        return "placeholder"
    if len(tokens) > max_words and long_captions == "drop":
        return "too_long"
    return None


def prepare_captions(
    table: pd.DataFrame, max_words: int = 20, long_captions: str = "drop"
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Tokenize `table.caption` into a new `tokens` column and drop unusable captions.

    Drops empty captions, unfilled templates and (with long_captions="drop") captions longer than
    `max_words` words; with long_captions="truncate" those keep their first `max_words` tokens.
    Returns the kept rows (a copy, index reset) and the dropped counts by reason.
    """
    if long_captions not in LONG_CAPTION_MODES:
        raise ValueError(f"long_captions must be one of {LONG_CAPTION_MODES}, not {long_captions!r}")
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, not {max_words}")
    if "caption" not in table.columns:
        raise ValueError("table has no 'caption' column")
    tokens = [tokenize(c) for c in table["caption"].tolist()]
    reasons = [caption_reason(t, max_words, long_captions) for t in tokens]
    keep = [r is None for r in reasons]
    dropped: dict[str, int] = {}
    for r in reasons:
        if r is not None:
            dropped[r] = dropped.get(r, 0) + 1
    out = table.loc[keep].copy()
    out["tokens"] = [t[:max_words] for t, k in zip(tokens, keep, strict=True) if k]
    out = out.reset_index(drop=True)
    if dropped:
        log.info("captions: kept %d of %d, dropped %s", len(out), len(table), dropped)
    return out, dropped
