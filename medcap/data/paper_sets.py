"""Loaders of the published caption sets: ROCO, MedICaT (the paper's data) and IU X-Ray (as R2Gen uses it).

Each returns the one table of `medcap.data.records` (see `medcap.data.loaders.load_records`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from medcap.base.io import safe_name
from medcap.data.images import index_images
from medcap.data.loader_base import existing, finish, index_file, record_row, split_name, text_of
from medcap.data.readers import SkipLog, iter_jsonl, iter_tsv_pairs, load_json_object
from medcap.data.records import LoadResult

log = logging.getLogger(__name__)


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
    root = existing(root, "ROCO folder")
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
        index_file(captions, root, "ROCO captions file", allow_outside_root)
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
            rows.append(record_row(image_id, path, caption, article, split))
    if not found_any:
        raise FileNotFoundError(f"{base}: no ROCO captions (expected {{train,validation,test}}/radiology/captions.txt)")
    return finish(spec, "roco", safe_name(root.name), root, rows, skips, True, allow_outside_root)


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
    root = existing(root, "MedICaT path")
    jsonl, figures = _medicat_files(root)
    if root.is_dir():
        index_file(jsonl, root, "MedICaT records file", allow_outside_root)
    skips = SkipLog()
    rows: list[dict] = []
    for lineno, rec in iter_jsonl(jsonl, skips):
        pdf_hash, fig_uri = text_of(rec.get("pdf_hash")), text_of(rec.get("fig_uri"))
        if not pdf_hash or not fig_uri:
            skips.add("missing_field", f"{jsonl.name}:{lineno}", "needs pdf_hash and fig_uri")
            continue
        file_name = f"{pdf_hash}_{fig_uri}"
        label, caption = split_figure_label(text_of(rec.get("s2_caption", rec.get("caption"))))
        rows.append(record_row(file_name, figures / file_name, caption, pdf_hash, "", figure_label=label))
    name = safe_name(root.stem if root.is_file() else root.name)
    return finish(spec, "medicat", name, root if root.is_dir() else root.parent, rows, skips, False,
                   allow_outside_root)


# ---------------------------------------------------------------- iu x-ray


def load_iuxray(root: Path, spec: str, allow_outside_root: bool = False) -> LoadResult:
    """IU X-Ray (R2Gen): annotation.json {train,val,test: [{id, report, image_path: [...]}]} + images/."""
    root = existing(root, "IU X-Ray folder")
    index = index_file(root / "annotation.json", root, "IU X-Ray annotation.json", allow_outside_root)
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
                rel_path = Path(text_of(rel))
                image_id = f"{study['id']}_{rel_path.stem}"  # e.g. CXR2384_IM-0942_0
                rows.append(record_row(image_id, images_dir / rel_path, study.get("report"), study["id"],
                                 split_name(key)))
    return finish(spec, "iuxray", safe_name(root.name), root, rows, skips, True, allow_outside_root)
