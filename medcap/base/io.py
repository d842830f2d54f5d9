"""Atomic file writes and small safe-I/O helpers: no write ever leaves a half-written file."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed over `path` atomically.

    The temporary name ends with the whole target name (`.tmpXXXX-<name>.weights.h5`), so every
    extension check (Keras wants `.weights.h5`, NumPy `.npz`) sees the real one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp", suffix=f"-{target.name}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp creates 0600; outputs are ordinary readable files
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write bytes atomically (with fsync)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 text atomically."""
    write_bytes(path, text.encode("utf-8"))


def save_weights(model: Any, path: str | os.PathLike[str]) -> None:
    """Atomic `model.save_weights(path)` for a Keras model (`path` must end in `.weights.h5`)."""
    with atomic_path(path) as tmp:
        tmp.unlink()  # Keras/h5py create the file themselves
        model.save_weights(str(tmp))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON atomically (numpy scalars/arrays and Paths are converted)."""
    write_text(path, json.dumps(obj, indent=2, default=_json_default, allow_nan=True) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file; raise ValueError naming the file when it is malformed."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: malformed JSON ({exc.msg} at line {exc.lineno})") from exc


def save_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> None:
    """Write an uncompressed .npz atomically."""
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, max_len: int = 60) -> str:
    """Turn user text into a safe single path component (no separators, no `..`, no leading dot)."""
    name = _SAFE.sub("-", text.strip()).strip("-.")
    name = re.sub(r"\.{2,}", ".", name)
    return name[:max_len] or "unnamed"
