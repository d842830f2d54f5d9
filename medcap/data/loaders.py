"""Dataset loaders: every layout becomes one table with one row per usable image (see records.py).

`load_records("KIND[:PATH]")`, kinds: synthetic, medpix, roco, medicat, iuxray, csv. A bad record
(missing/corrupt image, malformed line, bad encoding, ...) is skipped and counted by reason; a
ValueError is raised only when nothing usable is left. Image paths that resolve (symlinks included)
outside the dataset's folder are skipped as "outside_root" unless the caller passes
`allow_outside_root=True` (CLI: `--allow-outside-root`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from medcap.base.io import safe_name
from medcap.data.images import IMAGE_EXTENSIONS, index_images
from medcap.data.loader_base import existing, finish, index_file, record_row, split_name, text_of
from medcap.data.medpix_labels import medpix_labels
from medcap.data.paper_sets import load_iuxray, load_medicat, load_roco
from medcap.data.readers import (
    SkipLog,
    iter_csv,
    iter_jsonl,
    load_json_array,
)
from medcap.data.records import LoadResult

log = logging.getLogger(__name__)

DEFAULT_SYNTHETIC_N = 2000
KINDS = ("synthetic", "medpix", "roco", "medicat", "iuxray", "csv")

# ---------------------------------------------------------------- synthetic


def load_synthetic_folder(path: str | Path, spec: str | None = None, name: str | None = None,
                          allow_outside_root: bool = False) -> LoadResult:
    """Read a synthetic-set folder: `records.jsonl` lines {image_id, file, caption, group, modality,
    plane, boxes}; `file` is relative to the folder; `boxes` becomes a JSON string column."""
    root = existing(Path(path).resolve(), "synthetic dataset folder")
    skips = SkipLog()
    rows: list[dict] = []
    index = root / "records.jsonl"
    index_file(index, root, "synthetic records file", allow_outside_root)
    for lineno, rec in iter_jsonl(index, skips):
        if not rec.get("image_id") or not rec.get("file"):
            skips.add("missing_field", f"{index.name}:{lineno}", "needs image_id and file")
            continue
        meta = {k: text_of(rec.get(k)) for k in ("modality", "plane") if k in rec}
        meta["boxes"] = json.dumps(rec.get("boxes") or [])
        rows.append(record_row(rec["image_id"], root / str(rec["file"]), rec.get("caption"), rec.get("group"),
                         split_name(rec.get("split")), **meta))
    return finish(spec or f"synthetic:{root}", "synthetic", name or safe_name(root.name), root, rows, skips,
                   has_official_split=any(r["split"] for r in rows), allow_outside_root=allow_outside_root)


def _load_synthetic(spec: str, arg: str, allow_outside_root: bool = False) -> LoadResult:
    if arg and not arg.isdigit():
        return load_synthetic_folder(arg, spec=spec, allow_outside_root=allow_outside_root)
    n = int(arg) if arg else DEFAULT_SYNTHETIC_N
    if n < 1:
        raise ValueError(f"{spec}: synthetic size must be >= 1")
    from medcap.data.synthetic import ensure_synthetic  # lazy: only this kind needs the generator

    folder = ensure_synthetic(n=n)
    return load_synthetic_folder(folder, spec=spec, name=f"synthetic-{n}")


# ---------------------------------------------------------------- medpix


def _medpix_splits(root: Path) -> dict[str, str]:
    """image stem -> "train"/"val"/"test" from splitted_dataset/descriptions_{train,dev,test}.jsonl."""
    out: dict[str, str] = {}
    folder = root / "splitted_dataset"
    split_skips = SkipLog()  # problems in split files are logged, not counted as dataset records
    for file_split, split in (("train", "train"), ("dev", "val"), ("val", "val"), ("test", "test")):
        path = folder / f"descriptions_{file_split}.jsonl"
        if path.is_file():
            for _, rec in iter_jsonl(path, split_skips):
                if rec.get("image"):
                    out[str(rec["image"])] = split
    return out


def load_medpix(root: Path, spec: str, allow_outside_root: bool = False) -> LoadResult:
    """MedPix 2.0: Descriptions.json + images/<stem>.<any ext> + optional splitted_dataset/*.jsonl."""
    root = existing(root, "MedPix folder")
    index = index_file(root / "Descriptions.json", root, "MedPix Descriptions.json", allow_outside_root)
    skips = SkipLog()
    records = load_json_array(index, skips)
    images = index_images(root / "images")
    splits = _medpix_splits(root)
    rows: list[dict] = []
    for lineno, rec in records:
        stem = text_of(rec.get("image")).strip()
        if not stem:
            skips.add("missing_field", f"{index.name}: record at {lineno}", "no 'image' stem")
            continue
        desc = rec.get("Description") if isinstance(rec.get("Description"), dict) else {}
        path = images.get(stem, root / "images" / stem)
        rows.append(record_row(stem, path, desc.get("Caption"), rec.get("U_id"), splits.get(stem, ""),
                         **medpix_labels(rec)))  # modality, plane, location_category, location, ...
    if skips.notes and splits:  # a truncated index: the split files say how many records to expect
        lost = len(set(splits) - {r["image_id"] for r in rows})
        skips.note(f"{index.name}: the split files list {len(splits)} images; {lost} of them have no record "
                   f"in {index.name}")
    return finish(spec, "medpix", safe_name(root.name), root, rows, skips, bool(splits), allow_outside_root)


# ---------------------------------------------------------------- csv

_CSV_CORE = ("image_id", "image_path", "caption", "group", "split")


def load_csv(path: Path, spec: str, allow_outside_root: bool = False) -> LoadResult:
    """CSV with image_path (relative to the CSV), caption, optional group/split/image_id + metadata columns."""
    path = existing(path, "CSV file")
    if path.is_dir():
        raise ValueError(f"{path}: csv: expects a .csv file, got a folder")
    skips = SkipLog()
    rows: list[dict] = []
    has_split = False
    for lineno, rec in iter_csv(path, skips, required=("image_path", "caption")):
        rel = rec["image_path"].strip()
        if not rel:
            skips.add("missing_field", f"{path.name}:{lineno}", "empty image_path")
            continue
        split = split_name(rec.get("split"))
        has_split = has_split or bool(split)
        meta = {k: v for k, v in rec.items() if k not in _CSV_CORE and k}
        image_id = rec.get("image_id", "").strip() or rel
        group = rec.get("group", "").strip()
        rows.append(record_row(image_id, path.parent / rel, rec["caption"], group, split, **meta))
    name = safe_name(f"{path.parent.name}-{path.stem}")
    return finish(spec, "csv", name, path.parent, rows, skips, has_split, allow_outside_root)


# ---------------------------------------------------------------- dispatch

_LOADERS: dict[str, Callable[..., LoadResult]] = {
    "medpix": load_medpix,
    "roco": load_roco,
    "medicat": load_medicat,
    "iuxray": load_iuxray,
    "csv": load_csv,
}


def parse_spec(spec: str) -> tuple[str, str]:
    """Split "KIND[:PATH]" into (kind, path text); ValueError for unknown kinds."""
    kind, _, arg = spec.strip().partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r} in {spec!r}; use KIND[:PATH] with KIND in {KINDS}")
    if kind != "synthetic" and not arg.strip():
        raise ValueError(f"dataset spec {spec!r} needs a path: {kind}:PATH")
    if kind == "synthetic" and arg.strip().lstrip("-").isdigit() and int(arg) < 1:
        raise ValueError(f"dataset spec {spec!r}: synthetic:N needs N >= 1 images, got {arg.strip()}")
    return kind, arg.strip()


def load_records(spec: str, allow_outside_root: bool = False) -> LoadResult:
    """Load any dataset from "KIND[:PATH]" into one table (one row per usable image).

    Image paths resolving outside the dataset's folder are skipped ("outside_root") unless
    `allow_outside_root`.
    """
    kind, arg = parse_spec(spec)
    if kind == "synthetic":
        return _load_synthetic(spec, arg, allow_outside_root)
    try:
        root = Path(arg).expanduser().resolve()
    except (RuntimeError, OSError) as exc:  # Python 3.11 raises RuntimeError on a symlink loop
        raise ValueError(f"{spec}: the dataset path cannot be resolved (symlink loop?)") from exc
    return _LOADERS[kind](root, spec, allow_outside_root=allow_outside_root)


__all__ = ["IMAGE_EXTENSIONS", "KINDS", "load_records", "load_synthetic_folder", "parse_spec"]
