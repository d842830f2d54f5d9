"""Dataset facts for the dashboard's pages: generated synthetic sets, caption statistics, finding boxes.

No Streamlit and no TensorFlow here; nothing is generated or extracted (only read when on disk). The datasets
the pages offer come from `medcap.data.roots.find_datasets`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from medcap.base import paths
from medcap.data.loaders import DEFAULT_SYNTHETIC_N, parse_spec
from medcap.data.text import tokenize


def synthetic_size(spec: str) -> int | None:
    """N for a generated-set spec (`synthetic` -> the default N, `synthetic:N`), None for any other spec."""
    kind, arg = parse_spec(spec)
    if kind != "synthetic":
        return None
    if not arg:
        return DEFAULT_SYNTHETIC_N
    return int(arg) if arg.isdigit() else None


def synthetic_folder(n: int, seed: int = 0) -> Path:
    """Where `synthetic:n` is generated (`artifacts/datasets/synthetic-<n>-seed<seed>/`)."""
    return paths.datasets_dir() / f"synthetic-{int(n)}-seed{seed}"


def synthetic_ready(n: int, seed: int = 0) -> bool:
    """True once `synthetic:n` is fully generated (its records.jsonl and meta.json are in place)."""
    folder = synthetic_folder(n, seed)
    return (folder / "records.jsonl").is_file() and (folder / "meta.json").is_file()


def synthetic_rendered(n: int, seed: int = 0) -> int:
    """Images of `synthetic:n` rendered so far by a generation in progress (its temporary folders)."""
    parent = paths.datasets_dir()
    if not parent.is_dir():
        return 0
    name = synthetic_folder(n, seed).name
    counts = [sum(1 for _ in (tmp / "images").glob("*.png")) for tmp in parent.glob(f".{name}.tmp-*")
              if (tmp / "images").is_dir()]
    return max(counts, default=0)


def caption_lengths(table: pd.DataFrame) -> list[int]:
    """Caption length in words (medcap tokenizer) of every row of a dataset table."""
    return [len(tokenize(str(c))) for c in table["caption"].tolist()]


def frequent_words(table: pd.DataFrame, n: int = 25) -> list[tuple[str, int]]:
    """The `n` most frequent caption words (medcap tokenizer) with their counts."""
    counts: Counter[str] = Counter()
    for caption in table["caption"].tolist():
        counts.update(tokenize(str(caption)))
    return counts.most_common(n)


# Columns that are not labels to count by (ids, paths, text, per-image numbers, the case id itself).
_NOT_LABELS = frozenset({"image_id", "image_path", "caption", "tokens", "boxes", "group", "caption_words",
                         "figure_label"})


def count_columns(table: pd.DataFrame) -> list[str]:
    """Label columns of a dataset table the Data page counts by (MedPix: modality, modality_detail, plane,
    location_category, location, acr_code, age, sex; synthetic: modality, plane; a CSV's metadata), in
    table order; the split columns too."""
    return [c for c in table.columns if c not in _NOT_LABELS and not pd.api.types.is_float_dtype(table[c])]


def label_counts(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """Images and cases (distinct `group`) per value of `column` ("(none)" for empty values), most images
    first, with each value's share of the images."""
    if column not in table.columns:
        raise ValueError(f"no column {column!r} in the dataset table (columns: {list(table.columns)})")
    values = table[column].fillna("").astype(str).str.strip().replace("", "(none)")
    groups = table["group"].astype(str) if "group" in table.columns else table["image_id"].astype(str)
    frame = pd.DataFrame({column: values, "group": groups})
    out = frame.groupby(column, sort=False).agg(images=("group", "size"), cases=("group", "nunique")).reset_index()
    out["share"] = (out["images"] / max(len(table), 1)).round(4)
    return out.sort_values(["images", column], ascending=[False, True], kind="stable").reset_index(drop=True)


def true_boxes(row: pd.Series | dict[str, Any]) -> list[dict[str, Any]]:
    """Finding boxes of a synthetic image (from a `boxes` JSON column), [] otherwise."""
    text = row.get("boxes") if hasattr(row, "get") else None
    if not isinstance(text, str) or not text:
        return []
    try:
        boxes = json.loads(text)
    except ValueError:
        return []
    return [b for b in boxes if isinstance(b, dict) and "box" in b] if isinstance(boxes, list) else []


def synthetic_signature(spec: str, seed: int = 0) -> float:
    """Modification time of a generated `synthetic:N` set's records.jsonl (0.0 when absent or another spec).

    The cache key of anything read from the set: a set generated while the dashboard runs is read at once.
    """
    kind, _, arg = spec.partition(":")
    if kind.strip() != "synthetic" or not arg.strip().isdigit():
        return 0.0
    try:
        return (paths.datasets_dir() / f"synthetic-{int(arg)}-seed{seed}" / "records.jsonl").stat().st_mtime
    except OSError:
        return 0.0


def synthetic_boxes(spec: str, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """image id -> true finding boxes of an already generated synthetic set (never generates one).

    `spec` is `synthetic:N`; {} for other datasets or when the set is not on disk.
    """
    kind, _, arg = spec.partition(":")
    if kind.strip() != "synthetic" or not arg.strip().isdigit():
        return {}
    folder = paths.datasets_dir() / f"synthetic-{int(arg)}-seed{seed}"
    if not (folder / "records.jsonl").is_file():
        return {}
    from medcap.data import load_synthetic_folder

    table = load_synthetic_folder(folder, spec=spec).table
    if "boxes" not in table.columns:
        return {}
    return {str(r["image_id"]): true_boxes(r) for r in table[["image_id", "boxes"]].to_dict("records")}
