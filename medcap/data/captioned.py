"""A dataset with a run's caption rules applied: the one preparation training and evaluation share."""

from __future__ import annotations

import logging

import pandas as pd

from medcap.data.loaders import load_records
from medcap.data.records import LoadResult
from medcap.data.text import prepare_captions

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
    table, dropped = prepare_captions(result.table, max_words=max_words, long_captions=long_captions)
    table = table.reset_index(drop=True)
    log.info("%s: captions kept %d (dropped %s)", spec, len(table), dropped or "none")
    return result, table, dropped
