"""medcap.eval.metrics against the reference libraries on the same inputs, plus edge cases."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from medcap.eval import metrics as m

REFS = [
    [["axial", "ct", "of", "the", "head", "shows", "a", "large", "mass"]],
    [["sagittal", "t1", "mri", "of", "the", "spine"], ["t1", "sagittal", "spine", "image"]],
    [["chest", "x", "ray", "with", "left", "effusion"]],
    [["axial", "flair"]],
]
HYPS = [
    ["axial", "ct", "of", "the", "head", "shows", "a", "mass"],
    ["sagittal", "mri", "of", "the", "spine"],
    ["chest", "ct", "with", "effusion"],
    ["axial", "t2"],
]


def _random_corpus(seed: int, n: int = 60) -> tuple[list, list]:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(15)]
    refs = [[[rng.choice(words) for _ in range(rng.randint(1, 12))] for _ in range(rng.randint(1, 3))]
            for _ in range(n)]
    hyps = [[rng.choice(words) for _ in range(rng.randint(0, 12))] for _ in range(n)]
    return refs, hyps


def test_corpus_bleu_equals_nltk_with_cumulative_weights() -> None:
    got = m.corpus_bleu_scores(REFS, HYPS)
    for name, weights in m.BLEU_WEIGHTS.items():
        assert got[name] == pytest.approx(corpus_bleu(REFS, HYPS, weights=weights), abs=1e-12)
    # BLEU-1 by hand: clipped unigram matches 8 + 5 + 3 + 1 = 17 of 8 + 5 + 4 + 2 = 19 words,
    # hypothesis length 19 vs closest reference lengths 9 + 4 (tie 6/4 for a 5-word hypothesis: the shorter)
    # + 6 + 2 = 21 -> brevity penalty exp(1 - 21/19).
    assert got["bleu1"] == pytest.approx(17 / 19 * math.exp(1 - 21 / 19), rel=1e-12)
    assert got["bleu1"] > got["bleu2"] > got["bleu3"] > got["bleu4"] > 0


def test_corpus_bleu_random_corpora_match_nltk() -> None:
    for seed in range(3):
        refs, hyps = _random_corpus(seed)
        got = m.corpus_bleu_scores(refs, hyps)
        want = corpus_bleu(refs, hyps, weights=list(m.BLEU_WEIGHTS.values()))
        assert [got[k] for k in m.BLEU_WEIGHTS] == pytest.approx(want, abs=1e-12)


def test_sentence_bleu_equals_nltk_method1() -> None:
    smooth = SmoothingFunction().method1
    for refs, hyp in zip(REFS, HYPS, strict=True):
        got = m.sentence_bleu_scores(refs, hyp)
        for name, weights in m.BLEU_WEIGHTS.items():
            assert got[name] == pytest.approx(sentence_bleu(refs, hyp, weights=weights, smoothing_function=smooth))
    # unsmoothed: a hypothesis with no bigram match has BLEU-2 ~ 0 but BLEU-1 > 0
    raw = m.sentence_bleu_scores([["a", "b", "c"]], ["c", "a"], smoothing=None)
    assert raw["bleu1"] == pytest.approx(math.exp(1 - 3 / 2))
    assert raw["bleu2"] < 1e-100


def test_identical_captions_score_one() -> None:
    long = [h for h in HYPS if len(h) >= 4]
    refs = [[h] for h in long]
    assert m.corpus_bleu_scores(refs, long) == pytest.approx(dict.fromkeys(m.BLEU_WEIGHTS, 1.0))
    assert m.rouge_l([[h] for h in HYPS], HYPS).value == pytest.approx(1.0)
    assert m.sentence_bleu_scores([HYPS[0]], HYPS[0]) == pytest.approx(dict.fromkeys(m.BLEU_WEIGHTS, 1.0))
    # a 2-word caption has no 3-/4-grams: unsmoothed NLTK gives BLEU-1/2 = 1 and BLEU-3/4 ~ 0, as do we
    short = m.corpus_bleu_scores([[["axial", "flair"]]], [["axial", "flair"]])
    assert (short["bleu1"], short["bleu2"]) == pytest.approx((1.0, 1.0))
    assert short["bleu4"] < 1e-100


def test_empty_prediction_gives_zero_without_crash() -> None:
    refs = [[["a", "ct", "scan"]], [["axial", "mri"]]]
    assert m.corpus_bleu_scores(refs, [[], []]) == dict.fromkeys(m.BLEU_WEIGHTS, 0.0)
    assert m.sentence_bleu_scores(refs[0], []) == dict.fromkeys(m.BLEU_WEIGHTS, 0.0)
    r = m.rouge_l(refs, [[], ["axial", "mri"]])
    assert r.per_image.tolist() == pytest.approx([0.0, 1.0])
    c = m.cider(refs, [[], ["axial", "mri"]])
    assert c.per_image[0] == 0.0
    assert c.per_image[1] > 0
    # one empty hypothesis among good ones: corpus BLEU stays the NLTK value
    hyps = [*HYPS[:-1], []]
    got = m.corpus_bleu_scores(REFS, hyps)
    assert got["bleu1"] == pytest.approx(corpus_bleu(REFS, hyps, weights=(1, 0, 0, 0)))


def test_one_word_reference() -> None:
    refs = [[["effusion"]], [["mass"]]]
    hyps = [["effusion"], ["left", "mass"]]
    got = m.corpus_bleu_scores(refs, hyps)
    assert got["bleu1"] == pytest.approx(corpus_bleu(refs, hyps, weights=(1, 0, 0, 0)))
    assert got["bleu1"] == pytest.approx(2 / 3)  # 2 of 3 words match; hypothesis longer: no penalty
    assert m.sentence_bleu_scores(refs[0], hyps[0])["bleu1"] == pytest.approx(1.0)
    assert m.rouge_l(refs, hyps).per_image[0] == pytest.approx(1.0)


def test_empty_corpus_and_mismatched_lengths() -> None:
    assert m.corpus_bleu_scores([], []) == dict.fromkeys(m.BLEU_WEIGHTS, 0.0)
    with pytest.raises(ValueError, match="2 reference sets but 1 hypotheses"):
        m.corpus_bleu_scores(REFS[:2], HYPS[:1])
    with pytest.raises(ValueError, match="image #1 has no reference"):
        m.rouge_l([[["a"]], []], [["a"], ["b"]])


def _coco(refs: list, hyps: list) -> tuple[dict, dict]:
    return ({i: [" ".join(t) for t in r] for i, r in enumerate(refs)},
            {i: [" ".join(h)] for i, h in enumerate(hyps)})


def test_rouge_l_and_cider_equal_pycocoevalcap() -> None:
    gts, res = _coco(REFS, HYPS)
    want_r, want_r_per = Rouge().compute_score(gts, res)
    got_r = m.rouge_l(REFS, HYPS)
    assert got_r.value == pytest.approx(want_r)
    np.testing.assert_allclose(got_r.per_image, want_r_per)
    want_c, want_c_per = Cider().compute_score(gts, res)
    got_c = m.cider(REFS, HYPS)
    assert got_c.value == pytest.approx(want_c)
    np.testing.assert_allclose(got_c.per_image, want_c_per)
    assert got_c.value == pytest.approx(got_c.per_image.mean())
    # ROUGE-L of image 0 by hand: LCS 8, precision 8/8, recall 8/9, beta 1.2
    p, r, b2 = 1.0, 8 / 9, 1.2**2
    assert got_r.per_image[0] == pytest.approx((1 + b2) * p * r / (r + b2 * p))


def test_cider_all_empty_references_is_zero() -> None:
    got = m.cider([[[]], [[]]], [["a"], []])
    assert got.value == 0.0
    assert got.per_image.tolist() == [0.0, 0.0]


def test_meteor_skipped_without_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(m.shutil, "which", lambda name: None)
    got = m.meteor(REFS, HYPS)
    assert got.skipped is not None
    assert "java not found" in got.skipped
    assert math.isnan(got.value)


def test_meteor_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    if m.java_available() is not None:
        pytest.skip("java not available")
    refs = [[h] for h in HYPS[:2]] + [[["axial", "flair"]]]
    hyps = [*HYPS[:2], []]
    got = m.meteor(refs, hyps)
    assert got.skipped is None
    assert got.per_image[0] == pytest.approx(1.0, abs=0.01)  # identical captions (METEOR's fragmentation penalty)
    assert got.per_image[2] == 0.0
    assert 0.0 < got.value < 1.0


def test_classification_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 12, size=300)
    y_pred = np.where(rng.random(300) < 0.5, y_true, rng.integers(0, 15, size=300))
    got = m.classification_metrics(y_true, y_pred)
    assert got["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert got["n_pairs"] == 300
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average=avg, zero_division=0)
        assert got[f"precision_{avg}"] == pytest.approx(p)
        assert got[f"recall_{avg}"] == pytest.approx(r)
        assert got[f"f1_{avg}"] == pytest.approx(f)
    assert got["recall_weighted"] == pytest.approx(got["accuracy"])
    assert set(got) - {"n_pairs"} <= set(m.DEFINITIONS)


def test_classification_metrics_known_values() -> None:
    # classes 1, 2, 3: precision 1, 0 (never predicted -> zero_division 0), 2/3; recall 1, 0, 1
    got = m.classification_metrics([1, 2, 3, 3], [1, 3, 3, 3])
    assert got["accuracy"] == pytest.approx(0.75)
    assert got["precision_macro"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    assert got["recall_macro"] == pytest.approx(2 / 3)
    assert got["precision_weighted"] == pytest.approx((1 * 1 + 0 * 1 + 2 / 3 * 2) / 4)
    with pytest.raises(ValueError, match="2 true labels but 1 predictions"):
        m.classification_metrics([1, 2], [1])


def test_provenance_names_every_metric() -> None:
    prov = m.provenance()
    for name in (*m.CORPUS_METRICS, "sentence_bleu", "next_word"):
        assert prov[name]["version"] != ""
    assert "no smoothing" in prov["bleu1"]["smoothing"]
    assert "method1" in prov["sentence_bleu"]["smoothing"]
