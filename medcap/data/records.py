"""The one table every dataset loader returns, and the result object around it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

# Columns every loader's table has (one row per usable image).
REQUIRED_COLUMNS = ("image_id", "image_path", "caption", "group", "split")


@dataclass
class LoadResult:
    """A loaded dataset: the table plus an honest account of what was read and skipped."""

    spec: str  # as given, e.g. "medpix:../shared/data/medpix-dev"
    kind: str  # loader kind, e.g. "medpix"
    name: str  # short safe name for folders, e.g. "medpix-dev", "synthetic-2000"
    root: Path
    table: pd.DataFrame  # REQUIRED_COLUMNS + optional metadata (modality, plane, boxes, ...)
    records_read: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> first offending names
    has_official_split: bool = False
    notes: list[str] = field(default_factory=list)  # whole-file problems, e.g. "truncated JSON: read 923 ..."

    def __post_init__(self) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in self.table.columns]
        if missing:
            raise ValueError(f"{self.spec}: loader table lacks columns {missing}")
