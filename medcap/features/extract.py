"""Extract (or reuse) a dataset's feature store: `ensure_features`.

The images go through `medcap.features.image_pipeline` (tf.data, one backbone call per batch, a writer
thread) into the one store writer in its resumable mode (`medcap.features.writer.write_store` with the
store's fingerprint): after each batch the rows are on disk and `progress.json` says so, and a restarted
extraction with the same fingerprint continues at the first undone row. At the end unreadable images are
dropped from the arrays, `ids.json` and `meta.json` are written (meta last: it marks completion) and the
work files are gone. The store folder's `FolderLock` (waiting) keeps two processes from extracting one store.

Row order is the dataset's image ids sorted, so it does not depend on the loader's order.
Every readable image of `result.table` is extracted, whatever its caption.

Sharding (`shard=(I, N)`): the worker extracts rows [I*M//N, (I+1)*M//N) of that order into its
own store `<name>-shard<I>of<N>` (same fingerprint as the whole dataset, resumable the same way,
`meta["shard"]` says which rows); `medcap.features.merge` joins the N shards into the unsharded store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import tensorflow as tf

from medcap.base import paths
from medcap.base.locks import FolderLock
from medcap.data.records import LoadResult
from medcap.features.augment import AugmentSettings
from medcap.features.backbones import Backbone, get_backbone
from medcap.features.image_pipeline import run_extraction
from medcap.features.shard import shard_bounds
from medcap.features.store import STORE_FORMAT, FeatureStore, fingerprint, is_complete, open_store, store_folder_name
from medcap.features.writer import write_store

log = logging.getLogger(__name__)


def candidates(result: LoadResult) -> list[tuple[str, str]]:
    """(image_id, image_path) of every table row, sorted by image id (duplicates keep the first)."""
    seen: dict[str, str] = {}
    for image_id, image_path in zip(result.table["image_id"], result.table["image_path"], strict=True):
        seen.setdefault(str(image_id), str(image_path))
    return sorted(seen.items())


def store_dir(result: LoadResult, backbone: str, fp: str, shard: tuple[int, int] | None = None) -> Path:
    """Folder of the store for this dataset, backbone and fingerprint (and shard (I, N) when given)."""
    return paths.features_dir() / store_folder_name(result.name, backbone, fp, shard)


def _array_shapes(bb: Backbone, n: int, k: int) -> dict[str, tuple[int, ...]]:
    shapes = {"global": (n, bb.global_dim), "grid": (n, *bb.grid_shape)}
    if k:
        shapes["aug_global"] = (n, k, bb.global_dim)
        shapes["aug_grid"] = (n, k, *bb.grid_shape)
    return shapes


def _device() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    return f"GPU x{len(gpus)}" if gpus else "CPU"


def ensure_features(
    result: LoadResult,
    backbone: str | Backbone = "vgg16",
    batch_size: int = 32,
    augment: int = 0,
    progress: bool = True,
    *,
    augment_settings: AugmentSettings | None = None,
    precision: str = "float32",
    on_batch: Callable[[int], None] | None = None,
    shard: tuple[int, int] | None = None,
) -> FeatureStore:
    """Extract the dataset's features into a store, or reuse the complete one with the same fingerprint.

    `backbone` is a registry name or a ready `Backbone` (tests inject small ones); `precision`
    ("float32", "bfloat16", "float16") applies to a name and is part of the fingerprint. `on_batch(rows)`
    is called after each batch is handed to the writer (tests use it to simulate an interruption).
    `shard=(I, N)` extracts only shard I of N into its own store (see the module docstring).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if augment < 0:
        raise ValueError(f"augment must be >= 0, got {augment}")
    bb = backbone if isinstance(backbone, Backbone) else get_backbone(backbone, precision)
    settings = augment_settings or AugmentSettings()
    aug_meta = {"k": augment, **settings.to_dict()} if augment else {"k": 0}
    cands = candidates(result)
    if not cands:
        raise ValueError(f"{result.spec}: the dataset has no images to extract")
    facts = bb.describe()
    if facts.get("precision") == "float32":
        del facts["precision"]  # float32 stores keep the fingerprint they had before precision existed
    fp = fingerprint(facts, cands, aug_meta if augment else None)
    folder = store_dir(result, bb.name, fp, shard)
    shard_meta = None
    if shard is not None:
        lo, hi = shard_bounds(len(cands), *shard)
        if lo == hi:
            raise ValueError(f"{result.spec}: shard {shard[0]}/{shard[1]} is empty ({len(cands)} images for "
                             f"{shard[1]} shards); use fewer shards")
        shard_meta = {"index": shard[0], "count": shard[1], "rows": [lo, hi], "n_candidates_total": len(cands)}
        cands = cands[lo:hi]
    if not is_complete(folder):
        folder.mkdir(parents=True, exist_ok=True)
        with FolderLock(folder, wait=True):  # two processes never extract the same store at once
            if not is_complete(folder):  # another process may have finished it while we waited
                _extract_store(result, bb, cands, fp, folder, batch_size, augment, settings, aug_meta, progress,
                               on_batch, shard_meta)
                return open_store(folder)
    log.info("reusing feature store %s", folder)
    store = open_store(folder)
    store.reused = True
    return store


