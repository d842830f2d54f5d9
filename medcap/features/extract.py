"""Extract (or reuse) a dataset's feature store: tf.data pipeline, writer thread, resume.

Pipeline: row numbers -> parallel read/decode/resize (PIL inside `tf.numpy_function`, AUTOTUNE)
-> batch -> prefetch -> one compiled backbone call per batch -> a writer thread puts rows into
`work_*.npy` memory maps, flushes them, then atomically rewrites `progress.json` (rows done,
failures so far). A restarted extraction with the same fingerprint continues at the first undone
row. At the end, unreadable images are dropped from the arrays, `ids.json` and `meta.json` are
written (meta last: it marks completion) and the work files are removed.

Row order is the dataset's image ids sorted, so it does not depend on the loader's order.
Every readable image of `result.table` is extracted, whatever its caption.

Sharding (`shard=(I, N)`): the worker extracts rows [I*M//N, (I+1)*M//N) of that order into its
own store `<name>-shard<I>of<N>` (same fingerprint as the whole dataset, resumable the same way,
`meta["shard"]` says which rows); `medcap.features.merge` joins the N shards into the unsharded store.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from medcap.base import io, paths
from medcap.base.locks import FolderLock
from medcap.data.records import LoadResult
from medcap.features import imageload
from medcap.features.augment import AugmentSettings, augmented_views
from medcap.features.backbones import Backbone, FeatureFn, get_backbone
from medcap.features.shard import shard_bounds
from medcap.features.store import (
    IDS_FILE,
    META_FILE,
    STORE_FORMAT,
    FeatureStore,
    fingerprint,
    is_complete,
    open_store,
    store_folder_name,
)

log = logging.getLogger(__name__)

PROGRESS_FILE = "progress.json"
COPY_CHUNK = 512  # rows per chunk when compacting arrays


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


class _Work:
    """Partial state of an extraction: work memmaps plus the progress file."""

    def __init__(self, folder: Path, fp: str, shapes: dict[str, tuple[int, ...]]) -> None:
        self.folder = folder
        self.fp = fp
        self.n_rows = next(iter(shapes.values()))[0]
        self.rows_done = 0
        self.failed: dict[int, str] = {}
        folder.mkdir(parents=True, exist_ok=True)
        state = self._read(folder / PROGRESS_FILE)
        arrays = self._open_existing(shapes) if state is not None else None
        if arrays is not None and state is not None:
            self.arrays = arrays
            self.rows_done = int(state["rows_done"])
            self.failed = {int(r): str(why) for r, why in state.get("failed", {}).items()}
        else:
            self.arrays = {
                name: np.lib.format.open_memmap(folder / f"work_{name}.npy", mode="w+", dtype=np.float16, shape=shape)
                for name, shape in shapes.items()
            }
            self.commit()

    def _open_existing(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.memmap] | None:
        """Reopen the work arrays of an interrupted extraction; None when absent or not as expected."""
        arrays = {}
        for name, shape in shapes.items():
            file = self.folder / f"work_{name}.npy"
            try:
                arr = np.lib.format.open_memmap(file, mode="r+")
            except (OSError, ValueError) as exc:
                log.warning("cannot resume from %s (%s): starting over", file, exc)
                return None
            if arr.shape != shape or arr.dtype != np.float16:
                return None
            arrays[name] = arr
        return arrays

    def _read(self, progress: Path) -> dict | None:
        if not progress.is_file():
            return None
        try:
            state = io.read_json(progress)
        except ValueError as exc:
            log.warning("ignoring unreadable %s (%s): starting over", progress, exc)
            return None
        if state.get("fingerprint") != self.fp or state.get("n_rows") != self.n_rows:
            return None
        return state

    def write(self, start: int, arrays: dict[str, np.ndarray], failed: dict[int, str]) -> None:
        """Write rows [start, start + n) and commit them (flush, then progress.json atomically)."""
        n = 0
        for name, values in arrays.items():
            self.arrays[name][start : start + len(values)] = values
            n = len(values)
        self.failed.update(failed)
        for arr in self.arrays.values():
            arr.flush()
        self.rows_done = start + n
        self.commit()

    def commit(self) -> None:
        """Atomically record how many rows are safely on disk."""
        state = {"fingerprint": self.fp, "n_rows": self.n_rows, "rows_done": self.rows_done,
                 "failed": {str(r): why for r, why in sorted(self.failed.items())}}
        io.write_json(self.folder / PROGRESS_FILE, state)

    def close(self) -> None:
        """Drop the memory maps (flushing them)."""
        for arr in self.arrays.values():
            arr.flush()
        self.arrays = {}


class _Writer(threading.Thread):
    """Writes finished batches off the inference path; remembers the first error."""

    def __init__(self, work: _Work) -> None:
        super().__init__(name="medcap-feature-writer", daemon=True)
        self.work = work
        self.jobs: queue.Queue = queue.Queue(maxsize=4)
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            if self.error is None:
                try:
                    self.work.write(*job)
                except BaseException as exc:  # reported to the main thread
                    self.error = exc

    def put(self, job: tuple) -> None:
        if self.error is not None:
            raise RuntimeError(f"feature writer failed: {self.error}") from self.error
        self.jobs.put(job)

    def finish(self) -> None:
        """Write everything queued, then stop."""
        self.jobs.put(None)
        self.join()


def make_image_dataset(cands: list[tuple[str, str]], start: int, size: int, batch_size: int, k: int,
                       settings: AugmentSettings) -> tf.data.Dataset:
    """Batches of (rows (B,), images (B, 1+K, S, S, 3) uint8, ok (B,) bool, reason (B,) string)."""
    views = 1 + k

    def load(row: np.int64) -> tuple[np.ndarray, np.bool_, bytes]:
        image_id, path = cands[int(row)]
        try:
            img = imageload.open_rgb(path)
            stack = [imageload.resize_array(img, size)]
            stack += [imageload.resize_array(v, size) for v in augmented_views(img, image_id, k, settings)]
            return np.stack(stack), np.bool_(True), b""  # (1+K, S, S, 3)
        except Exception as exc:  # one bad image never stops the batch
            reason = str(exc) if isinstance(exc, imageload.ImageDecodeError) else f"{path}: {type(exc).__name__}: {exc}"
            return np.zeros((views, size, size, 3), np.uint8), np.bool_(False), reason.encode("utf-8")

    def load_tf(row: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        images, ok, reason = tf.numpy_function(load, [row], [tf.uint8, tf.bool, tf.string], stateful=False)
        images.set_shape([views, size, size, 3])  # (1+K, S, S, 3)
        ok.set_shape([])
        reason.set_shape([])
        return row, images, ok, reason

    rows = tf.data.Dataset.range(start, len(cands))
    ds = rows.map(load_tf, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _device() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    return f"GPU x{len(gpus)}" if gpus else "CPU"


def _finalize(folder: Path, work_shapes: dict[str, tuple[int, ...]], keep: np.ndarray) -> None:
    """Turn work_*.npy into the final arrays, dropping failed rows (idempotent after a crash)."""
    all_kept = bool(keep.all())
    kept_rows = np.flatnonzero(keep)
    for name, shape in work_shapes.items():
        src = folder / f"work_{name}.npy"
        dst = folder / f"{name}.npy"
        if not src.is_file():
            if dst.is_file():
                continue
            raise FileNotFoundError(f"{folder}: {src.name} and {dst.name} both missing")
        if all_kept:
            os.replace(src, dst)
            continue
        data = np.load(src, mmap_mode="r")
        with io.atomic_path(dst) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(len(kept_rows), *shape[1:]))
            for i in range(0, len(kept_rows), COPY_CHUNK):
                out[i : i + COPY_CHUNK] = data[kept_rows[i : i + COPY_CHUNK]]
            out.flush()
            del out
        del data
        src.unlink()


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
    shapes = _array_shapes(bb, len(cands), augment)
    work = _Work(folder, fp, shapes)
    start = work.rows_done
    if start:
        log.info("resuming feature extraction at row %d of %d in %s", start, len(cands), folder)
    else:
        log.info("extracting %d images with %s (%s) into %s", len(cands), bb.name, bb.weights_source, folder)

    seconds = 0.0
    if start < len(cands):
        feature_fn = bb.feature_fn()  # model build is not counted in images/s
        t0 = time.perf_counter()
        _run_extraction(bb, feature_fn, cands, work, start, batch_size, augment, settings, progress, on_batch)
        seconds = time.perf_counter() - t0
    work.close()

    keep = np.ones(len(cands), dtype=bool)
    for row in work.failed:
        keep[row] = False
    _finalize(folder, shapes, keep)
    skipped = [{"image_id": cands[r][0], "image_path": cands[r][1], "reason": why}
               for r, why in sorted(work.failed.items())]
    for item in skipped:
        log.warning("skipped image %s: %s", item["image_id"], item["reason"])
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
        "n_images": int(keep.sum()),
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
    io.write_json(folder / IDS_FILE, [cands[r][0] for r in np.flatnonzero(keep)])
    io.write_json(folder / META_FILE, meta)
    (folder / PROGRESS_FILE).unlink(missing_ok=True)
    log.info("feature store complete: %d images, %d skipped, %s", meta["n_images"], len(skipped), folder)


def _run_extraction(bb: Backbone, feature_fn: FeatureFn, cands: list[tuple[str, str]], work: _Work, start: int,
                    batch_size: int, k: int, settings: AugmentSettings, progress: bool,
                    on_batch: Callable[[int], None] | None) -> None:
    """Run the pipeline from row `start`, handing batches to the writer thread."""
    size = bb.input_size
    ds = make_image_dataset(cands, start, size, batch_size, k, settings)
    writer = _Writer(work)
    writer.start()
    bar = tqdm(total=len(cands), initial=start, unit="img", desc=f"features {bb.name}", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    try:
        for rows, images, ok, reasons in ds:
            n = int(rows.shape[0])
            flat = tf.reshape(images, [-1, size, size, 3])  # (B*(1+K), S, S, 3)
            glob, grid = feature_fn(flat)  # (B*(1+K), D), (B*(1+K), 7, 7, C)
            glob = glob.numpy().astype(np.float16).reshape(n, 1 + k, -1)  # (B, 1+K, D)
            grid = grid.numpy().astype(np.float16).reshape(n, 1 + k, *bb.grid_shape)  # (B, 1+K, 7, 7, C)
            arrays = {"global": glob[:, 0], "grid": grid[:, 0]}
            if k:
                arrays["aug_global"] = glob[:, 1:]
                arrays["aug_grid"] = grid[:, 1:]
            ok_np, why = ok.numpy(), reasons.numpy()
            first = int(rows[0])
            failed = {first + i: why[i].decode("utf-8") for i in range(n) if not ok_np[i]}
            writer.put((first, arrays, failed))
            bar.update(n)
            if on_batch is not None:
                on_batch(first + n)
    finally:
        bar.close()
        writer.finish()
    if writer.error is not None:
        raise RuntimeError(f"feature writer failed in {work.folder}: {writer.error}") from writer.error
