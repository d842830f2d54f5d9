"""medcap.app.facts: per-image marks as text, clinical facts of evaluations and studies as tables."""

from __future__ import annotations

from medcap.app import facts

SCORE = {"correct": 0.5, "correct_ci": [0.25, 0.75], "wrong_of_stated": 0.2, "wrong_of_stated_ci": [0.0, 0.4],
         "not_stated": 0.375, "not_stated_ci": [0.1, 0.6]}


def test_marks_read_as_symbols_and_unlabelled_facts_are_left_out() -> None:
    row = {"fact_modality": "right", "fact_plane": "wrong", "fact_region": "no label", "nn_fact_modality": "not stated"}
    assert facts.fact_marks_text(row) == "modality ✓ · plane ✗"
    assert facts.fact_marks_text(row, prefix="nn_") == "modality –"
    assert facts.fact_marks_text({"prediction": "x"}) == ""


def test_evaluation_facts_become_rows_per_run_system_and_fact() -> None:
    metrics = {"run a": {"clinical_facts": {"systems": ["model", "nearest_neighbour"],
                                            "model": {"modality": SCORE},
                                            "nearest_neighbour": {"modality": {**SCORE, "wrong_of_stated": None}}}},
               "old run": {"model": {}}}
    table = facts.facts_table(metrics)
    assert list(table["system"]) == ["model", "nearest neighbour"]
    first = table.iloc[0]
    assert first["run"] == "run a" and first["fact"] == "modality"
    assert first["right (of all images)"] == "0.500 [0.250, 0.750]" and first["not stated"] == "0.375 [0.100, 0.600]"
    assert table.iloc[1]["wrong (of stated)"] == "–"  # nothing stated: no share
    assert facts.facts_table({"old run": {"model": {}}}).empty


def test_a_studys_pooled_facts_become_rows() -> None:
    table = facts.pooled_facts_table({"medcap-facts": {"plane": SCORE}, "1-NN · pool A": {"region": SCORE}})
    assert list(zip(table["system"], table["fact"], strict=True)) == [("medcap-facts", "plane"),
                                                                     ("1-NN · pool A", "region")]
    assert facts.pooled_facts_table(None).empty
