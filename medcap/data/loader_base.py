"""What every dataset loader shares: one record row, image-file checks, and the finished `LoadResult`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from medcap.data.images import check_images, is_inside
from medcap.data.readers import SkipLog
from medcap.data.records import REQUIRED_COLUMNS, LoadResult

log = logging.getLogger(__name__)

_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                  "dev": "val", "test": "test", "testing": "test"}


def text_of(value: Any) -> str:
    """A caption/metadata value as text ("" for null)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return value if isinstance(value, str) else str(value)


def split_name(value: Any) -> str:
    return _SPLIT_ALIASES.get(text_of(value).strip().lower(), "")


def record_row(image_id: str, image_path: Path, caption: Any, group: Any = "", split: str = "", **meta: Any) -> dict:
    image_id = str(image_id)
    row = {"image_id": image_id, "image_path": str(image_path), "caption": text_of(caption),
           "group": text_of(group) or image_id, "split": split}
    row.update(meta)
    return row


def finish(spec: str, kind: str, name: str, root: Path, rows: list[dict], skips: SkipLog,
            has_official_split: bool, allow_outside_root: bool = False) -> LoadResult:
    """Drop duplicate ids and rows whose image fails validation (thread pool); build the LoadResult.

    Every record read is either in `rows` or already counted in `skips`, so records_read is their sum.
    Unless `allow_outside_root`, an image path resolving outside `root` is skipped as "outside_root".
    """
    records_read = len(rows) + skips.total()
    unique: list[dict] = []
    seen: set[str] = set()
    for row in rows:
        if row["image_id"] in seen:
            skips.add("duplicate_id", row["image_id"], "image id already seen")
            continue
        seen.add(row["image_id"])
        unique.append(row)
    reasons = check_images([r["image_path"] for r in unique], root=None if allow_outside_root else root)
    kept = []
    for row, reason in zip(unique, reasons, strict=True):
        if reason is None:
            kept.append(row)
        else:
            skips.add(reason, row["image_path"],
                      f"resolves outside the dataset folder {root}" if reason == "outside_root" else "")
    if not kept:
        hint = (" Image paths outside the dataset folder are refused; pass --allow-outside-root "
                "(allow_outside_root=True) to read them." if skips.skipped.get("outside_root") else "")
        notes = "".join(f" {n}." for n in skips.notes)
        raise ValueError(
            f"{spec}: no usable records in {root} (read {records_read}; skipped {dict(skips.skipped) or 'none'})."
            f"{notes}{hint}"
        )
    table = pd.DataFrame(kept)
    ordered = [*REQUIRED_COLUMNS, *[c for c in table.columns if c not in REQUIRED_COLUMNS]]
    table = table[ordered].reset_index(drop=True)
    if skips.skipped:
        log.info("%s: %d usable of %d records; skipped %s", spec, len(table), records_read, skips.skipped)
    has_split = has_official_split and bool((table["split"] != "").any())
    return LoadResult(spec=spec, kind=kind, name=name, root=root, table=table, records_read=records_read,
                      skipped=dict(skips.skipped), examples={k: list(v) for k, v in skips.examples.items()},
                      has_official_split=has_split, notes=list(skips.notes))


def existing(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found")
    return path


def index_file(path: Path, root: Path, what: str, allow_outside_root: bool) -> Path:
    """An existing index file of the dataset in `root`; ValueError when it resolves (symlink) outside `root`."""
    existing(path, what)
    if not allow_outside_root and not is_inside(path, root):
        raise ValueError(f"{path}: the {what} resolves outside the dataset folder {root}; pass "
                         "--allow-outside-root (allow_outside_root=True) to read it")
    return path
