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
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from medcap.data.images import IMAGE_EXTENSIONS, check_images, index_images, is_inside
from medcap.data.readers import (
    SkipLog,
    iter_csv,
    iter_jsonl,
    iter_tsv_pairs,
    load_json_array,
    load_json_object,
)
from medcap.data.records import REQUIRED_COLUMNS, LoadResult
from medcap.io import safe_name

log = logging.getLogger(__name__)

DEFAULT_SYNTHETIC_N = 2000
KINDS = ("synthetic", "medpix", "roco", "medicat", "iuxray", "csv")
_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                  "dev": "val", "test": "test", "testing": "test"}


def _text(value: Any) -> str:
    """A caption/metadata value as text ("" for null)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return value if isinstance(value, str) else str(value)


def _split_name(value: Any) -> str:
    return _SPLIT_ALIASES.get(_text(value).strip().lower(), "")


def _row(image_id: str, image_path: Path, caption: Any, group: Any = "", split: str = "", **meta: Any) -> dict:
    image_id = str(image_id)
    row = {"image_id": image_id, "image_path": str(image_path), "caption": _text(caption),
           "group": _text(group) or image_id, "split": split}
    row.update(meta)
    return row


def _finish(spec: str, kind: str, name: str, root: Path, rows: list[dict], skips: SkipLog,
            has_official_split: bool, allow_outside_root: bool = False) -> LoadResult:
    """Drop duplicate ids and rows whose image fails validation (thread pool); build the LoadResult.

    Every record read is either in `rows` or already counted in `skips`, so records_read is their sum.
    Unless `allow_outside_root`, an image path resolving outside `root` is skipped as "outside_root".
    """
    records_read = len(rows) + skips.total()
    unique: list[dict] = []
    seen: set[str] = set()
    for row in rows:
        if row["image_id"] in seen:
            skips.add("duplicate_id", row["image_id"], "image id already seen")
            continue
        seen.add(row["image_id"])
        unique.append(row)
    reasons = check_images([r["image_path"] for r in unique], root=None if allow_outside_root else root)
    kept = []
    for row, reason in zip(unique, reasons, strict=True):
        if reason is None:
            kept.append(row)
        else:
            skips.add(reason, row["image_path"],
                      f"resolves outside the dataset folder {root}" if reason == "outside_root" else "")
    if not kept:
        hint = (" Image paths outside the dataset folder are refused; pass --allow-outside-root "
                "(allow_outside_root=True) to read them." if skips.skipped.get("outside_root") else "")
        notes = "".join(f" {n}." for n in skips.notes)
        raise ValueError(
            f"{spec}: no usable records in {root} (read {records_read}; skipped {dict(skips.skipped) or 'none'})."
            f"{notes}{hint}"
        )
    table = pd.DataFrame(kept)
    ordered = [*REQUIRED_COLUMNS, *[c for c in table.columns if c not in REQUIRED_COLUMNS]]
    table = table[ordered].reset_index(drop=True)
    if skips.skipped:
        log.info("%s: %d usable of %d records; skipped %s", spec, len(table), records_read, skips.skipped)
    has_split = has_official_split and bool((table["split"] != "").any())
    return LoadResult(spec=spec, kind=kind, name=name, root=root, table=table, records_read=records_read,
                      skipped=dict(skips.skipped), examples={k: list(v) for k, v in skips.examples.items()},
                      has_official_split=has_split, notes=list(skips.notes))


def _existing(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found")
    return path


def _index_file(path: Path, root: Path, what: str, allow_outside_root: bool) -> Path:
    """An existing index file of the dataset in `root`; ValueError when it resolves (symlink) outside `root`."""
    _existing(path, what)
    if not allow_outside_root and not is_inside(path, root):
        raise ValueError(f"{path}: the {what} resolves outside the dataset folder {root}; pass "
                         "--allow-outside-root (allow_outside_root=True) to read it")
    return path


# ---------------------------------------------------------------- synthetic


def load_synthetic_folder(path: str | Path, spec: str | None = None, name: str | None = None,
                          allow_outside_root: bool = False) -> LoadResult:
    """Read a synthetic-set folder: `records.jsonl` lines {image_id, file, caption, group, modality,
    plane, boxes}; `file` is relative to the folder; `boxes` becomes a JSON string column."""
    root = _existing(Path(path).resolve(), "synthetic dataset folder")
    skips = SkipLog()
    rows: list[dict] = []
    index = root / "records.jsonl"
    _index_file(index, root, "synthetic records file", allow_outside_root)
    for lineno, rec in iter_jsonl(index, skips):
        if not rec.get("image_id") or not rec.get("file"):
            skips.add("missing_field", f"{index.name}:{lineno}", "needs image_id and file")
            continue
        meta = {k: _text(rec.get(k)) for k in ("modality", "plane") if k in rec}
        meta["boxes"] = json.dumps(rec.get("boxes") or [])
        rows.append(_row(rec["image_id"], root / str(rec["file"]), rec.get("caption"), rec.get("group"),
                         _split_name(rec.get("split")), **meta))
    return _finish(spec or f"synthetic:{root}", "synthetic", name or safe_name(root.name), root, rows, skips,
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
    root = _existing(root, "MedPix folder")
    index = _index_file(root / "Descriptions.json", root, "MedPix Descriptions.json", allow_outside_root)
    skips = SkipLog()
    records = load_json_array(index, skips)
    images = index_images(root / "images")
    splits = _medpix_splits(root)
    rows: list[dict] = []
    for lineno, rec in records:
        stem = _text(rec.get("image")).strip()
        if not stem:
            skips.add("missing_field", f"{index.name}: record at {lineno}", "no 'image' stem")
            continue
        desc = rec.get("Description") if isinstance(rec.get("Description"), dict) else {}
        path = images.get(stem, root / "images" / stem)
        rows.append(_row(stem, path, desc.get("Caption"), rec.get("U_id"), splits.get(stem, ""),
                         modality=_text(rec.get("Type")), plane=_text(desc.get("Plane")),
                         location=_text(rec.get("Location Category"))))
    if skips.notes and splits:  # a truncated index: the split files say how many records to expect
        lost = len(set(splits) - {r["image_id"] for r in rows})
        skips.note(f"{index.name}: the split files list {len(splits)} images; {lost} of them have no record "
                   f"in {index.name}")
    return _finish(spec, "medpix", safe_name(root.name), root, rows, skips, bool(splits), allow_outside_root)


# ---------------------------------------------------------------- roco

_PMC = re.compile(r"PMC\d+")


def _roco_links(folder: Path, skips: SkipLog) -> dict[str, tuple[str, str]]:
    """id -> (image file name, PMC article id) from dlinks.txt (id, download command, file name)."""
    path = folder / "dlinks.txt"
    links: dict[str, tuple[str, str]] = {}
    if not path.is_file():
        return links
    for _, fields in iter_tsv_pairs(path, skips, min_fields=3):
        image_id, command, file_name = fields[0], fields[1], fields[2]
        match = _PMC.search(command) or _PMC.search(file_name)
        links[image_id] = (file_name, match.group(0) if match else "")
    return links


def load_roco(root: Path, spec: str, allow_outside_root: bool = False) -> LoadResult:
    """ROCO: data/{train,validation,test}/radiology/{captions.txt,dlinks.txt,images/}; group = PMC article."""
    root = _existing(root, "ROCO folder")
    base = root / "data" if (root / "data").is_dir() else root
    skips = SkipLog()
    link_skips = SkipLog()  # dlinks.txt problems are logged; the record then falls back to images/<id>.*
    rows: list[dict] = []
    found_any = False
    for folder_split, split in (("train", "train"), ("validation", "val"), ("val", "val"), ("test", "test")):
        folder = base / folder_split / "radiology"
        captions = folder / "captions.txt"
        if not captions.is_file():
            continue
        found_any = True
        _index_file(captions, root, "ROCO captions file", allow_outside_root)
        links = _roco_links(folder, link_skips)
        by_stem = index_images(folder / "images")
        for _, fields in iter_tsv_pairs(captions, skips, min_fields=1):
            image_id = fields[0]
            caption = " ".join(fields[1:])
            file_name, article = links.get(image_id, ("", ""))
            path = folder / "images" / file_name if file_name else by_stem.get(image_id, folder / "images" / image_id)
            if not article:
                match = _PMC.search(file_name)
                article = match.group(0) if match else ""
            rows.append(_row(image_id, path, caption, article, split))
    if not found_any:
        raise FileNotFoundError(f"{base}: no ROCO captions (expected {{train,validation,test}}/radiology/captions.txt)")
    return _finish(spec, "roco", safe_name(root.name), root, rows, skips, True, allow_outside_root)


# ---------------------------------------------------------------- medicat


def _medicat_files(root: Path) -> tuple[Path, Path]:
    """(records jsonl, figures folder) for a MedICaT folder or jsonl path."""
    if root.is_file():
        jsonl = root
    else:
        candidates = sorted(root.glob("*.jsonl")) + sorted(root.glob("release/*.jsonl"))
        if not candidates:
            raise FileNotFoundError(f"{root}: no MedICaT .jsonl records file")
        jsonl = candidates[0]
        if len(candidates) > 1:
            log.info("medicat: using %s (of %d jsonl files)", jsonl.name, len(candidates))
    for folder in (jsonl.parent / "figures", root / "figures", root / "release" / "figures"):
        if folder.is_dir():
            return jsonl, folder
    raise FileNotFoundError(f"{jsonl.parent}: no MedICaT figures/ folder")


# "Figure 4.", "Fig 3.", "Fig. 1:", "Figs. 2-3." at the start of a caption: the paper's own label
_FIGURE_LABEL = re.compile(
    r"^\s*(fig(?:ure)?s?\.?\s*[A-Za-z]?\d+[A-Za-z]?(?:\s*[-\u2013,&]\s*[A-Za-z]?\d+[A-Za-z]?)*)\s*[.:|\u2013-]?\s*",
    re.IGNORECASE,
)


def split_figure_label(caption: str) -> tuple[str, str]:
    """(label, caption without it): `"Figure 4. Axial CT"` -> `("Figure 4", "Axial CT")`; ("", caption) if none."""
    match = _FIGURE_LABEL.match(caption)
    if match is None or not caption[match.end():].strip():
        return "", caption
    return match.group(1).strip(), caption[match.end():]


def load_medicat(root: Path, spec: str, allow_outside_root: bool = False) -> LoadResult:
    """MedICaT: JSONL figure records (pdf_hash, fig_uri, s2_caption) + figures/<pdf_hash>_<fig_uri>.

    The papers' own figure label ("Figure 4.", "Fig. 1:") is cut from the caption's start (it is not a
    finding) and kept in a `figure_label` column.
    """
    root = _existing(root, "MedICaT path")
    jsonl, figures = _medicat_files(root)
    if root.is_dir():
        _index_file(jsonl, root, "MedICaT records file", allow_outside_root)
    skips = SkipLog()
    rows: list[dict] = []
    for lineno, rec in iter_jsonl(jsonl, skips):
        pdf_hash, fig_uri = _text(rec.get("pdf_hash")), _text(rec.get("fig_uri"))
        if not pdf_hash or not fig_uri:
            skips.add("missing_field", f"{jsonl.name}:{lineno}", "needs pdf_hash and fig_uri")
            continue
        file_name = f"{pdf_hash}_{fig_uri}"
        label, caption = split_figure_label(_text(rec.get("s2_caption", rec.get("caption"))))
        rows.append(_row(file_name, figures / file_name, caption, pdf_hash, "", figure_label=label))
    name = safe_name(root.stem if root.is_file() else root.name)
    return _finish(spec, "medicat", name, root if root.is_dir() else root.parent, rows, skips, False,
                   allow_outside_root)


# ---------------------------------------------------------------- iu x-ray


def load_iuxray(root: Path, spec: str, allow_outside_root: bool = False) -> LoadResult:
    """IU X-Ray (R2Gen): annotation.json {train,val,test: [{id, report, image_path: [...]}]} + images/."""
    root = _existing(root, "IU X-Ray folder")
    index = _index_file(root / "annotation.json", root, "IU X-Ray annotation.json", allow_outside_root)
    data = load_json_object(index)
    skips = SkipLog()
    rows: list[dict] = []
    images_dir = root / "images"
    for key in ("train", "val", "test"):
        studies = data.get(key) or []
        if not isinstance(studies, list):
            raise ValueError(f"{index}: '{key}' is not a list of studies")
        for i, study in enumerate(studies):
            where = f"{index.name}: {key}[{i}]"
            paths = study.get("image_path") if isinstance(study, dict) else None
            if not isinstance(paths, list) or not paths or not study.get("id"):
                skips.add("missing_field", where, "needs id and a non-empty image_path list")
                continue
            for rel in paths:
                rel_path = Path(_text(rel))
                image_id = f"{study['id']}_{rel_path.stem}"  # e.g. CXR2384_IM-0942_0
                rows.append(_row(image_id, images_dir / rel_path, study.get("report"), study["id"],
                                 _split_name(key)))
    return _finish(spec, "iuxray", safe_name(root.name), root, rows, skips, True, allow_outside_root)


# ---------------------------------------------------------------- csv

_CSV_CORE = ("image_id", "image_path", "caption", "group", "split")


def load_csv(path: Path, spec: str, allow_outside_root: bool = False) -> LoadResult:
    """CSV with image_path (relative to the CSV), caption, optional group/split/image_id + metadata columns."""
    path = _existing(path, "CSV file")
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
        split = _split_name(rec.get("split"))
        has_split = has_split or bool(split)
        meta = {k: v for k, v in rec.items() if k not in _CSV_CORE and k}
        image_id = rec.get("image_id", "").strip() or rel
        rows.append(_row(image_id, path.parent / rel, rec["caption"], rec.get("group", "").strip(), split, **meta))
    name = safe_name(f"{path.parent.name}-{path.stem}")
    return _finish(spec, "csv", name, path.parent, rows, skips, has_split, allow_outside_root)


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
