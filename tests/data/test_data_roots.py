"""Confinement: the data roots, the uniform refusal of typed specs, dataset discovery, outside-root images."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from medcap.cli import main
from medcap.data import load_records
from medcap.data.roots import REFUSED_TEXT, DatasetRefusedError, check_spec, data_roots, find_datasets
from tests.support.datasets import make_iuxray, make_medpix, make_roco, png, write_synthetic_folder


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `data/` root under a fresh working directory, configured through MEDCAP_DATA."""
    root = tmp_path / "work" / "data"
    root.mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("MEDCAP_DATA", "data")
    return root


def _refusal(spec: str) -> str:
    with pytest.raises(DatasetRefusedError) as info:
        check_spec(spec)
    return str(info.value)


def test_roots_default_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, artifacts: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEDCAP_DATA", raising=False)
    assert data_roots() == [(tmp_path / "data").resolve(), artifacts.resolve()]
    (tmp_path / "a").mkdir()
    monkeypatch.setenv("MEDCAP_DATA", os.pathsep.join(["a", "", str(tmp_path / "b")]))
    assert data_roots() == [(tmp_path / "a").resolve(), (tmp_path / "b").resolve(), artifacts.resolve()]


def test_outside_path_probe_gets_one_identical_refusal(data_dir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    texts = {
        _refusal(f"csv:{secret}"),  # exists
        _refusal(f"csv:{tmp_path / 'nope.csv'}"),  # does not exist
        _refusal("csv:/etc/passwd"),
        _refusal("medpix:/"),
        _refusal("medpix:data/../.."),  # climbs out lexically
        _refusal(f"synthetic:{tmp_path}"),  # a synthetic folder is a path too
    }
    assert texts == {REFUSED_TEXT}
    assert "root:x" not in REFUSED_TEXT and str(tmp_path) not in REFUSED_TEXT


def test_symlink_out_of_a_root_is_refused(data_dir: Path, tmp_path: Path) -> None:
    outside = make_medpix(tmp_path / "elsewhere")
    (data_dir / "link").symlink_to(outside, target_is_directory=True)
    assert _refusal("medpix:data/link") == REFUSED_TEXT


def test_specs_inside_the_roots_pass(data_dir: Path, artifacts: Path) -> None:
    make_medpix(data_dir / "mp")
    assert check_spec(" medpix:data/mp ") == "medpix:data/mp"
    assert check_spec(f"medpix:{data_dir / 'mp'}") == f"medpix:{data_dir / 'mp'}"
    assert check_spec("medpix:data/not-there-yet") == "medpix:data/not-there-yet"  # loader says what is missing
    assert check_spec(f"synthetic:{artifacts / 'datasets' / 'x'}").startswith("synthetic:")
    assert check_spec("synthetic") == "synthetic" and check_spec("synthetic:200") == "synthetic:200"
    with pytest.raises(ValueError, match="unknown dataset kind") as info:
        check_spec("zip:/etc/passwd")
    assert not isinstance(info.value, DatasetRefusedError)


def test_a_symlinked_root_is_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    make_medpix(shared / "mp")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "data").symlink_to(shared, target_is_directory=True)
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.delenv("MEDCAP_DATA", raising=False)
    assert check_spec("medpix:data/mp") == "medpix:data/mp"
    assert "medpix:data/mp" in find_datasets()


def test_find_datasets_by_layout(data_dir: Path, artifacts: Path, tmp_path: Path) -> None:
    make_medpix(data_dir / "medpix-mini")
    make_roco(data_dir / "nested" / "roco")
    make_iuxray(data_dir / "iu")
    (data_dir / "medicat" / "figures").mkdir(parents=True)
    (data_dir / "medicat" / "sample.jsonl").write_text("{}\n")
    (data_dir / "cases.csv").write_text("image_path,caption\na.png,CT\n")
    (data_dir / "other.csv").write_text("x,y\n1,2\n")  # not a caption table
    write_synthetic_folder(data_dir / "synth")
    make_medpix(tmp_path / "elsewhere")
    (data_dir / "escape").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (artifacts / "datasets" / "synthetic-300-s0").mkdir(parents=True)
    write_synthetic_folder(artifacts / "datasets" / "custom")
    found = find_datasets()
    assert found == [
        "csv:data/cases.csv",
        "iuxray:data/iu",
        "medicat:data/medicat",
        "medpix:data/medpix-mini",
        "roco:data/nested/roco",
        "synthetic:data/synth",
        "synthetic:300",
        f"synthetic:{artifacts / 'datasets' / 'custom'}",
    ]
    for spec in found:
        check_spec(spec)


