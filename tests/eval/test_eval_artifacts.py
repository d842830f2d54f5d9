"""medcap.eval.artifacts: reading an evaluation's metrics, predictions and attention; metric tables."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from medcap.app import tables
from medcap.eval import artifacts as eval_artifacts
from medcap.eval import paper
from tests.support.dashboard_fixtures import FINISHED70_ID, FINISHED_ID, full_state


@pytest.fixture
def full(artifacts: Path) -> Path:
    full_state(artifacts)
    return artifacts / "runs"


def test_metric_tables(full: Path) -> None:
    metrics = {
        "A": eval_artifacts.read_metrics(full / FINISHED_ID, "test"),
        "B": eval_artifacts.read_metrics(full / FINISHED70_ID, "test"),
    }
    long = eval_artifacts.metrics_table(metrics)
    row = long[(long["series"] == "B") & (long["metric"] == "BLEU-1")].iloc[0]
    assert (row["value"], row["lo"], row["hi"]) == pytest.approx((0.29, 0.26, 0.32))
    side = eval_artifacts.side_by_side(long)
    assert side.loc["BLEU-1", "A"] == "0.312 [0.281, 0.344]"
    assert side.loc["BLEU-4", "A · most-frequent baseline"] == "—"  # the baseline reports BLEU-1/2 only
    assert list(side.index[:2]) == ["BLEU-1", "BLEU-2"]
    nw = eval_artifacts.next_word_table(metrics)
    assert nw.loc["F1 (macro)", "A"] == pytest.approx(0.38)
    beside = paper.comparison(metrics, {"A": "model-80", "B": "model-70"}).set_index(["run", "figure"])
    assert math.isnan(beside.loc[("A", "bleu1"), "difference"])  # synthetic data beside MedICaT: no difference
    assert beside.loc[("A", "bleu1"), "note"].startswith("different data: not comparable")
    assert beside.loc[("B", "accuracy"), "paper"] == pytest.approx(0.3936)
    medicat = {"A": {**metrics["A"], "dataset": "medicat:/data/medicat"}}
    same = paper.comparison(medicat, {"A": "model-80"}).set_index(["run", "figure"])
    assert same.loc[("A", "bleu1"), "difference"] == pytest.approx(0.312 - 0.309)
    assert same.loc[("A", "bleu1"), "medcap 95% CI"] == "[0.2810, 0.3440]" and same.loc[("A", "bleu1"), "note"] == ""


def test_read_metrics_errors_name_the_file(full: Path) -> None:
    path = full / FINISHED_ID / "eval" / "test" / "metrics.json"
    path.write_text("{broken")
    with pytest.raises(ValueError, match=r"metrics\.json"):
        eval_artifacts.read_metrics(full / FINISHED_ID, "test")
    with pytest.raises(ValueError, match="cannot read"):
        eval_artifacts.read_metrics(full / FINISHED_ID, "nope")


def test_predictions_parse_filter_and_sort(full: Path) -> None:
    df = eval_artifacts.read_predictions(full / FINISHED_ID, "test")
    assert len(df) == 6
    assert df.loc[0, "reference"] == "axial ct shows a lesion in the liver"
    worst = tables.filter_predictions(df)
    assert worst["image_id"].iloc[0] == "img00000"
    ct = tables.filter_predictions(df, modality=["CT"], length=(8, 10))
    assert set(ct["image_id"]) == {"img00000", "img00002"}  # CT rows with ref_len 8..10


def test_predictions_missing_columns_is_a_clear_error(full: Path) -> None:
    path = full / FINISHED_ID / "eval" / "test" / "predictions.csv"
    path.write_text("image_id,prediction\na,b\n")
    with pytest.raises(ValueError, match=r"predictions.csv: lacks columns \['image_path', 'references', 'bleu1'\]"):
        eval_artifacts.read_predictions(full / FINISHED_ID, "test")


def test_attention_reading(full: Path) -> None:
    att = eval_artifacts.read_attention(full / FINISHED_ID, "test", "img00002")
    assert att is not None and att.shape == (10, 7, 7) and att.dtype == np.float32
    assert att[0, 2, 6] == pytest.approx(0.8, abs=1e-3)
    assert eval_artifacts.read_attention(full / FINISHED_ID, "test", "unknown") is None
    assert eval_artifacts.attention_ids(full / FINISHED_ID, "test")[:2] == ["img00000", "img00001"]
