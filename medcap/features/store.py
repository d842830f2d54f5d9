"""The feature store on disk: ids, float16 global/grid arrays (memory-mapped), metadata; fingerprints.

Layout of a complete store folder `<features_dir>/<dataset>-<backbone>-<fingerprint[:12]>/`:
- `ids.json`: image ids in row order.
- `global.npy` (N, D) float16, `grid.npy` (N, 7, 7, C) float16 (C = 512 for VGG16).
- `aug_global.npy` (N, K, D), `aug_grid.npy` (N, K, 7, 7, C) when extracted with augment K > 0.
- `meta.json`: written last; its presence with `"complete": true` marks a finished store.
While extracting, `progress.json` and `work_*.npy` hold the partial state (the resumable mode of
`medcap.features.writer.write_store`, the one store writer).
No TensorFlow here: the dashboard and the trainer can open stores cheaply.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from medcap.base import io

STORE_FORMAT = 1
ARRAYS = ("global", "grid", "aug_global", "aug_grid")  # the arrays a store may hold
META_FILE = "meta.json"
IDS_FILE = "ids.json"


def store_folder_name(dataset_name: str, backbone: str, fp: str, shard: tuple[int, int] | None = None) -> str:
    """Folder name of a store: `<dataset>-<backbone>-<fp[:12]>`, plus `-shard<I>of<N>` for a shard."""
    name = io.safe_name(f"{dataset_name}-{backbone}-{fp[:12]}", max_len=120)
    return f"{name}-shard{shard[0]}of{shard[1]}" if shard else name


def image_signature(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(size, mtime_ns) of a file, (-1, -1) when it is missing: a changed file changes the fingerprint."""
    try:
        stat = os.stat(path)
    except OSError:
        return (-1, -1)
    return (stat.st_size, stat.st_mtime_ns)


def fingerprint(backbone: dict, images: list[tuple[str, str]], augment: dict | None) -> str:
    """Hex sha256 of backbone facts (incl. weights checksum), every (image_id, size, mtime_ns), augmentation."""
    digest = hashlib.sha256()
    head = {"format": STORE_FORMAT, "backbone": backbone, "augment": augment}
    digest.update(json.dumps(head, sort_keys=True).encode("utf-8"))
    for image_id, path in sorted(images):
        size, mtime = image_signature(path)
        digest.update(f"\n{image_id}\t{size}\t{mtime}".encode())
    return digest.hexdigest()


class FeatureStore:
    """Read access to a complete feature store (arrays are float16 memory maps)."""

    def __init__(self, path: Path, ids: list[str], meta: dict) -> None:
        self.path = Path(path)
        self.ids = ids
        self.meta = meta
        self.global_dim = int(meta["global_dim"])
        self.reused = False  # set by ensure_features: True when no extraction was needed
        self._index = {image_id: row for row, image_id in enumerate(ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"FeatureStore({self.path}, n={len(self.ids)}, global_dim={self.global_dim})"

    def index_of(self, image_id: str) -> int:
        """Row of an image id; KeyError naming the id and the store when absent."""
        try:
            return self._index[image_id]
        except KeyError:
            raise KeyError(f"image id {image_id!r} is not in feature store {self.path}") from None

    def array(self, name: str) -> np.ndarray | None:
        """Array `name` (one of ARRAYS) as a float16 memmap, None when the store has none."""
        return self._array(name)

    def _array(self, name: str) -> np.ndarray | None:
        file = self.path / f"{name}.npy"
        if not file.is_file():
            return None
        return np.load(file, mmap_mode="r")

    def global_feats(self) -> np.ndarray:
        """(N, D) float16 memmap."""
        arr = self._array("global")
        if arr is None:
            raise FileNotFoundError(f"{self.path}: global.npy missing")
        return arr

    def grid(self) -> np.ndarray:
        """(N, 7, 7, C) float16 memmap."""
        arr = self._array("grid")
        if arr is None:
            raise FileNotFoundError(f"{self.path}: grid.npy missing")
        return arr

    def gather(self, ids: list[str], with_grid: bool = True) -> tuple[list[str], np.ndarray, np.ndarray | None]:
        """Features of the ids present in the store, in the given order, as float32.

        Returns (ids kept, global (N, D), grid (N, 7, 7, C) or None without `with_grid`); ids without
        features are left out. The memmaps are read in row order.
        """
        kept: list[str] = []
        rows_list: list[int] = []
        for image_id in ids:
            try:
                rows_list.append(self.index_of(image_id))
            except KeyError:
                continue
            kept.append(image_id)
        rows = np.asarray(rows_list, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        g = np.empty((len(rows), self.global_dim), dtype=np.float32)  # (N, D)
        g[order] = np.asarray(self.global_feats()[rows[order]], dtype=np.float32)
        if not with_grid:
            return kept, g, None
        grid = self.grid()
        r = np.empty((len(rows), *grid.shape[1:]), dtype=np.float32)  # (N, 7, 7, C)
        r[order] = np.asarray(grid[rows[order]], dtype=np.float32)
        return kept, g, r

    def aug_global(self) -> np.ndarray | None:
        """(N, K, D) float16 memmap when the store has K > 0 augmented views, else None."""
        return self._array("aug_global") if self.augment_k else None

    def aug_grid(self) -> np.ndarray | None:
        """(N, K, 7, 7, C) float16 memmap when the store has augmented views, else None."""
        return self._array("aug_grid") if self.augment_k else None

    @property
    def augment_k(self) -> int:
        """Number of augmented views per image (0 when none)."""
        return int((self.meta.get("augment") or {}).get("k", 0))

    @property
    def skipped(self) -> list[dict]:
        """Images that could not be used: [{"image_id", "image_path", "reason"}]."""
        return list(self.meta.get("skipped", []))


def is_complete(path: Path) -> bool:
    """True when `path` holds a finished store (meta.json marked complete)."""
    meta_file = Path(path) / META_FILE
    if not meta_file.is_file():
        return False
    try:
        return bool(io.read_json(meta_file).get("complete"))
    except ValueError:
        return False


def open_store(path: Path) -> FeatureStore:
    """Open a complete store folder; clear error naming the folder when it is missing or unfinished."""
    folder = Path(path)
    meta_file = folder / META_FILE
    if not meta_file.is_file():
        raise FileNotFoundError(f"{folder}: not a finished feature store (no {META_FILE})")
    meta = io.read_json(meta_file)
    if not meta.get("complete"):
        raise ValueError(f"{folder}: feature store is incomplete (extraction not finished)")
    ids = io.read_json(folder / IDS_FILE)
    store = FeatureStore(folder, [str(i) for i in ids], meta)
    n_rows = store.global_feats().shape[0]
    if n_rows != len(ids):
        raise ValueError(f"{folder}: {IDS_FILE} has {len(ids)} ids but global.npy has {n_rows} rows")
    return store
