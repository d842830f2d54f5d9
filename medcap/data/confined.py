"""What the dashboard may read for display: only inside the data roots, and nothing is generated to show it.

Every image the pages show (dataset images, the `image_path` a predictions.csv names, similar cases, the
example bundle's images) goes through `load_image` / `thumbnail`: the path must resolve, symlinks
included, inside a data root (`medcap.data.roots`: `$MEDCAP_DATA` and the artifacts folder) or the read-only
example bundle, the same check the Data page applies to a typed spec. A path outside gets one refusal
whose text never depends on what is on disk. Images are decoded bounded (`medcap.data.bounded`).

A run's dataset, read to show its images (`check_run_dataset`), must pass `roots.check_spec` and, when it
is a generated synthetic set, already be on disk: the dashboard never generates a set while showing a run
(the Data page generates one in a background process).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PIL import Image

from medcap.base import paths
from medcap.data.bounded import DECODE_BUDGET, open_bounded
from medcap.data.images import DISPLAY_MAX_SIDE, is_inside
from medcap.data.loaders import DEFAULT_SYNTHETIC_N, load_records, parse_spec
from medcap.data.roots import DATA_ENV, check_spec, data_roots
from medcap.runs.index import examples_root

log = logging.getLogger(__name__)

IMAGE_REFUSED_TEXT = f"image outside the data folders the dashboard may read ({DATA_ENV})"


class ImageRefusedError(ValueError):
    """An image path outside the display roots. The text never depends on what is on disk."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name}: {IMAGE_REFUSED_TEXT}")


def display_roots() -> list[Path]:
    """The data roots plus the example bundle's folder (when present): where shown images may live."""
    roots = data_roots()
    bundle = examples_root()
    if bundle is not None and bundle.is_dir():
        roots.append(bundle.resolve())
    return roots


def check_image_path(path: str | os.PathLike[str]) -> Path:
    """`path` when it resolves inside a display root; `ImageRefusedError` (naming only the file) otherwise."""
    p = Path(path)
    if not str(path) or not any(is_inside(p, root) for root in display_roots()):
        raise ImageRefusedError(p.name or "image")
    return p


def load_image(path: str | os.PathLike[str], max_side: int = DISPLAY_MAX_SIDE) -> Image.Image:
    """An image inside the display roots as RGB, at most `max_side` px per side; ValueError naming it."""
    return open_bounded(check_image_path(path), max_side, DECODE_BUDGET)


def thumbnail(path: str | os.PathLike[str], size: int = 160) -> Image.Image | None:
    """A small RGB copy (longest side `size`) of an image inside the display roots; None (logged) otherwise."""
    try:
        return load_image(path, size)
    except ValueError as exc:
        log.warning("%s", exc)
        return None


def synthetic_on_disk(n: int, seed: int = 0) -> bool:
    """True once `synthetic:n` is generated under the artifacts folder (looked up; nothing is created)."""
    folder = paths.artifacts_dir() / "datasets" / f"synthetic-{int(n)}-seed{seed}"
    return (folder / "records.jsonl").is_file() and (folder / "meta.json").is_file()


def check_run_dataset(spec: str) -> str:
    """A run's dataset spec, checked before it is read for display: inside the data roots (`check_spec`:
    `DatasetRefusedError` otherwise) and, for a generated `synthetic:N`, already on disk (ValueError
    saying how to generate it otherwise)."""
    spec = check_spec(spec)
    kind, arg = parse_spec(spec)
    if kind == "synthetic" and (not arg or arg.isdigit()):
        n = int(arg) if arg else DEFAULT_SYNTHETIC_N
        if not synthetic_on_disk(n):
            raise ValueError(f"`synthetic:{n}` is not generated yet; generate it on the Data page (or "
                             f"`python -m medcap data --dataset synthetic:{n}`), then come back")
    return spec


def usable_records(spec: str) -> int | None:
    """How many usable records (images with a readable file) a dataset the dashboard may read has: 0 when it
    has none, is refused or cannot be loaded; None for a generated `synthetic[:N]` set, which is never read
    (or generated) to answer: a run launched on it generates it."""
    try:
        kind, arg = parse_spec(check_spec(spec))
        if kind == "synthetic" and (not arg or arg.isdigit()):
            return None
        return len(load_records(spec).table)
    except (ValueError, OSError) as exc:
        log.info("%s: no usable records (%s)", spec, exc)
        return 0


__all__ = ["IMAGE_REFUSED_TEXT", "ImageRefusedError", "check_image_path", "check_run_dataset", "display_roots",
           "load_image", "synthetic_on_disk", "thumbnail", "usable_records"]
