"""Data layer: dataset loaders, caption filtering, vocabulary, splits and leakage checks (no TensorFlow)."""

from medcap.data.captioned import load_captioned
from medcap.data.loaders import load_records, load_synthetic_folder
from medcap.data.records import LoadResult
from medcap.data.splits import leakage_report, make_split
from medcap.data.summary import summarize
from medcap.data.text import prepare_captions, tokenize
from medcap.data.vocab import Vocabulary

__all__ = [
    "LoadResult",
    "Vocabulary",
    "leakage_report",
    "load_captioned",
    "load_records",
    "load_synthetic_folder",
    "make_split",
    "prepare_captions",
    "summarize",
    "tokenize",
]
