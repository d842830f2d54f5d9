"""Next-word metrics (the paper's thresholded P/R/F1, restricted arg-max, baselines) and caption health."""

from __future__ import annotations

import numpy as np
import pytest

from medcap.eval import baselines
from medcap.eval.health import caption_health, has_adjacent_repeat, has_repeated_bigram
from medcap.eval.nextword import majority_next_word, next_word_metrics, paper_prf, paper_prf_counts


def _probs(seed: int, p: int = 400, v: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.5, size=(p, v))  # peaked enough that many rows pass 0.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs.astype(np.float32), rng.integers(0, v, size=p)


@pytest.mark.parametrize("seed", [0, 1])
def test_paper_prf_equals_keras_precision_recall_on_one_hot(seed: int) -> None:
    import keras

    probs, targets = _probs(seed)
    one_hot = np.eye(probs.shape[1], dtype=np.float32)[targets]
    kp, kr = keras.metrics.Precision(), keras.metrics.Recall()
    kp.update_state(one_hot, probs)
    kr.update_state(one_hot, probs)
    ours = paper_prf(*paper_prf_counts(probs, targets))
    assert ours["precision"] == pytest.approx(float(kp.result()), abs=1e-6)
    assert ours["recall"] == pytest.approx(float(kr.result()), abs=1e-6)
    assert 0 < ours["recall"] < ours["precision"] < 1
    assert ours["f1"] == pytest.approx(2 * ours["precision"] * ours["recall"] / (ours["precision"] + ours["recall"]))


