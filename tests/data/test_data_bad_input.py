"""Section 7: one bad record never stops a load; it is skipped, counted by reason and logged."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medcap.data import images as image_reader
from medcap.data import load_records, summarize
from tests.support.datasets import make_medpix, png


def _add_medpix(root: Path, records: list[dict]) -> None:
    path = root / "Descriptions.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps(data + records, indent=1))


def _rec(stem: str, caption: str | None = "CT of the chest", case: str = "MPX9") -> dict:
    desc = {"Plane": "Axial"} if caption is None else {"Caption": caption, "Plane": "Axial"}
    return {"Type": "MR", "U_id": case, "image": stem, "Description": desc, "Location Category": "Head"}


def test_bad_image_files_are_skipped_by_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    root = make_medpix(tmp_path / "mp")
    images = root / "images"
    (images / "zero.png").write_bytes(b"")
    (images / "text.png").write_text("not an image")
    good = images / "MPX1_a.png"
    (images / "cut.png").write_bytes(good.read_bytes()[:40])
    png(images / "bomb.png", size=64)  # 4096 px, over the limit set below
    png(images / "rgba.png", mode="RGBA")
    png(images / "gray.png", mode="L")
    Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)).save(images / "d16.png")
    stems = ["missing", "zero", "text", "cut", "bomb", "rgba", "gray", "d16"]
    _add_medpix(root, [_rec(s) for s in stems])
    monkeypatch.setattr(image_reader, "MAX_PIXELS", 1000)
    with caplog.at_level(logging.WARNING):
        res = load_records(f"medpix:{root}")
    assert res.skipped == {"missing_file": 1, "empty_file": 1, "not_an_image": 1, "corrupt_image": 1,
                           "decompression_bomb": 1}
    kept = set(res.table["image_id"])
    assert {"rgba", "gray", "d16"} <= kept  # RGBA, grayscale and 16-bit images are usable
    assert res.records_read == 12 and len(res.table) == 7
    assert res.examples["empty_file"] == [str(images / "zero.png")]
    assert "zero.png" in caplog.text and "empty_file" in caplog.text


def test_missing_caption_is_kept_then_dropped_as_empty(tmp_path: Path) -> None:
    root = make_medpix(tmp_path / "mp")
    png(root / "images" / "nocap.png")
    _add_medpix(root, [_rec("nocap", caption=None)])
    res = load_records(f"medpix:{root}")
    assert res.table.set_index("image_id").loc["nocap", "caption"] == ""
    s = summarize(res)
    assert s["dropped"] == {"empty_caption": 1, "placeholder": 1}
    assert s["records_read"] == 5 and s["records_kept"] == 3


def test_malformed_record_in_json_array(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_medpix(tmp_path / "mp")
    path = root / "Descriptions.json"
    text = path.read_text()
    # break the second record (an unquoted key) but keep the others intact
    second = text.index('"image": "MPX1_b"')
    path.write_text(text[:second] + 'image: "MPX1_b"' + text[second + len('"image": "MPX1_b"'):])
    with caplog.at_level(logging.WARNING):
        res = load_records(f"medpix:{root}")
    assert res.table["image_id"].tolist() == ["MPX1_a", "MPX2_a", "MPX3_a"]
    assert res.skipped == {"malformed_line": 1}
    assert res.records_read == 4
    assert res.examples["malformed_line"][0].startswith("Descriptions.json:")
    assert "Descriptions.json:" in caplog.text


def test_non_utf8_record_in_json_array(tmp_path: Path) -> None:
    root = make_medpix(tmp_path / "mp")
    path = root / "Descriptions.json"
    raw = path.read_bytes().replace(b"Axial FLAIR", b"Axial FL\xe9\xffIR")
    path.write_bytes(raw)
    res = load_records(f"medpix:{root}")
    assert "MPX3_a" not in set(res.table["image_id"])
    assert res.skipped == {"bad_encoding": 1}
    assert len(res.table) == 3


def test_malformed_and_non_utf8_jsonl_lines(tmp_path: Path) -> None:
    root = tmp_path / "medicat"
    root.mkdir()
    good = [{"pdf_hash": f"h{k}", "fig_uri": "1-Figure1-1.png", "s2_caption": f"Figure {k}."} for k in range(3)]
    for r in good:
        png(root / "figures" / f"{r['pdf_hash']}_{r['fig_uri']}")
    lines = [json.dumps(good[0]).encode(), b'{"pdf_hash": "x", "fig_uri": ', json.dumps(good[1]).encode(),
             b'{"pdf_hash": "h9", "fig_uri": "1.png", "s2_caption": "caf\xe9"}', b"[1, 2]",
             b'{"fig_uri": "1.png"}', json.dumps(good[2]).encode()]
    (root / "records.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    res = load_records(f"medicat:{root}")
    assert res.table["image_id"].tolist() == ["h0_1-Figure1-1.png", "h1_1-Figure1-1.png", "h2_1-Figure1-1.png"]
    assert res.skipped == {"malformed_line": 2, "bad_encoding": 1, "missing_field": 1}
    assert res.examples["malformed_line"] == ["records.jsonl:2", "records.jsonl:5"]
    assert res.records_read == 7


def test_malformed_and_non_utf8_csv_rows(tmp_path: Path) -> None:
    for name in ("a", "b", "c", "d"):
        png(tmp_path / f"{name}.png")
    body = (b"image_path,caption,group\n"
            b"a.png,small nodule,p1\n"
            b"b.png,too,many,fields,here\n"
            b"c.png,caf\xe9 au lait spots,p3\n"
            b"d.png,normal chest,p4\n"
            b",no path,p5\n")
    (tmp_path / "t.csv").write_bytes(body)
    res = load_records(f"csv:{tmp_path / 't.csv'}")
    assert res.table["image_id"].tolist() == ["a.png", "d.png"]
    assert res.skipped == {"malformed_line": 1, "bad_encoding": 1, "missing_field": 1}
    assert res.examples["malformed_line"] == ["t.csv:3"]
    assert res.records_read == 5


def test_csv_without_required_columns(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("path,text\na.png,x\n")
    with pytest.raises(ValueError, match=r"t\.csv.*image_path"):
        load_records(f"csv:{tmp_path / 't.csv'}")


def test_nothing_usable_raises_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("image_path,caption\nmissing1.png,a\nmissing2.png,b\n")
    with pytest.raises(ValueError, match=r"no usable records.*read 2.*missing_file"):
        load_records(f"csv:{tmp_path / 't.csv'}")


def test_duplicate_ids_keep_the_first(tmp_path: Path) -> None:
    png(tmp_path / "a.png")
    (tmp_path / "t.csv").write_text("image_path,caption\na.png,first\na.png,second\n")
    res = load_records(f"csv:{tmp_path / 't.csv'}")
    assert res.table["caption"].tolist() == ["first"]
    assert res.skipped == {"duplicate_id": 1}


def test_roco_line_without_caption_or_image(tmp_path: Path) -> None:
    folder = tmp_path / "roco" / "data" / "train" / "radiology"
    png(folder / "images" / "PMC1_f.jpg", mode="RGB")
    (folder / "captions.txt").write_text("ROCO_1\tA mass.\nROCO_2\tNo image here.\n")
    (folder / "dlinks.txt").write_text("ROCO_1\twget PMC1.tar.gz\tPMC1_f.jpg\nbroken line\n")
    res = load_records(f"roco:{tmp_path / 'roco'}")
    assert res.table["image_id"].tolist() == ["ROCO_1"]
    assert res.table["group"].tolist() == ["PMC1"]
    assert res.skipped == {"missing_file": 1}
