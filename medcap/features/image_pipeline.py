"""Feature extraction's pipeline: rows -> images -> backbone -> the store writer, on a writer thread.

Row numbers -> parallel read/decode/resize (PIL inside `tf.numpy_function`, AUTOTUNE) -> batch ->
prefetch -> one compiled backbone call per batch -> a writer thread hands each batch to the store
writer (`medcap.features.writer.StoreWriter.write_rows`: rows, then the batch's unreadable images),
so writing never holds up the backbone. One bad image never stops a batch: it is listed as failed.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from medcap.features import imageload
from medcap.features.augment import AugmentSettings, augmented_views
from medcap.features.backbones import Backbone, FeatureFn
from medcap.features.writer import StoreWriter


class _WriterThread(threading.Thread):
    """Writes finished batches off the inference path; remembers the first error."""

    def __init__(self, writer: StoreWriter) -> None:
        super().__init__(name="medcap-feature-writer", daemon=True)
        self.writer = writer
        self.jobs: queue.Queue = queue.Queue(maxsize=4)
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            if self.error is None:
                try:
                    self.writer.write_rows(*job)
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


def run_extraction(bb: Backbone, feature_fn: FeatureFn, cands: list[tuple[str, str]], writer: StoreWriter,
                   start: int, batch_size: int, k: int, settings: AugmentSettings, progress: bool,
                   on_batch: Callable[[int], None] | None, where: str | Path = "") -> None:
    """Run the pipeline from row `start`, handing batches to the writer thread (`where` names the store)."""
    size = bb.input_size
    ds = make_image_dataset(cands, start, size, batch_size, k, settings)
    thread = _WriterThread(writer)
    thread.start()
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
            thread.put((first, arrays, failed))
            bar.update(n)
            if on_batch is not None:
                on_batch(first + n)
    finally:
        bar.close()
        thread.finish()
    if thread.error is not None:
        raise RuntimeError(f"feature writer failed in {where}: {thread.error}") from thread.error
