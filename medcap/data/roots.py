"""The data folders the dashboard may read, and the dataset specs a user may type there.

Roots: every folder of `$MEDCAP_DATA` (os.pathsep-separated; default `data/` under the working
directory) plus the artifacts folder (`medcap.base.paths.artifacts_dir()`, where generated sets live).
`check_spec` refuses a spec whose path resolves (symlinks included) outside every root with one
message that is the same whether the path exists or not; `find_datasets` lists what is under the roots.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from medcap.base import paths
from medcap.data.images import is_inside
from medcap.data.loaders import parse_spec

log = logging.getLogger(__name__)

DATA_ENV = "MEDCAP_DATA"
DEFAULT_DATA_DIR = "data"
REFUSED_TEXT = f"this dataset is outside the data folders the dashboard may read ({DATA_ENV})"

_SCAN_DEPTH = 3  # folder levels below a root searched for datasets
_SCAN_MAX_DIRS = 2000  # folders visited per root at most (a root may be huge)
_SKIP_DIRS = {"images", "figures", "runs", "features", "launches", "__pycache__", "node_modules"}


class DatasetRefusedError(ValueError):
    """A dataset spec pointing outside the data roots. The text never depends on what is on disk."""

    def __init__(self) -> None:
        super().__init__(REFUSED_TEXT)


def _root_entries() -> list[tuple[Path, Path]]:
    """(root as configured, resolved root) for every data root, without duplicates."""
    env = os.environ.get(DATA_ENV)
    entries = [e.strip() for e in env.split(os.pathsep) if e.strip()] if env is not None else [DEFAULT_DATA_DIR]
    out: list[tuple[Path, Path]] = []
    for entry in [*entries, str(paths.artifacts_dir())]:
        given = Path(entry).expanduser()
        try:
            root = given.resolve()
        except (RuntimeError, OSError):  # a symlink loop is no root
            log.warning("%s: data root cannot be resolved; ignored", entry)
            continue
        if root not in [r for _, r in out]:
            out.append((given, root))
    return out


def data_roots() -> list[Path]:
    """The resolved data roots: `$MEDCAP_DATA` folders (default `./data`) plus the artifacts folder."""
    return [root for _, root in _root_entries()]


def inside_roots(path: str | os.PathLike[str], roots: Sequence[Path] | None = None) -> bool:
    """True when `path` (relative to the working directory, symlinks resolved) lies inside a root."""
    try:
        target = Path(path).expanduser()
    except RuntimeError:  # "~user" that cannot be expanded
        return False
    return any(is_inside(target, root) for root in (data_roots() if roots is None else roots))


def check_spec(spec: str, roots: Sequence[Path] | None = None) -> str:
    """Validate a user-typed "KIND[:PATH]" spec for the dashboard; returns it stripped.

    `synthetic` / `synthetic:N` (generated under artifacts) always pass. A path that resolves outside
    every root raises `DatasetRefusedError` (identical text whether it exists or not); an unknown kind or a
    missing path raises ValueError from `parse_spec` (it echoes only the typed spec).
    """
    kind, arg = parse_spec(spec)
    if kind == "synthetic" and (not arg or arg.isdigit()):
        return spec.strip()
    if not inside_roots(arg, roots):
        raise DatasetRefusedError()
    return spec.strip()


def _spec_path(path: Path) -> str:
    """`path` (not resolved) relative to the working directory when it lies below it, else as is."""
    if not path.is_absolute():
        return str(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _walk(root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    """(folder, sub-folder names, file names) below `root`, breadth-limited; symlinked sub-folders are
    followed only when they stay inside the root."""
    for visited, (folder, dirs, files) in enumerate(os.walk(root, followlinks=True), start=1):
        here = Path(folder)
        depth = len(here.relative_to(root).parts)  # os.walk spells folders through `root` as given
        if visited > _SCAN_MAX_DIRS:
            log.info("%s: stopped looking for datasets after %d folders", root, _SCAN_MAX_DIRS)
            return
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS
                         and depth < _SCAN_DEPTH and is_inside(here / d, root))
        yield here, dirs, files


def _detect(folder: Path, dirs: list[str], files: list[str]) -> list[str]:
    """Dataset specs for one folder, detected by layout."""
    names = set(files)
    where = _spec_path(folder)
    subdirs = set(dirs) | {d for d in ("images", "figures") if (folder / d).is_dir()}
    found: list[str] = []
    if "Descriptions.json" in names:
        found.append(f"medpix:{where}")
    if "annotation.json" in names and "images" in subdirs:
        found.append(f"iuxray:{where}")
    if "records.jsonl" in names:
        found.append(f"synthetic:{where}")
    elif "figures" in subdirs and any(n.endswith(".jsonl") for n in names):
        found.append(f"medicat:{where}")
    base = folder / "data" if (folder / "data").is_dir() else folder
    if any((base / s / "radiology" / "captions.txt").is_file() for s in ("train", "validation", "test")):
        found.append(f"roco:{where}")
    for name in sorted(n for n in names if n.lower().endswith(".csv")):
        if _is_caption_csv(folder / name):
            found.append(f"csv:{_spec_path(folder / name)}")
    return found


def _is_caption_csv(path: Path) -> bool:
    """True when the CSV's header names image_path and caption columns."""
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            header = fh.readline(4096)
    except OSError:
        return False
    columns = {c.strip().strip('"') for c in header.strip().split(",")}
    return {"image_path", "caption"} <= columns


def _generated_size(name: str) -> str | None:
    """"2000" for a generated synthetic set folder named `synthetic-2000-...`, else None."""
    parts = name.split("-")
    return parts[1] if name.startswith("synthetic-") and len(parts) >= 2 and parts[1].isdigit() else None


def find_datasets(roots: Sequence[Path] | None = None) -> list[str]:
    """Dataset specs found under the roots by layout (medpix, medicat, iuxray, roco, csv, synthetic
    folders), without duplicates, in root order. Under the artifacts folder only `datasets/` is searched
    and a generated set `datasets/synthetic-N-...` is offered as `synthetic:N`. Paths are spelled
    through the root as configured (e.g. `data/medpix-dev`), relative to the working directory.

    Every spec returned passes `check_spec` with the same roots.
    """
    entries = _root_entries() if roots is None else [(Path(r), Path(r).resolve()) for r in roots]
    artifacts = paths.artifacts_dir().resolve()
    specs: list[str] = []
    for given, root in entries:
        top = given / "datasets" if root == artifacts else given
        if not top.is_dir():
            continue
        for folder, dirs, files in _walk(top):
            if root == artifacts and folder == top:
                sizes = [n for n in map(_generated_size, dirs) if n]
                specs += [f"synthetic:{n}" for n in sizes]
                dirs[:] = [d for d in dirs if _generated_size(d) is None]
            found = _detect(folder, dirs, files)
            if any(not spec.startswith("csv:") for spec in found):
                dirs[:] = []  # a dataset folder's sub-folders are its own (images, splits, ...)
            specs += found
    return list(dict.fromkeys(specs))


__all__ = ["DATA_ENV", "REFUSED_TEXT", "DatasetRefusedError", "check_spec", "data_roots", "find_datasets",
           "inside_roots"]
