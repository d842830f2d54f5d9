"""The one feature store writer: `write_store`, all-or-nothing or resumable.

    with write_store(folder, {"global": (N, D), "grid": (N, 7, 7, C)}) as w:
        w.write("grid", start, rows)                    # one array's rows
        w.write_rows(start, {"global": g, "grid": r})   # every array's rows [start, start + n)
        w.finish(ids, meta)                             # arrays in place, ids.json, meta.json last

All-or-nothing (the default): the arrays are temporary files renamed into place on success; on an
error nothing of the new store is left behind.

Resumable (`resume_fingerprint=fp`, what feature extraction uses): the arrays are `work_<name>.npy`
memory maps beside `progress.json` ({fingerprint, n_rows, rows_done, failed}). Each `write_rows` flushes
them and then rewrites `progress.json` atomically, so an interrupted writer leaves a consistent partial
state behind, and the next `write_store` on that folder with the same fingerprint and shapes continues
from `w.rows_done` (anything else starts over). Rows reported failed (`write_rows(..., failed=...)`)
are dropped when the store is finished, in either mode; `progress.json` goes once meta.json is written.
No TensorFlow here.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from medcap.base import io
from medcap.features.store import ARRAYS, IDS_FILE, META_FILE, STORE_FORMAT, is_complete

log = logging.getLogger(__name__)

PROGRESS_FILE = "progress.json"
COPY_CHUNK = 512  # rows per chunk when dropping failed rows


class StoreWriter:
    """Fills the float16 arrays of a new store row block by row block (see `write_store`)."""

    def __init__(self, arrays: dict[str, np.ndarray], progress: Path | None = None, fingerprint: str = "") -> None:
        self.arrays = arrays
        self.n_rows = next(iter(arrays.values())).shape[0] if arrays else 0
        self.rows_done = 0  # rows safely written (resumable: on disk and in progress.json)
        self.failed: dict[int, str] = {}  # row -> why it has no features (dropped at the end)
        self.ids: list[str] | None = None
        self.meta: dict | None = None
        self._progress = progress
        self._fingerprint = fingerprint

    def write(self, name: str, start: int, values: np.ndarray) -> None:
        """Put `values` into rows [start, start + len(values)) of array `name`."""
        self.arrays[name][start : start + len(values)] = values

    def write_rows(self, start: int, arrays: dict[str, np.ndarray], failed: dict[int, str] | None = None) -> None:
        """Rows [start, start + n) of every array given, plus the rows among them that failed (row -> reason).

        Resumable: the arrays are flushed, then `progress.json` records the rows as done.
        """
        n = 0
        for name, values in arrays.items():
            self.write(name, start, values)
            n = len(values)
        self.failed.update(failed or {})
        self.rows_done = start + n
        if self._progress is not None:
            for arr in self.arrays.values():
                arr.flush()
            self.commit()

    def commit(self) -> None:
        """Atomically record how many rows are safely on disk (resumable mode)."""
        if self._progress is None:
            return
        state = {"fingerprint": self._fingerprint, "n_rows": self.n_rows, "rows_done": self.rows_done,
                 "failed": {str(r): why for r, why in sorted(self.failed.items())}}
        io.write_json(self._progress, state)

    def kept_rows(self) -> np.ndarray:
        """(n_kept,) int64: the rows that did not fail, in order."""
        keep = np.ones(self.n_rows, dtype=bool)
        keep[list(self.failed)] = False
        return np.flatnonzero(keep)

    def finish(self, ids: list[str], meta: dict) -> None:
        """The ids of the kept rows and the metadata, written once the arrays are in place (meta.json last)."""
        n_rows = {arr.shape[0] for arr in self.arrays.values()}
        if {n - len(self.failed) for n in n_rows} != {len(ids)}:
            dropped = f" less {len(self.failed)} failed" if self.failed else ""
            raise ValueError(f"store writer: {len(ids)} ids for arrays of {sorted(n_rows)} rows{dropped}")
        self.ids = [str(i) for i in ids]
        self.meta = meta


def _check_shapes(shapes: dict[str, tuple[int, ...]]) -> None:
    unknown = sorted(set(shapes) - set(ARRAYS))
    if unknown or "global" not in shapes or "grid" not in shapes:
        raise ValueError(f"store writer: arrays must include global and grid, from {ARRAYS}; got {sorted(shapes)}")


@contextlib.contextmanager
def write_store(folder: Path, shapes: dict[str, tuple[int, ...]],
                resume_fingerprint: str | None = None) -> Iterator[StoreWriter]:
    """Write a complete store: `with write_store(folder, shapes) as w: w.write(...); w.finish(ids, meta)`.

    Arrays (names from ARRAYS, shapes with the row count first) are float16; on success they are put in
    place (failed rows dropped), then `ids.json`, then `meta.json` with `"complete": true` (the completion
    mark). Refuses to overwrite a complete store. `resume_fingerprint`: resumable mode (module docstring).
    """
    folder = Path(folder)
    _check_shapes(shapes)
    if is_complete(folder):
        raise FileExistsError(f"{folder}: already holds a complete feature store")
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if resume_fingerprint is None:
            files = {name: stack.enter_context(io.atomic_path(folder / f"{name}.npy")) for name in shapes}
            writer = StoreWriter({name: _new_array(files[name], shape) for name, shape in shapes.items()})
        else:
            files = {name: folder / f"work_{name}.npy" for name in shapes}
            writer = _resumable_writer(folder, files, shapes, resume_fingerprint)
        try:
            yield writer
            for arr in writer.arrays.values():
                arr.flush()
        finally:
            writer.arrays.clear()  # drop the memory maps before the files are renamed or removed
        if writer.meta is None or writer.ids is None:
            raise ValueError(f"{folder}: store not finished (call finish(ids, meta) inside the with block)")
        if writer.failed:
            kept = writer.kept_rows()
            for file in files.values():
                _keep_rows(file, kept)
        if resume_fingerprint is not None:
            for name, file in files.items():
                os.replace(file, folder / f"{name}.npy")
        # leaving the ExitStack renames the all-or-nothing arrays into place
    io.write_json(folder / IDS_FILE, writer.ids)
    io.write_json(folder / META_FILE, {**writer.meta, "format": STORE_FORMAT, "complete": True})
    (folder / PROGRESS_FILE).unlink(missing_ok=True)


def _new_array(file: Path, shape: tuple[int, ...]) -> np.memmap:
    return np.lib.format.open_memmap(file, mode="w+", dtype=np.float16, shape=shape)


def _resumable_writer(folder: Path, files: dict[str, Path], shapes: dict[str, tuple[int, ...]],
                      fingerprint: str) -> StoreWriter:
    """Reopen an interrupted writer's arrays and progress when they match; else start over (progress at 0)."""
    progress = folder / PROGRESS_FILE
    n_rows = next(iter(shapes.values()))[0]
    state = _read_progress(progress, fingerprint, n_rows)
    arrays = _open_existing(files, shapes) if state is not None else None
    if arrays is None or state is None:
        writer = StoreWriter({name: _new_array(files[name], shape) for name, shape in shapes.items()},
                             progress, fingerprint)
        writer.commit()
        return writer
    writer = StoreWriter(arrays, progress, fingerprint)
    writer.rows_done = int(state["rows_done"])
    writer.failed = {int(r): str(why) for r, why in state.get("failed", {}).items()}
    return writer


