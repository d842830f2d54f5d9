"""A dataset with a run's caption rules applied: the one preparation training and evaluation share."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pandas as pd

from medcap.config import RunConfig
from medcap.data.loaders import load_records
from medcap.data.records import LoadResult
from medcap.data.splits import PROTOCOLS, kfold_splits, make_split
from medcap.data.text import prepare_captions
from medcap.runs.folder import SPLITS

log = logging.getLogger(__name__)


def load_captioned(spec: str, max_words: int = 20,
                   long_captions: str = "drop") -> tuple[LoadResult, pd.DataFrame, dict[str, int]]:
    """Load a dataset and keep the images whose caption passes the rules (no TensorFlow).

    Returns (LoadResult, kept table with a `tokens` column and a 0..n-1 index, dropped counts by reason).
    The kept table may be empty; callers that need captions say so in their own words.
    """
    result = load_records(spec)
    log.info("%s: %d usable images (%d records read, skipped %s)", spec, len(result.table),
             result.records_read, result.skipped or "none")
    table, dropped = apply_caption_rules(result, max_words=max_words, long_captions=long_captions)
    return result, table, dropped


def apply_caption_rules(result: LoadResult, max_words: int = 20,
                        long_captions: str = "drop") -> tuple[pd.DataFrame, dict[str, int]]:
    """`load_captioned`'s rules on an already loaded dataset (read it once, apply several policies)."""
    table, dropped = prepare_captions(result.table, max_words=max_words, long_captions=long_captions)
    table = table.reset_index(drop=True)
    log.info("%s: captions kept %d (dropped %s)", result.spec, len(table), dropped or "none")
    return table, dropped


def dataset_fingerprint(table: pd.DataFrame) -> str:
    """sha256 over the sorted (image_id, caption, image file size) of the kept table (first 16 hex)."""
    h = hashlib.sha256()
    for image_id, caption, path in sorted(zip(table["image_id"], table["caption"], table["image_path"],
                                               strict=True)):
        try:
            size = Path(path).stat().st_size
        except OSError:
            size = -1
        h.update(f"{image_id}\t{caption}\t{size}\n".encode())
    return h.hexdigest()[:16]


def split_for_run(result: LoadResult, table: pd.DataFrame, cfg: RunConfig) -> dict[str, list[str]]:
    """The run's train/val/test image ids over its kept `table`, from its protocol and split seed.

    kfold: the folds are cut from every image with a usable caption (long captions kept), so runs that
    keep different captions (drop vs truncate) share the same case-disjoint folds; each run then uses the
    images it kept. Other protocols split the kept table (`make_split`).
    """
    seed = cfg.effective_split_seed
    if cfg.protocol == "kfold":
        pool, _ = prepare_captions(result.table, max_words=cfg.max_words, long_captions="truncate")
        folds = kfold_splits(pool.reset_index(drop=True), k=cfg.n_folds, seed=seed)
        kept = set(table["image_id"].astype(str))
        return {name: [i for i in folds[cfg.fold][name] if i in kept] for name in SPLITS}
    test_fraction = PROTOCOLS.get(cfg.preset if cfg.preset in PROTOCOLS else "model-80")[2]
    split = make_split(table, protocol=cfg.protocol, split_by=cfg.split_by, seed=seed, test_fraction=test_fraction)
    return {name: list(split.get(name, [])) for name in SPLITS}
