"""The dashboard's table shaping (medcap.app.tables), dataset facts (dataset_view) and uploads."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from medcap.app import datasets, tables
from medcap.data import images
from medcap.runs.index import list_runs
from tests.support.dashboard_fixtures import (
    FAILED_ERROR,
    FAILED_ID,
    FINISHED70_ID,
    FINISHED_ID,
    HALF_ID,
    KILLED_ID,
    full_state,
)


@pytest.fixture
def full(artifacts: Path) -> Path:
    full_state(artifacts)
    return artifacts / "runs"


def test_label_counts_count_images_and_cases_per_value() -> None:
    import pandas as pd

    table = pd.DataFrame({"image_id": list("abcde"), "image_path": ["p"] * 5, "caption": ["x"] * 5,
                          "group": ["c1", "c1", "c2", "c3", "c3"], "split": ["train"] * 5,
                          "plane": ["Axial", "Axial", "Coronal", "Axial", None],
                          "location_category": ["Head", "Head", "Thorax", "Head", "Head"], "score": [0.1] * 5})
    assert datasets.count_columns(table) == ["split", "plane", "location_category"]
    counts = datasets.label_counts(table, "plane")
    assert counts.to_dict("records") == [
        {"plane": "Axial", "images": 3, "cases": 2, "share": 0.6},
        {"plane": "(none)", "images": 1, "cases": 1, "share": 0.2},
        {"plane": "Coronal", "images": 1, "cases": 1, "share": 0.2},
    ]
    assert datasets.label_counts(table, "location_category")["cases"].tolist() == [2, 1]
    with pytest.raises(ValueError, match="no column 'sex'"):
        datasets.label_counts(table, "sex")


def test_runs_table_shows_every_state(full: Path) -> None:
    table = tables.runs_table(full).set_index("run")
    assert table.loc[FINISHED_ID, "state"] == "finished"
    assert table.loc[FAILED_ID, "state"] == "failed"
    assert table.loc[FAILED_ID, "message"] == FAILED_ERROR
    assert table.loc[KILLED_ID, "state"] == "interrupted"  # 'running' with a dead pid
    assert table.loc[HALF_ID, "state"] == "unknown"
    assert "status.json missing" in table.loc[HALF_ID, "message"]
    assert table.loc[FINISHED_ID, "BLEU-1"] == pytest.approx(0.312)
    assert table.loc[FINISHED_ID, "BLEU-1 95% CI"] == "[0.281, 0.344]"
    assert table.loc[FINISHED_ID, "epoch"] == "3/3"
    assert math.isnan(table.loc[FAILED_ID, "BLEU-1"])


def test_runs_signature_changes_when_a_run_changes(full: Path) -> None:
    before = tables.runs_signature(full)
    assert len(before) == 5
    status = full / FINISHED_ID / "status.json"
    time.sleep(0.01)
    status.write_text(status.read_text())
    import os

    os.utime(status, (time.time() + 5, time.time() + 5))
    assert tables.runs_signature(full) != before


def test_default_compare_is_latest_model80_and_model70(full: Path) -> None:
    assert tables.default_compare(list_runs(full)) == [FINISHED_ID, FINISHED70_ID]


def test_true_boxes() -> None:
    row = {"boxes": json.dumps([{"finding": "cyst", "box": [0, 0, 0.5, 0.5]}, {"finding": "nobox"}])}
    assert datasets.true_boxes(row) == [{"finding": "cyst", "box": [0, 0, 0.5, 0.5]}]
    assert datasets.true_boxes({"boxes": "not json"}) == []
    assert datasets.true_boxes({}) == []


def _png(fmt: str = "PNG", size: tuple[int, int] = (20, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, 90).save(buf, format=fmt)
    return buf.getvalue()


def test_open_upload_accepts_png_and_jpeg_only() -> None:
    assert images.open_upload(_png(), "scan.png").size == (20, 10)
    assert images.open_upload(_png("JPEG"), "scan.jpg").mode == "RGB"
    with pytest.raises(ValueError, match="only PNG and JPEG"):
        images.open_upload(_png("GIF"), "anim.gif")
    with pytest.raises(ValueError, match=r"evil-.-etc-passwd.png: not an image file PIL can read"):
        images.open_upload(b"\x89PNG garbage", "evil/../etc/passwd.png")
    with pytest.raises(ValueError, match="limit is"):
        images.open_upload(_png(), "big.png", max_bytes=10)
    with pytest.raises(ValueError, match="empty"):
        images.open_upload(b"", "empty.png")


def test_paired_difference_table_reads_the_compare_output() -> None:
    result = {
        "n_images": 30,
        "metrics": {"bleu1": {"a": 0.3, "b": 0.31, "diff": 0.01, "ci95": [-0.02, 0.04], "share_b_gt_a": 0.7}},
        "corpus": {"a": {"bleu1": 0.3}},
    }
    table = tables.paired_difference_table(result)
    assert list(table["metric"]) == ["BLEU-1"]
    assert table.loc[0, "95% CI of B − A"] == "[-0.0200, +0.0400]"
    assert table.loc[0, "B − A"] == "+0.0100"
    assert tables.paired_difference_table({"other": 1}).empty


def test_synthetic_boxes_reads_an_existing_set_only(artifacts: Path) -> None:
    from tests.support.dashboard_fixtures import write_image

    assert datasets.synthetic_boxes("synthetic:3") == {}  # not generated: nothing, and nothing generated
    assert not (artifacts / "datasets" / "synthetic-3-seed0").exists()
    folder = artifacts / "datasets" / "synthetic-3-seed0"
    lines = []
    for i in range(3):
        write_image(folder / "images" / f"s{i}.png", seed=i)
        box = {"finding": "cyst", "location": "left", "size": "small", "box": [0.1 * i, 0.1, 0.5, 0.6]}
        lines.append(json.dumps({"image_id": f"s{i}", "file": f"images/s{i}.png", "caption": "a cyst", "group": "g",
                                 "boxes": [box]}))  # fmt: skip
    (folder / "records.jsonl").write_text("\n".join(lines) + "\n")
    boxes = datasets.synthetic_boxes("synthetic:3")
    assert boxes["s2"][0]["box"] == pytest.approx([0.2, 0.1, 0.5, 0.6])
    assert datasets.synthetic_boxes("medpix:x") == {}


def test_modules_the_pages_import_load_neither_tensorflow_nor_streamlit() -> None:
    modules = ["app.tables", "app.datasets", "app.jobs", "app.seeds", "app.viz", "experiments.demo", "data.images",
               "eval.artifacts", "eval.paper", "eval.paired", "runs.folder", "runs.index", "base.procs"]  # fmt: skip
    code = "import sys; " + "; ".join(f"import medcap.{m}" for m in modules)
    code += "; print(sorted(m for m in ('tensorflow', 'keras', 'streamlit') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_runs_are_labelled_by_name_and_duplicates_by_id() -> None:
    from medcap.runs.index import RunInfo

    def info(run_id: str, name: str, example: bool = False) -> RunInfo:
        return RunInfo(run_id=run_id, path=Path(run_id), state="finished",
                       config={"run": {"preset": "model-80", "name": name}}, status={}, evals=[], example=example)

    runs = [info("20260101-a-demo-x1y2z3", "demo-model-80"), info("20260102-b-demo-q1w2e3", "demo-model-80"),
            info("20260103-c", ""), info("example-model-80", "demo-model-80", example=True)]
    assert tables.run_label(runs[2]) == "model-80"  # unnamed: its preset
    assert tables.run_labels(runs) == {"20260101-a-demo-x1y2z3": "demo-model-80 [20260101-a-demo-x1y2z3]",
                                       "20260102-b-demo-q1w2e3": "demo-model-80 [20260102-b-demo-q1w2e3]",
                                       "20260103-c": "model-80", "example-model-80": "demo-model-80 (example)"}


def test_tiny_differences_are_printed_legibly() -> None:
    from medcap.eval.artifacts import ci_text, num_text

    assert num_text(-0.00004) == "-4.00e-05" and num_text(0.0004) == "4.00e-04" and num_text(0.0006) == "0.001"
    assert num_text(0.0) == "0.000" and num_text(0.25, 4, signed=True) == "+0.2500" and num_text(None) == ""
    result = {"metrics": {"bleu4": {"a": 0.0123, "b": 0.01228, "diff": -0.00002, "ci95": [-0.00004, -0.00001],
                                    "share_b_gt_a": 0.0}}}
    row = tables.paired_difference_table(result).iloc[0]
    assert row["B − A"] == "-2.00e-05" and row["95% CI of B − A"] == "[-4.00e-05, -1.00e-05]"
    assert ci_text([0.281, 0.344]) == "[0.281, 0.344]"
    from medcap.cli.eval_cmd import format_compare

    text = format_compare({"run_a": "a", "run_b": "b", "preset_a": "model-80", "preset_b": "model-80",
                           "images": "shared", "n_images": 9, "n_resamples": 100, "seed": 0, **result})
    assert "-2.00e-05" in text and "[-4.00e-05, -1.00e-05]" in text and "-0.0000" not in text  # the CLI too