def _extract_store(result: LoadResult, bb: Backbone, cands: list[tuple[str, str]], fp: str, folder: Path,
                   batch_size: int, augment: int, settings: AugmentSettings, aug_meta: dict, progress: bool,
                   on_batch: Callable[[int], None] | None, shard_meta: dict | None = None) -> None:
    """Extract (or resume) into `folder` and finish the store (caller holds the folder lock)."""
    with write_store(folder, _array_shapes(bb, len(cands), augment), resume_fingerprint=fp) as writer:
        start = writer.rows_done
        if start:
            log.info("resuming feature extraction at row %d of %d in %s", start, len(cands), folder)
        else:
            log.info("extracting %d images with %s (%s) into %s", len(cands), bb.name, bb.weights_source, folder)
        seconds = 0.0
        if start < len(cands):
            feature_fn = bb.feature_fn()  # model build is not counted in images/s
            t0 = time.perf_counter()
            run_extraction(bb, feature_fn, cands, writer, start, batch_size, augment, settings, progress, on_batch,
                           where=folder)
            seconds = time.perf_counter() - t0
        skipped = [{"image_id": cands[r][0], "image_path": cands[r][1], "reason": why}
                   for r, why in sorted(writer.failed.items())]
        for item in skipped:
            log.warning("skipped image %s: %s", item["image_id"], item["reason"])
        kept = writer.kept_rows()
        done_now = len(cands) - start
        meta = {
            "format": STORE_FORMAT,
            "complete": True,
            "fingerprint": fp,
            "dataset": {"spec": result.spec, "name": result.name, "kind": result.kind, "root": str(result.root),
                        "loader_skipped": dict(result.skipped)},
            **bb.describe(),
            "dtype": "float16",
            "n_candidates": len(cands),
            "n_images": len(kept),
            "skipped": skipped,
            "augment": aug_meta,
            "extraction": {
                "seconds": round(seconds, 3),
                "images_extracted": done_now,
                "images_per_s": round(done_now / seconds, 3) if seconds > 0 else None,
                "resumed_from_row": start,
                "batch_size": batch_size,
                "device": _device(),
                "finished": datetime.now(UTC).isoformat(timespec="seconds"),
                "versions": {"tensorflow": tf.__version__, "numpy": np.__version__},
            },
        }
        if shard_meta is not None:
            meta["shard"] = shard_meta
        writer.finish([cands[r][0] for r in kept], meta)
    log.info("feature store complete: %d images, %d skipped, %s", meta["n_images"], len(skipped), folder)
