"""The paper's tables as data, and the pure baselines."""

from __future__ import annotations

import numpy as np
import pytest

from medcap.eval import baselines, paper


def test_table2_values() -> None:
    rows = {r["preset"]: r for r in paper.TABLE2}
    assert (rows["model-80"]["accuracy"], rows["model-80"]["precision"], rows["model-80"]["recall"],
            rows["model-80"]["f1"]) == (0.4941, 0.7095, 0.3031, 0.4244)
    assert (rows["model-70"]["accuracy"], rows["model-70"]["precision"], rows["model-70"]["recall"],
            rows["model-70"]["f1"]) == (0.3936, 0.6336, 0.1849, 0.2862)
    assert (rows["model-80"]["split"], rows["model-80"]["batch_size"]) == ("80/10/10", 64)
    assert (rows["model-70"]["split"], rows["model-70"]["batch_size"]) == ("70/15/15", 128)
    assert rows["model-80"]["max_epochs"] == rows["model-70"]["max_epochs"] == 100


def test_table3_and_table4_values() -> None:
    t3 = {r["preset"]: r for r in paper.TABLE3}
    assert (t3["model-80"]["bleu1"], t3["model-80"]["bleu2"]) == (0.309, 0.205)
    assert (t3["model-70"]["bleu1"], t3["model-70"]["bleu2"]) == (0.310, 0.207)
    assert round(t3["model-70"]["bleu1"] - t3["model-80"]["bleu1"], 6) == 0.001  # the paper's claimed edge
    t4 = paper.tables()["table4"]
    assert [r["bleu1"] for r in t4] == [0.309, 0.310]
    assert all(r["bleu4"] is None for r in t4)  # not reported: never invented
    assert "not stored" in paper.TABLE4_NOTE


def test_paper_figures_by_preset() -> None:
    assert paper.paper_figures("model-80") == {"accuracy": 0.4941, "precision": 0.7095, "recall": 0.3031,
                                               "f1": 0.4244, "bleu1": 0.309, "bleu2": 0.205}
    assert paper.paper_figures("model-70")["bleu2"] == 0.207
    assert paper.paper_figures("official") == {}
    t = paper.tables()
    t["table2"][0]["accuracy"] = 0.0
    assert paper.TABLE2[0]["accuracy"] == 0.4941  # copies, the package data is untouched


def test_most_frequent_caption_ties_go_to_first_seen() -> None:
    caps = [["a", "b"], ["c"], ["c"], ["a", "b"], ["d"]]
    assert baselines.most_frequent_caption(caps) == ["a", "b"]
    assert baselines.most_frequent_caption([["x"], ["y"], ["y"]]) == ["y"]
    with pytest.raises(ValueError, match="no captions"):
        baselines.most_frequent_caption([])


def test_nearest_neighbour_is_cosine_not_euclidean() -> None:
    train = np.array([[1.0, 0.0], [0.0, 1.0], [10.0, 10.5]], dtype=np.float16)
    queries = np.array([[0.1, 0.1], [3.0, 0.2], [0.0, 5.0]], dtype=np.float16)
    idx, caps = baselines.nearest_neighbour_captions(train, [["a"], ["b"], ["c"]], queries)
    # (0.1, 0.1) points along the diagonal: row 2 by cosine although row 0/1 are closer in Euclidean terms
    assert idx.tolist() == [2, 0, 1]
    assert caps == [["c"], ["a"], ["b"]]
    with pytest.raises(ValueError, match="feature dims differ"):
        baselines.nearest_neighbour_captions(train, [["a"], ["b"], ["c"]], np.zeros((1, 3)))


def test_dashboard_facing_eval_modules_do_not_import_tensorflow() -> None:
    import subprocess
    import sys

    code = ("import sys, medcap.eval, medcap.eval.metrics, medcap.eval.paper, medcap.eval.bootstrap; "
            "medcap.eval.evaluate_run; medcap.eval.compare_runs; print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_f1_note_says_the_stored_f1_is_not_the_harmonic_mean() -> None:
    from medcap.eval.report import NEXT_WORD_DEFINITIONS

    row = paper.TABLE2[0]
    harmonic = 2 * row["precision"] * row["recall"] / (row["precision"] + row["recall"])
    assert round(harmonic, 4) == 0.4247 and row["f1"] == 0.4244  # the paper's own figures disagree slightly
    for text in (paper.NOTES["table2"], NEXT_WORD_DEFINITIONS["next_word.paper_definition"]):
        assert "0.4244" in text and "0.4247" in text and "not exactly" in text.lower()
        assert "F1 is exactly" not in text