def _outside_csv(tmp_path: Path) -> Path:
    """A CSV whose rows climb out of its folder with ../, beside one good row."""
    png(tmp_path / "secret" / "x.png")
    folder = tmp_path / "ds"
    png(folder / "ok.png")
    (folder / "cases.csv").write_text("image_path,caption\nok.png,CT chest\n../secret/x.png,CT head\n"
                                      "../secret/gone.png,CT leg\n")
    return folder / "cases.csv"


def test_csv_rows_climbing_out_are_refused(tmp_path: Path) -> None:
    res = load_records(f"csv:{_outside_csv(tmp_path)}")
    assert res.table["image_id"].tolist() == ["ok.png"]
    # existing and missing files outside the folder get the same reason: existence is not revealed
    assert res.skipped == {"outside_root": 2}
    assert [Path(p).name for p in res.examples["outside_root"]] == ["x.png", "gone.png"]
    assert res.records_read == 3


def test_allow_outside_root_opts_in(tmp_path: Path) -> None:
    res = load_records(f"csv:{_outside_csv(tmp_path)}", allow_outside_root=True)
    assert res.table["image_id"].tolist() == ["ok.png", "../secret/x.png"]
    assert res.skipped == {"missing_file": 1}


def test_symlinked_image_escaping_the_root_is_refused(tmp_path: Path) -> None:
    root = make_medpix(tmp_path / "mp")
    target = png(tmp_path / "outside" / "real.png")
    (root / "images" / "MPX3_a.png").unlink()
    (root / "images" / "MPX3_a.png").symlink_to(target)
    inside = png(root / "store" / "kept.png")
    (root / "images" / "MPX2_a.jpg").unlink()
    (root / "images" / "MPX2_a.png").symlink_to(inside)  # a symlink staying inside is fine
    res = load_records(f"medpix:{root}")
    assert res.skipped == {"outside_root": 1}
    assert res.examples["outside_root"] == [str(root / "images" / "MPX3_a.png")]
    assert "MPX2_a" in set(res.table["image_id"])
    assert "MPX3_a" in set(load_records(f"medpix:{root}", allow_outside_root=True).table["image_id"])


def test_synthetic_records_outside_their_folder_are_refused(tmp_path: Path) -> None:
    root = write_synthetic_folder(tmp_path / "syn")
    png(tmp_path / "x.png")
    lines = (root / "records.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    rec["file"] = "../x.png"
    (root / "records.jsonl").write_text("\n".join([json.dumps(rec), *lines[1:]]) + "\n")
    assert load_records(f"synthetic:{root}").skipped == {"outside_root": 1}


def test_nothing_left_inside_says_how_to_opt_in(tmp_path: Path) -> None:
    png(tmp_path / "x.png")
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "c.csv").write_text("image_path,caption\n../x.png,CT\n")
    with pytest.raises(ValueError, match=r"outside_root.*--allow-outside-root"):
        load_records(f"csv:{tmp_path / 'ds' / 'c.csv'}")


def test_cli_flag_allow_outside_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = _outside_csv(tmp_path)
    assert main(["data", "--dataset", f"csv:{csv_path}", "--json"]) == 0
    refused = json.loads(capsys.readouterr().out)
    assert refused["records_kept"] == 1 and refused["dropped"] == {"outside_root": 2}
    assert main(["data", "--dataset", f"csv:{csv_path}", "--json", "--allow-outside-root"]) == 0
    allowed = json.loads(capsys.readouterr().out)
    assert allowed["records_kept"] == 2 and allowed["dropped"] == {"missing_file": 1}


def test_index_file_symlinked_out_of_the_dataset_is_refused(tmp_path: Path) -> None:
    root = make_medpix(tmp_path / "mp")
    other = make_medpix(tmp_path / "other")
    (root / "Descriptions.json").unlink()
    (root / "Descriptions.json").symlink_to(other / "Descriptions.json")
    with pytest.raises(ValueError, match=r"Descriptions\.json resolves outside the dataset folder.*"
                                         r"--allow-outside-root"):
        load_records(f"medpix:{root}")
    assert len(load_records(f"medpix:{root}", allow_outside_root=True).table) == 4
