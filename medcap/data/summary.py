"""One dict describing a loaded dataset: what was kept, dropped, split and leaked (CLI + dashboard)."""

from __future__ import annotations

from typing import Any

import numpy as np

from medcap.data.records import LoadResult
from medcap.data.splits import leakage_report, make_split
from medcap.data.text import prepare_captions, tokenize
from medcap.data.vocab import Vocabulary
from medcap.runs.folder import SPLITS


def _length_stats(lengths: list[int]) -> dict[str, float]:
    if not lengths:
        return {"min": 0, "median": 0.0, "max": 0}
    arr = np.asarray(lengths)  # (N,)
    return {"min": int(arr.min()), "median": float(np.median(arr)), "max": int(arr.max())}


def summarize(
    result: LoadResult,
    max_words: int = 20,
    split_by: str = "group",
    protocol: str = "model-80",
    seed: int = 42,
    long_captions: str = "drop",
    min_count: int = 2,
) -> dict[str, Any]:
    """Summarize a load: records read/kept, drops by reason, caption lengths, vocabulary, split, leakage.

    `dropped` merges the loader's skips (image problems, malformed lines) with the caption filters;
    `records_read == records_kept + sum(dropped.values())`. The vocabulary is built on the training split.
    """
    table = result.table
    kept, caption_drops = prepare_captions(table, max_words=max_words, long_captions=long_captions)
    if kept.empty:
        raise ValueError(f"{result.spec}: no captions left after filtering (dropped {caption_drops})")
    dropped = dict(result.skipped)
    for reason, n in caption_drops.items():
        dropped[reason] = dropped.get(reason, 0) + n
    before = [len(tokenize(c)) for c in table["caption"].tolist()]
    after = [len(t) for t in kept["tokens"]]
    summary: dict[str, Any] = {
        "dataset": result.spec,
        "kind": result.kind,
        "name": result.name,
        "root": str(result.root),
        "records_read": result.records_read,
        "records_kept": len(kept),
        "dropped": dict(sorted(dropped.items())),
        "examples": result.examples,
        "notes": list(result.notes),
        "images_found": len(table),
        "groups": int(table["group"].nunique()),
        "groups_kept": int(kept["group"].nunique()),
        "has_official_split": result.has_official_split,
        "caption_words_before": _length_stats(before),
        "caption_words_after": _length_stats(after),
        "settings": {"max_words": max_words, "long_captions": long_captions, "protocol": protocol,
                     "split_by": split_by, "seed": seed, "min_count": min_count},
    }
    split = make_split(kept, protocol=protocol, split_by=split_by, seed=seed)
    train_ids = set(split["train"])
    train_tokens = kept.loc[kept["image_id"].astype(str).isin(train_ids), "tokens"]
    summary["vocab_size"] = len(Vocabulary.build(train_tokens, min_count=min_count))
    summary["split_sizes"] = {name: len(split[name]) for name in SPLITS}
    summary["leakage"] = leakage_report(kept, split)
    return summary
