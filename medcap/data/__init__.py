"""Data layer: dataset loaders, caption filtering, vocabulary, splits and leakage checks (no TensorFlow)."""

from medcap.data.captioned import apply_caption_rules, dataset_fingerprint, load_captioned, split_for_run
from medcap.data.loaders import load_records, load_synthetic_folder
from medcap.data.records import LoadResult
from medcap.data.splits import leakage_report, make_split
from medcap.data.summary import summarize
from medcap.data.text import prepare_captions, tokenize
from medcap.data.vocab import Vocabulary

__all__ = [
    "LoadResult",
    "Vocabulary",
    "apply_caption_rules",
    "dataset_fingerprint",
    "leakage_report",
    "load_captioned",
    "load_records",
    "load_synthetic_folder",
    "make_split",
    "prepare_captions",
    "split_for_run",
    "summarize",
    "tokenize",
]
