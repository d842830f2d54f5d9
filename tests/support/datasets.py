"""Tiny datasets in each loader's layout (MedPix, ROCO, IU X-Ray, a synthetic folder) and tiny image files."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image


def png(path: Path, mode: str = "L", size: int = 8) -> Path:
    """Write a tiny valid image (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (size, size), 100 if mode in ("L", "I;16") else (100, 50, 25, 255)[: len(mode)]).save(path)
    return path


def _medpix_record(stem: str, case: str, caption: str | None, plane: str = "Axial") -> dict:
    return {"Type": "CT", "U_id": case, "image": stem,
            "Description": {"Caption": caption, "Plane": plane, "Modality": "CT - noncontrast", "ACR Codes": "6.3",
                            "Age": "73", "Sex": "male"},
            "Location": "Chest, Pulmonary", "Location Category": "Thorax"}


def make_medpix(root: Path) -> Path:
    records = [
        _medpix_record("MPX1_a", "MPX1", "CT shows a LUL mass."),
        _medpix_record("MPX1_b", "MPX1", "CT shows a LUL mass.", plane="Coronal"),
        _medpix_record("MPX2_a", "MPX2", "Replace this - DESCRIPTION OF THE IMAGE OR FINDINGS."),
        _medpix_record("MPX3_a", "MPX3", "Axial FLAIR"),
    ]
    root.mkdir(parents=True)
    (root / "Descriptions.json").write_text(json.dumps(records, indent=1))
    png(root / "images" / "MPX1_a.png", mode="RGBA")
    png(root / "images" / "MPX1_b.jpg", mode="RGB")
    png(root / "images" / "MPX2_a.jpg", mode="RGB")
    png(root / "images" / "MPX3_a.png")
    split_dir = root / "splitted_dataset"
    split_dir.mkdir()
    (split_dir / "descriptions_train.jsonl").write_text(
        "\n".join(json.dumps(r) for r in records[:3]) + "\n")
    (split_dir / "descriptions_dev.jsonl").write_text(json.dumps(records[3]) + "\n")
    return root


def make_roco(root: Path) -> Path:
    for split, ids in (("train", ["ROCO_00001", "ROCO_00002"]), ("validation", ["ROCO_00003"]),
                       ("test", ["ROCO_00004"])):
        folder = root / "data" / split / "radiology"
        folder.mkdir(parents=True)
        caps, links = [], []
        for k, image_id in enumerate(ids):
            pmc = "PMC111" if image_id in ("ROCO_00001", "ROCO_00002") else f"PMC9{image_id[-1]}"
            file_name = f"{pmc}_fig{k}.jpg"
            caps.append(f"{image_id}\t Computed tomography showing a mass {k}.")
            links.append(f"{image_id}\twget -O x https://ftp.example/pub/pmc/oa/{pmc}.tar.gz\t{file_name}")
            png(folder / "images" / file_name, mode="RGB")
        (folder / "captions.txt").write_text("\n".join(caps) + "\n")
        (folder / "dlinks.txt").write_text("\n".join(links) + "\n")
    return root


def make_iuxray(root: Path) -> Path:
    ann = {"train": [{"id": "CXR1_IM-1", "report": "The heart is normal. No effusion.",
                      "image_path": ["CXR1_IM-1/0.png", "CXR1_IM-1/1.png"], "split": "train"}],
           "val": [{"id": "CXR2_IM-2", "report": "Mild cardiomegaly.", "image_path": ["CXR2_IM-2/0.png"]}],
           "test": [{"id": "CXR3_IM-3", "report": "Left pleural effusion.", "image_path": ["CXR3_IM-3/0.png"]}]}
    root.mkdir()
    (root / "annotation.json").write_text(json.dumps(ann))
    for study in ann.values():
        for s in study:
            for rel in s["image_path"]:
                png(root / "images" / rel)
    return root


def write_synthetic_folder(root: Path, n: int = 3) -> Path:
    lines = []
    for k in range(n):
        png(root / "images" / f"s{k}.png", size=16)
        lines.append(json.dumps({"image_id": f"s{k}", "file": f"images/s{k}.png",
                                 "caption": f"chest radiograph shows a small nodule {k}", "group": f"s{k}",
                                 "modality": "XR", "plane": "PA",
                                 "boxes": [{"finding": "nodule", "location": "right upper lobe", "size": "small",
                                            "box": [0.1, 0.2, 0.3, 0.4]}] if k else []}))
    (root / "records.jsonl").write_text("\n".join(lines) + "\n")
    return root
