"""Every dataset layout on tiny fixtures written here (no copied data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medcap.data import load_records, load_synthetic_folder
from medcap.data.loaders import parse_spec
from medcap.data.records import REQUIRED_COLUMNS
from tests.support.datasets import make_iuxray, make_medpix, make_roco, png, write_synthetic_folder


def test_medpix_layout(tmp_path: Path) -> None:
    root = make_medpix(tmp_path / "medpix-mini")
    res = load_records(f"medpix:{root}")
    t = res.table
    assert list(t.columns[:5]) == list(REQUIRED_COLUMNS)
    assert t["image_id"].tolist() == ["MPX1_a", "MPX1_b", "MPX2_a", "MPX3_a"]
    assert Path(t["image_path"][1]).name == "MPX1_b.jpg"  # stem resolved to the existing extension
    assert all(Path(p).is_absolute() for p in t["image_path"])
    assert t["group"].tolist() == ["MPX1", "MPX1", "MPX2", "MPX3"]
    assert t["split"].tolist() == ["train", "train", "train", "val"]
    assert t["modality"].tolist() == ["CT"] * 4
    assert t["plane"].tolist() == ["Axial", "Coronal", "Axial", "Axial"]
    assert t["location_category"][0] == "Thorax" and t["location"][0] == "Chest, Pulmonary"
    labels = t.loc[0, ["modality_detail", "acr_code", "age", "sex"]].tolist()
    assert labels == ["CT - noncontrast", "6.3", "73", "male"]
    assert (res.kind, res.name, res.records_read, res.skipped) == ("medpix", "medpix-mini", 4, {})
    assert res.has_official_split


def test_medpix_without_split_files_or_image(tmp_path: Path) -> None:
    root = make_medpix(tmp_path / "mp")
    for f in (root / "splitted_dataset").iterdir():
        f.unlink()
    (root / "images" / "MPX3_a.png").unlink()
    res = load_records(f"medpix:{root}")
    assert not res.has_official_split
    assert set(res.table["split"]) == {""}
    assert res.skipped == {"missing_file": 1}
    assert res.records_read == 4 and len(res.table) == 3
    assert res.examples["missing_file"][0].endswith("MPX3_a")


def test_roco_layout(tmp_path: Path) -> None:
    res = load_records(f"roco:{make_roco(tmp_path / 'roco')}")
    t = res.table.set_index("image_id")
    assert sorted(t.index) == ["ROCO_00001", "ROCO_00002", "ROCO_00003", "ROCO_00004"]
    assert t.loc["ROCO_00001", "group"] == t.loc["ROCO_00002", "group"] == "PMC111"
    assert t.loc["ROCO_00004", "group"] == "PMC94"
    assert t.loc["ROCO_00003", "split"] == "val" and t.loc["ROCO_00004", "split"] == "test"
    assert t.loc["ROCO_00002", "caption"] == "Computed tomography showing a mass 1."
    assert Path(t.loc["ROCO_00002", "image_path"]).name == "PMC111_fig1.jpg"
    assert res.has_official_split and res.skipped == {}


def test_medicat_layout(tmp_path: Path) -> None:
    root = tmp_path / "medicat"
    recs = [{"pdf_hash": "abc", "fig_uri": "2-Figure1-1.png", "s2_caption": "Axial CT of the abdomen."},
            {"pdf_hash": "abc", "fig_uri": "3-Figure2-1.png", "s2_caption": "MRI of the knee."},
            {"pdf_hash": "def", "fig_uri": "1-Figure1-1.png", "s2_caption": "Chest radiograph."}]
    root.mkdir()
    (root / "s2_full_figures.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    for r in recs:
        png(root / "figures" / f"{r['pdf_hash']}_{r['fig_uri']}", mode="RGB")
    res = load_records(f"medicat:{root}")
    assert res.table["image_id"].tolist() == ["abc_2-Figure1-1.png", "abc_3-Figure2-1.png", "def_1-Figure1-1.png"]
    assert res.table["group"].tolist() == ["abc", "abc", "def"]
    assert res.table["caption"][1] == "MRI of the knee."
    assert not res.has_official_split
    # the jsonl file itself works as the path too
    assert len(load_records(f"medicat:{root / 's2_full_figures.jsonl'}").table) == 3


def test_iuxray_layout(tmp_path: Path) -> None:
    res = load_records(f"iuxray:{make_iuxray(tmp_path / 'iu')}")
    t = res.table
    assert t["image_id"].tolist() == ["CXR1_IM-1_0", "CXR1_IM-1_1", "CXR2_IM-2_0", "CXR3_IM-3_0"]
    assert t["group"].tolist() == ["CXR1_IM-1", "CXR1_IM-1", "CXR2_IM-2", "CXR3_IM-3"]
    assert t["split"].tolist() == ["train", "train", "val", "test"]
    assert t["caption"][0] == "The heart is normal. No effusion."
    assert res.records_read == 4 and res.has_official_split


def test_csv_layout(tmp_path: Path) -> None:
    png(tmp_path / "imgs" / "a.png")
    png(tmp_path / "imgs" / "b.jpg", mode="RGB")
    png(tmp_path / "imgs" / "c.png")
    (tmp_path / "set.csv").write_text(
        'image_path,caption,group,modality\n'
        'imgs/a.png,"Nodule, right lung",p1,CT\n'
        'imgs/b.jpg,Normal chest,p1,XR\n'
        'imgs/c.png,"Effusion ""left""",,MR\n')
    res = load_records(f"csv:{tmp_path / 'set.csv'}")
    t = res.table
    assert t["image_id"].tolist() == ["imgs/a.png", "imgs/b.jpg", "imgs/c.png"]
    assert t["caption"].tolist() == ["Nodule, right lung", "Normal chest", 'Effusion "left"']
    assert t["group"].tolist() == ["p1", "p1", "imgs/c.png"]  # group defaults to the image id
    assert t["modality"].tolist() == ["CT", "XR", "MR"]
    assert not res.has_official_split
    assert Path(t["image_path"][0]) == (tmp_path / "imgs" / "a.png").resolve()


def test_synthetic_folder(tmp_path: Path) -> None:
    res = load_synthetic_folder(write_synthetic_folder(tmp_path / "synthetic-3"))
    t = res.table
    assert res.kind == "synthetic" and res.name == "synthetic-3" and len(t) == 3
    assert json.loads(t["boxes"][0]) == []
    assert json.loads(t["boxes"][1])[0]["box"] == [0.1, 0.2, 0.3, 0.4]
    assert t["modality"].tolist() == ["XR"] * 3
    assert not res.has_official_split


def test_synthetic_generated_end_to_end() -> None:
    pytest.importorskip("medcap.data.synthetic", reason="synthetic generator not built yet")
    res = load_records("synthetic:50")
    assert res.name == "synthetic-50"
    assert len(res.table) == 50 and res.skipped == {}
    assert "boxes" in res.table.columns


@pytest.mark.parametrize(
    ("spec", "error"),
    [("mimic:/x", "unknown dataset kind"), ("medpix", "needs a path"), ("csv:", "needs a path")],
)
def test_bad_specs(spec: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        load_records(spec)


def test_parse_spec_and_missing_root(tmp_path: Path) -> None:
    assert parse_spec("synthetic") == ("synthetic", "")
    assert parse_spec("MedPix:some/dir") == ("medpix", "some/dir")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_records(f"medpix:{tmp_path / 'nowhere'}")
