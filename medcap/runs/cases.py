"""The example bundle's similar-cases index: what its runs' similar cases search, without a feature store.

The bundle (`examples/demo/`) ships neither the feature store nor the dataset its runs were trained on, so
the training images a similar-cases panel shows come from `cases/` beside its runs:

- `cases/index.csv`: `image_id`, `caption` (the reference caption under the runs' caption rules), `thumb`
  (a JPEG under `cases/thumbs/`, longest side `THUMB_SIDE` px; empty for an image that is only ever a query);
- `cases/features.npz`: `image_ids` (N,) and `global` (N, D) float16, the raw global store features of every
  training image of either run and of every test image (the queries), in the index's order.

`medcap.runs.bundle.export_cases` writes it; `read_cases` reads it back (float32 features). No TensorFlow.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

CASES = "cases"
INDEX = "index.csv"
FEATURES = "features.npz"
THUMBS = "thumbs"
THUMB_SIDE = 80
THUMB_QUALITY = 75
INDEX_COLUMNS = ["image_id", "caption", "thumb"]


@dataclass
class BundleCases:
    """The bundle's cases: ids, global features (N, D) float32, captions and thumbnail paths ('' when none)."""

    ids: list[str]
    feats: np.ndarray  # (N, D) float32
    captions: list[str]
    paths: list[str]

    def rows(self, image_ids: list[str]) -> np.ndarray:
        """Row of each id (int64 (Q,)); KeyError naming the first id the index does not hold."""
        where = {i: n for n, i in enumerate(self.ids)}
        missing = [i for i in image_ids if i not in where]
        if missing:
            raise KeyError(f"{CASES}/{FEATURES}: no features for {missing[0]}")
        return np.asarray([where[i] for i in image_ids], dtype=np.int64)


def jpeg_bytes(source: Path, max_side: int, quality: int) -> bytes:
    """An image re-encoded as 8-bit grayscale JPEG, longest side at most `max_side` px (deterministic)."""
    with Image.open(source) as im:
        img = im.convert("L")
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def bundle_of(run_dir: Path) -> Path | None:
    """The bundle folder holding an example run (`<bundle>/runs/<id>`) when it has a manifest and a cases
    index, else None."""
    root = Path(run_dir).parent.parent
    return root if (root / "manifest.json").is_file() and (root / CASES / INDEX).is_file() else None


def read_cases(bundle: Path) -> BundleCases:
    """The bundle's cases index; ValueError naming the file when it is malformed or disagrees with itself."""
    index_path, feats_path = bundle / CASES / INDEX, bundle / CASES / FEATURES
    where = f"{CASES}/{INDEX}"  # relative: no machine path on a page
    try:
        table = pd.read_csv(index_path, keep_default_na=False, dtype=str)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{where}: unreadable ({exc})") from exc
    if list(table.columns) != INDEX_COLUMNS:
        raise ValueError(f"{where}: columns {list(table.columns)}, expected {INDEX_COLUMNS}")
    try:
        with np.load(feats_path, allow_pickle=False) as npz:
            ids, feats = [str(i) for i in npz["image_ids"]], np.asarray(npz["global"], dtype=np.float32)  # (N, D)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{CASES}/{FEATURES}: unreadable ({exc})") from exc
    if ids != list(table["image_id"]) or feats.ndim != 2 or len(feats) != len(ids):
        raise ValueError(f"{CASES}/{FEATURES}: its image ids or shape {feats.shape} do not match {where}")
    bad = [t for t in table["thumb"] if t and (Path(t).name != t or t.startswith("."))]
    if bad:
        raise ValueError(f"{where}: thumbnail {bad[0]!r} is not a plain file name")
    thumbs = bundle / CASES / THUMBS
    paths = [str(thumbs / t) if t else "" for t in table["thumb"]]
    return BundleCases(ids=ids, feats=feats, captions=list(table["caption"]), paths=paths)