def test_paper_prf_reproduces_the_papers_f1_from_its_p_and_r() -> None:
    # the paper's Model-80: P 0.7095, R 0.3031 -> F1 0.4247 (reported 0.4244); Model-70: 0.6336, 0.1849 -> 0.2863
    assert paper_prf(7095, 10000, 23408)["f1"] == pytest.approx(0.4247, abs=2e-4)
    assert paper_prf(0, 0, 0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


class _TableModel:
    """Answers fixed probabilities per prefix's last token: a model whose output we know."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = table

    def __call__(self, inputs: dict, training: bool = False) -> dict:
        prefix = np.asarray(inputs["prefix"])
        last = np.array([row[row > 0][-1] for row in prefix])
        return {"probs": self.table[last]}


def test_next_word_metrics_restricted_argmax_unk_and_majority() -> None:
    # vocab: 0 pad, 1 unk, 2 start, 3 end, 4 "a", 5 "b"
    table = np.full((6, 6), 0.02, dtype=np.float32)
    table[2] = [0.0, 0.6, 0.0, 0.0, 0.3, 0.1]  # after <start>: <unk> is the raw arg-max, "a" the allowed one
    table[4] = [0.0, 0.0, 0.0, 0.1, 0.2, 0.7]  # after "a": "b"
    table[5] = [0.0, 0.0, 0.0, 0.9, 0.05, 0.05]  # after "b": <end>
    table[1] = [0.0, 0.0, 0.0, 0.8, 0.1, 0.1]
    model = _TableModel(table)
    feats = np.zeros((2, 4), dtype=np.float32), np.zeros((2, 7, 7, 512), dtype=np.float32)
    # captions "a b" and "<unk> b": pairs (start->a), (a->b), (b->end), (start->unk), (unk->b), (b->end)
    m = next_word_metrics(model, *feats, [[4, 5], [1, 5]], start_id=2, end_id=3, max_len=4, unk_id=1,
                          banned=[0, 1, 2], train_token_ids=[[4, 4, 5], [4]])
    # restricted predictions: a, b, end, a, end, end -> right on pairs 1, 2, 3, 6 -> 4/6
    assert m["n_pairs"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["unk_target_rate"] == pytest.approx(1 / 6)
    assert m["accuracy_excl_unk"] == pytest.approx(4 / 5)
    assert m["end_target_rate"] == pytest.approx(2 / 6)
    # training targets: a a b end a end -> "a" (3) is the majority; it is right on 1 of 6 pairs
    assert m["majority_baseline"] == {"word_id": 4, "accuracy": pytest.approx(1 / 6)}
    # paper definition: cells > 0.5: rows 1 (unk 0.6, target a: FP), 2 (b 0.7: TP), 3 (end 0.9: TP),
    # 4 (unk 0.6, target unk: TP), 5 (end 0.8, target b: FP), 6 (end 0.9: TP) -> P 4/6, R 4/6
    assert m["paper_definition"]["precision"] == pytest.approx(4 / 6)
    assert m["paper_definition"]["recall"] == pytest.approx(4 / 6)
    # Keras accuracy (unrestricted arg-max): unk, b, end, unk, end, end -> right on 2, 3, 4, 6
    assert m["paper_definition"]["accuracy"] == pytest.approx(4 / 6)
    assert majority_next_word([[4, 4]], 2, 3, banned=[4]) == 3


def test_caption_health_known_values() -> None:
    hyps = [["ct", "ct", "ct"], ["the", "right", "the", "right"], ["axial", "ct"], ["axial", "ct"], []]
    refs = [[["a", "b"]], [["c"]], [["d", "e", "f"]], [["g"]], [["h", "i"]]]
    h = caption_health(hyps, refs)
    assert h["adjacent_repeat_share"] == pytest.approx(1 / 5)
    assert h["repeated_bigram_share"] == pytest.approx(2 / 5)  # "ct ct" twice, "the right" twice
    assert h["distinct_captions"] == 4 and h["distinct_caption_ratio"] == pytest.approx(4 / 5)
    assert h["distinct_words"] == 4
    assert h["mean_length"] == pytest.approx(11 / 5)
    assert h["reference_mean_length"] == pytest.approx(9 / 5)
    assert h["empty_share"] == pytest.approx(1 / 5)
    assert has_adjacent_repeat(["a", "a"]) and not has_adjacent_repeat(["a", "b", "a"])
    assert not has_repeated_bigram(["a", "b", "a"]) and has_repeated_bigram(["a", "b", "a", "b"])
    with pytest.raises(ValueError, match="reference sets"):
        caption_health([["a"]], [])


def test_most_frequent_caption_counts_each_case_once() -> None:
    caps = [["x"], ["x"], ["x"], ["y"], ["y"]]
    assert baselines.most_frequent_caption(caps) == ["x"]  # per image: x 3, y 2
    # per case: x only in case 1 (three images), y in cases 2 and 3
    assert baselines.most_frequent_caption(caps, groups=["1", "1", "1", "2", "3"]) == ["y"]
    with pytest.raises(ValueError, match="group labels"):
        baselines.most_frequent_caption(caps, groups=["1"])


def test_paper_columns_pair_with_the_same_definition_and_older_files_say_not_computed() -> None:
    from medcap.eval import paper

    new = {"next_word": {"accuracy": 0.3, "precision_macro": 0.02,
                         "paper_definition": {"accuracy": 0.25, "precision": 0.6, "recall": 0.2, "f1": 0.3}},
           "model": {"bleu1": {"value": 0.1}, "bleu2": {"value": 0.05}}}
    old = {"next_word": {"accuracy": 0.3, "precision_macro": 0.02}, "model": {"bleu1": {"value": 0.1}}}
    table = paper.comparison({"new": new, "old": old}, {"new": "model-80", "old": "model-80"})
    row = table[(table["run"] == "new") & (table["figure"] == "precision")].iloc[0]
    assert row["medcap"] == 0.6 and row["paper"] == pytest.approx(0.7095)  # not the macro 0.02
    assert table[(table["run"] == "new") & (table["figure"] == "accuracy")].iloc[0]["medcap"] == 0.25
    old_rows = table[(table["run"] == "old") & table["figure"].isin(["precision", "recall", "f1", "accuracy"])]
    assert old_rows["medcap"].isna().all() and old_rows["note"].str.startswith("not computed").all()