def _read_progress(progress: Path, fingerprint: str, n_rows: int) -> dict | None:
    """The saved progress when it belongs to this store (same fingerprint and row count), else None."""
    if not progress.is_file():
        return None
    try:
        state = io.read_json(progress)
    except ValueError as exc:
        log.warning("ignoring unreadable %s (%s): starting over", progress, exc)
        return None
    if state.get("fingerprint") != fingerprint or state.get("n_rows") != n_rows:
        return None
    return state


def _open_existing(files: dict[str, Path], shapes: dict[str, tuple[int, ...]]) -> dict[str, np.memmap] | None:
    """Reopen the work arrays of an interrupted writer; None when absent or not as expected."""
    arrays = {}
    for name, shape in shapes.items():
        try:
            arr = np.lib.format.open_memmap(files[name], mode="r+")
        except (OSError, ValueError) as exc:
            log.warning("cannot resume from %s (%s): starting over", files[name], exc)
            return None
        if arr.shape != shape or arr.dtype != np.float16:
            return None
        arrays[name] = arr
    return arrays


def _keep_rows(file: Path, kept: np.ndarray) -> None:
    """Rewrite the .npy `file` (atomically, by blocks) with only rows `kept` (int64, ascending)."""
    data = np.load(file, mmap_mode="r")
    with io.atomic_path(file) as tmp:
        out = _new_array(tmp, (len(kept), *data.shape[1:]))
        for i in range(0, len(kept), COPY_CHUNK):
            out[i : i + COPY_CHUNK] = data[kept[i : i + COPY_CHUNK]]
        out.flush()
        del out
    del data
