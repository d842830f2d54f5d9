"""Bootstrap CIs: fast BLEU equals NLTK, seeded reproducibility, paired comparisons."""

from __future__ import annotations

import random

import numpy as np
import pytest
from nltk.translate.bleu_score import corpus_bleu

from medcap.eval import bootstrap as bs
from medcap.eval.metrics import BLEU_WEIGHTS


def _corpus(seed: int, n: int = 80) -> tuple[list, list]:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(12)]
    refs = [[[rng.choice(words) for _ in range(rng.randint(1, 15))] for _ in range(rng.randint(1, 3))]
            for _ in range(n)]
    hyps = [[rng.choice(words) for _ in range(rng.randint(0, 15))] for _ in range(n)]
    return refs, hyps


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_bleu_equals_nltk_on_full_set_and_subsets(seed: int) -> None:
    refs, hyps = _corpus(seed)
    stats = bs.BleuStats(refs, hyps)
    full = stats.scores()
    for name, w in BLEU_WEIGHTS.items():
        assert full[name] == pytest.approx(corpus_bleu(refs, hyps, weights=w), rel=1e-12, abs=1e-300)
    idx = np.random.default_rng(seed).integers(0, len(hyps), size=len(hyps))  # a resample, duplicates included
    sub = stats.scores(idx)
    sub_refs, sub_hyps = [refs[i] for i in idx], [hyps[i] for i in idx]
    for name, w in BLEU_WEIGHTS.items():
        assert sub[name] == pytest.approx(corpus_bleu(sub_refs, sub_hyps, weights=w), rel=1e-12, abs=1e-300)


def test_fast_bleu_edge_cases() -> None:
    stats = bs.BleuStats([[["a", "b"]], [["c"]]], [[], []])
    assert stats.scores() == dict.fromkeys(BLEU_WEIGHTS, 0.0)
    same = bs.BleuStats([[["a", "b", "c", "d"]]], [["a", "b", "c", "d"]])
    assert same.scores() == pytest.approx(dict.fromkeys(BLEU_WEIGHTS, 1.0))
    short = bs.BleuStats([[["a", "b", "c"]]], [["a", "b", "c"]]).scores()  # no 4-gram: NLTK's ~0 BLEU-4
    assert short["bleu3"] == pytest.approx(1.0)
    assert short["bleu4"] == pytest.approx(corpus_bleu([[["a", "b", "c"]]], [["a", "b", "c"]]), rel=1e-12)
    assert short["bleu4"] < 1e-50
    with pytest.raises(ValueError, match="image #0 has no reference"):
        bs.BleuStats([[]], [["a"]])


def test_bootstrap_reproducible_and_contains_point_estimate() -> None:
    refs, hyps = _corpus(5, n=150)
    stats = bs.BleuStats(refs, hyps)
    ci1 = bs.bootstrap_bleu(stats, n=1000, seed=0)
    ci2 = bs.bootstrap_bleu(stats, n=1000, seed=0)
    ci3 = bs.bootstrap_bleu(stats, n=1000, seed=1)
    assert ci1 == ci2
    assert ci1 != ci3
    point = stats.scores()
    for name in ("bleu1", "bleu2", "bleu3"):
        lo, hi = ci1[name]
        assert lo < point[name] < hi


def test_mean_ci_and_generic_ci_agree() -> None:
    x = np.random.default_rng(3).random(200)
    a = bs.mean_ci(x, n=500, seed=7)
    b = bs.bootstrap_ci(lambda idx: float(x[idx].mean()), len(x), n=500, seed=7)
    assert a == pytest.approx(b)
    assert a[0] < x.mean() < a[1]
    # known width: standard error of a U(0,1) mean over 200 items is ~0.0204 -> 95% CI ~0.08 wide
    assert 0.06 < a[1] - a[0] < 0.10
    with pytest.raises(ValueError, match="0 items"):
        bs.mean_ci([])


def test_paired_bootstrap_with_itself_is_exactly_zero() -> None:
    refs, hyps = _corpus(2)
    stats = bs.BleuStats(refs, hyps)
    res = bs.paired_bootstrap(bs.bleu_metric("bleu1"), stats, stats, n=200)
    assert res["diff"] == 0.0
    assert res["ci95"] == [0.0, 0.0]
    assert res["share_b_gt_a"] == 0.0
    assert res["a"] == pytest.approx(corpus_bleu(refs, hyps, weights=(1, 0, 0, 0)))


def test_paired_bootstrap_detects_a_real_difference() -> None:
    rng = np.random.default_rng(0)
    a = rng.random(300)
    b = a + 0.05 + rng.normal(0, 0.01, 300)  # B better on every image
    res = bs.paired_bootstrap(bs.mean_metric, a, b, n=500, seed=0)
    assert res["diff"] == pytest.approx(float(b.mean() - a.mean()))
    assert res["ci95"][0] > 0.04
    assert res["share_b_gt_a"] == 1.0
    reverse = bs.paired_bootstrap(bs.mean_metric, b, a, n=500, seed=0)
    assert reverse["share_b_gt_a"] == 0.0
    with pytest.raises(ValueError, match="must be paired"):
        bs.paired_bootstrap(bs.mean_metric, a, b[:10])
