"""Loader reports say what happened: truncated index files, symlink loops, no file contents in errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from medcap.data import load_records, summarize
from medcap.data.images import check_image, open_image_rgb
from medcap.data.readers import SkipLog, load_json_array
from tests.support.datasets import _medpix_record, png

SECRET = "root:x:0:0:root:/root:/bin/bash"


def _medpix(root: Path, n: int, indent: int | None = 1) -> Path:
    records = [_medpix_record(f"MPX{k}_a", f"MPX{k}", f"CT shows finding number {k}.") for k in range(n)]
    for k in range(n):
        png(root / "images" / f"MPX{k}_a.png")
    (root / "Descriptions.json").write_text(json.dumps(records, indent=indent))
    return root / "Descriptions.json"


def _cut_inside_record(path: Path, stem: str) -> int:
    """Cut the file in the middle of the record for `stem`; returns the new size in bytes."""
    raw = path.read_bytes()
    cut = raw.index(stem.encode()) + 3
    path.write_bytes(raw[:cut])
    return cut


def test_truncated_descriptions_json_reports_the_loss(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    index = _medpix(tmp_path / "mp", 10)
    (tmp_path / "mp" / "splitted_dataset").mkdir()
    (tmp_path / "mp" / "splitted_dataset" / "descriptions_train.jsonl").write_text(
        "".join(json.dumps({"image": f"MPX{k}_a"}) + "\n" for k in range(10)))
    full = index.read_bytes()
    size = _cut_inside_record(index, "MPX7_a")  # records 0..6 whole, 7 cut, 8 and 9 gone
    record_end = full.rindex(b"}", 0, full.rindex(b"{", 0, full.index(b"MPX7_a"))) + 1  # end of record 6
    with caplog.at_level(logging.WARNING):
        res = load_records(f"medpix:{tmp_path / 'mp'}")
    assert res.table["image_id"].tolist() == [f"MPX{k}_a" for k in range(7)]
    assert res.skipped == {"truncated_record": 1}
    assert res.records_read == 8
    expected = (f"Descriptions.json: truncated JSON: read 7 records before byte {record_end} of {size}; "
                "the array is cut off there, so the records after it are lost (their number is unknown)")
    expected_split = "Descriptions.json: the split files list 10 images; 3 of them have no record in Descriptions.json"
    assert res.notes == [expected, expected_split]
    assert expected in caplog.text and expected_split in caplog.text
    assert summarize(res, protocol="model-80")["notes"] == [expected, expected_split]


def test_truncated_one_line_json_array_keeps_every_whole_record(tmp_path: Path) -> None:
    index = _medpix(tmp_path / "mp", 6, indent=None)  # the whole array on one line
    _cut_inside_record(index, "MPX4_a")
    res = load_records(f"medpix:{tmp_path / 'mp'}")
    assert res.table["image_id"].tolist() == [f"MPX{k}_a" for k in range(4)]
    assert res.skipped == {"truncated_record": 1}
    assert res.notes and "read 4 records before byte" in res.notes[0]


def test_array_cut_between_records_is_still_truncated(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    text = '[\n {"image": "a"},\n {"image": "b"},\n'
    path.write_text(text)
    skips = SkipLog()
    assert [obj["image"] for _, obj in load_json_array(path, skips)] == ["a", "b"]
    assert skips.skipped == {}
    assert text.rindex("}") + 1 == 34 and len(text) == 36
    assert skips.notes == ["d.json: truncated JSON: read 2 records before byte 34 of 36; "
                           "the array is cut off there, so the records after it are lost (their number is "
                           "unknown)"]


def test_malformed_but_complete_array_is_not_called_truncated(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[\n {"image": "a"},\n {image: "b"},\n {"image": "c"}\n]\n')
    skips = SkipLog()
    assert [obj["image"] for _, obj in load_json_array(path, skips)] == ["a", "c"]
    assert skips.skipped == {"malformed_line": 1} and skips.notes == []


def test_truncated_jsonl_reports_the_cut_line(tmp_path: Path) -> None:
    root = tmp_path / "medicat"
    recs = [{"pdf_hash": f"h{k}", "fig_uri": "1.png", "s2_caption": f"Figure {k}."} for k in range(3)]
    for r in recs:
        png(root / "figures" / f"{r['pdf_hash']}_1.png")
    text = "\n".join(json.dumps(r) for r in recs)
    (root / "records.jsonl").write_text(text[:-10])  # last line cut, no final newline
    res = load_records(f"medicat:{root}")
    assert len(res.table) == 2 and res.skipped == {"truncated_record": 1}
    assert res.notes == [f"records.jsonl: truncated JSONL: read 2 records; the file ends at byte {len(text) - 10} "
                         "inside record line 3, so anything after it is lost"]


def test_symlink_loop_has_its_own_reason(tmp_path: Path) -> None:
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop2.png")
    (tmp_path / "loop2.png").symlink_to(tmp_path / "loop.png")
    assert check_image(tmp_path / "loop.png") == "symlink_loop"
    assert check_image(tmp_path / "loop.png", root=tmp_path) == "symlink_loop"
    assert check_image(tmp_path / "gone.png") == "missing_file"
    with pytest.raises(ValueError, match="symlink loop"):
        open_image_rgb(tmp_path / "loop.png")
    png(tmp_path / "ok.png")
    (tmp_path / "t.csv").write_text("image_path,caption\nloop.png,CT\nok.png,CT\ngone.png,CT\n")
    res = load_records(f"csv:{tmp_path / 't.csv'}")
    assert res.skipped == {"symlink_loop": 1, "missing_file": 1}
    assert res.examples["symlink_loop"] == [str(tmp_path / "loop.png")]


def test_dataset_path_that_is_a_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(ValueError, match="symlink loop"):
        load_records(f"medpix:{tmp_path / 'a'}")


@pytest.mark.parametrize("kind", ["csv", "medpix", "iuxray", "medicat", "synthetic"])
def test_loader_errors_never_echo_file_contents(tmp_path: Path, kind: str) -> None:
    """A non-dataset file read as an index (the /etc/passwd probe): the error names the file, not its text."""
    folder = tmp_path / "ds"
    folder.mkdir()
    target = {"csv": folder / "x.csv", "medpix": folder / "Descriptions.json", "iuxray": folder / "annotation.json",
              "medicat": folder / "x.jsonl", "synthetic": folder / "records.jsonl"}[kind]
    target.write_text(f"{SECRET}\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    (folder / "figures").mkdir()
    (folder / "images").mkdir()
    spec = f"{kind}:{target if kind == 'csv' else folder}"
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        load_records(spec)
    text = str(info.value)
    assert "root:x" not in text and "daemon" not in text and "/bin/bash" not in text
    assert target.name in text or str(folder) in text
