"""`python -m medcap data` and the summarize dict it prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medcap.cli import main
from medcap.data import load_records, summarize
from tests.support.datasets import make_medpix


def test_summarize_known_values(tmp_path: Path) -> None:
    res = load_records(f"medpix:{make_medpix(tmp_path / 'mp')}")
    s = summarize(res, max_words=20, protocol="model-80", split_by="group", seed=0, min_count=1)
    assert s["records_read"] == 4 and s["images_found"] == 4
    assert s["records_kept"] == 3
    assert s["dropped"] == {"placeholder": 1}
    assert s["groups"] == 3 and s["groups_kept"] == 2
    assert s["caption_words_before"] == {"min": 2, "median": 5.0, "max": 8}
    assert s["caption_words_after"] == {"min": 2, "median": 5.0, "max": 5}
    assert sum(s["split_sizes"].values()) == 3
    assert s["leakage"]["groups_shared_train_test"] == 0
    assert s["vocab_size"] > 4


def test_summarize_official_without_split_raises(tmp_path: Path) -> None:
    root = make_medpix(tmp_path / "mp")
    for f in (root / "splitted_dataset").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match="no official split"):
        summarize(load_records(f"medpix:{root}"), protocol="official")


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_medpix(tmp_path / "mp")
    assert main(["data", "--dataset", f"medpix:{root}", "--protocol", "official", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["records_read"] == 4
    assert out["split_sizes"] == {"train": 2, "val": 1, "test": 0}
    assert out["settings"]["protocol"] == "official"


def test_cli_human_and_truncate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_medpix(tmp_path / "mp")
    assert main(["data", "--dataset", f"medpix:{root}", "--max-words", "3", "--long-captions", "truncate",
                 "--split-by", "image", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "records read     4" in out
    assert "records kept     3" in out
    assert "placeholder 1" in out
    assert "by image, seed 1" in out


def test_cli_bad_dataset_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "--dataset", f"medpix:{tmp_path / 'absent'}"]) == 2
    assert capsys.readouterr().out == ""


def test_summarize_all_captions_dropped_raises(tmp_path: Path) -> None:
    res = load_records(f"medpix:{make_medpix(tmp_path / 'mp')}")
    with pytest.raises(ValueError, match="no captions left"):
        summarize(res, max_words=1)
