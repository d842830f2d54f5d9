"""Seed groups and their mean +- sd; image reliance table with older evaluations."""

from __future__ import annotations

from pathlib import Path

import pytest

from medcap.app.seeds import reliance_table, seed_groups, seed_summary
from medcap.runs.index import RunInfo


def _info(run_id: str, **run: object) -> RunInfo:
    base = {"preset": "model-80", "dataset": "synthetic", "seed": 1, "split_seed": 0, "name": run_id}
    return RunInfo(run_id=run_id, path=Path(run_id), state="finished", config={"run": {**base, **run}},
                   status={}, evals=[])


def test_seed_groups_and_summary() -> None:
    runs = [_info("a", seed=1), _info("b", seed=2), _info("c", seed=3), _info("d", seed=1, preset="model-70"),
            _info("e", seed=1, split_seed=5)]
    groups = seed_groups(runs)
    assert [[i.run_id for i in g] for g in groups] == [["a", "b", "c"]]
    metrics = {r: {"model": {"bleu1": {"value": v, "ci95": [v - 0.02, v + 0.02]}}}
               for r, v in (("a", 0.30), ("b", 0.32), ("c", 0.34))}
    table = seed_summary(metrics, keys=("bleu1",))
    row = table.iloc[0]
    assert row["n_seeds"] == 3 and row["mean"] == pytest.approx(0.32) and row["sd"] == pytest.approx(0.02)
    assert row["mean CI half-width"] == pytest.approx(0.02)
    # older runs without split_seed: their seed chose the split too, so different seeds are different splits
    old = [_info("x", seed=1, split_seed=None), _info("y", seed=2, split_seed=None)]
    assert seed_groups(old) == []


def test_reliance_table_says_not_computed_for_older_evaluations() -> None:
    new = {"image_reliance": {"metrics": {"bleu1": {"value": 0.05, "ci95": [0.01, 0.09]},
                                          "bleu4": {"value": 0.0, "ci95": [0.0, 0.0]},
                                          "cider": {"value": 0.2, "ci95": [0.1, 0.3]}}}}
    table = reliance_table({"new": new, "old": {"model": {}}})
    assert table.loc[0, "bleu1"] == "+0.0500 [+0.0100, +0.0900]"
    assert (table.loc[1, ["bleu1", "bleu4", "cider"]] == "not computed").all()


def test_seed_groups_count_distinct_seeds_only() -> None:
    from medcap.app.seeds import repeated_seed_runs

    runs = [_info("new42", seed=42), _info("old42", seed=42), _info("again42", seed=42), _info("s7", seed=7)]
    groups = seed_groups(runs)
    assert [[i.run_id for i in g] for g in groups] == [["new42", "s7"]]  # 2 distinct seeds, the newest run of 42
    assert [i.run_id for i in repeated_seed_runs(runs, groups[0])] == ["old42", "again42"]
    assert seed_groups([_info("a", seed=42), _info("b", seed=42), _info("c", seed=42)]) == []  # one seed: no spread


def test_reliance_table_shows_both_parts_of_a_retrieval_augmented_run_and_tiny_values_legibly() -> None:
    whole = {k: {"value": 0.04, "ci95": [0.01, 0.07]} for k in ("bleu1", "bleu4", "cider")}
    neural = {k: {"value": -0.00002, "ci95": [-0.00004, -0.00001]} for k in ("bleu1", "bleu4", "cider")}
    table = reliance_table({"best": {"image_reliance": {"metrics": whole, "neural_part": neural}}})
    assert list(table["run"]) == ["best · whole system (features and memory swapped)",
                                  "best · neural part (features swapped, memory held)"]
    assert table.loc[1, "bleu4"] == "-2.00e-05 [-4.00e-05, -1.00e-05]"  # never "-0.0000 [-0.0000, -0.0000]"
