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
    sub = stats.scores(np.bincount(idx, minlength=len(hyps)))  # the resample as image weights
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
    b = bs.bootstrap_ci(lambda w: float(w @ x / w.sum()), len(x), n=500, seed=7)
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


def test_group_weights_move_whole_groups_together() -> None:
    groups = ["a", "a", "b", "c", "c", "c"]
    w = bs.resample_weights(6, groups, n=300, seed=1)
    assert w.shape == (300, 6)
    assert (w[:, 0] == w[:, 1]).all() and (w[:, 3] == w[:, 4]).all() and (w[:, 4] == w[:, 5]).all()
    assert (w[:, 0] + w[:, 2] + w[:, 3] == 3).all()  # 3 groups drawn per resample
    assert (bs.resample_weights(6, groups, n=300, seed=1) == w).all()  # seeded
    image = bs.resample_weights(6, None, n=300, seed=1)
    assert (image.sum(axis=1) == 6).all()


def test_group_bootstrap_matches_hand_computed_distribution() -> None:
    # case A: two images scoring 1; case B: one image scoring 0. Drawing 2 cases with replacement:
    # AA (p 1/4) -> mean 1, AB (p 1/2) -> mean 2/3, BB (p 1/4) -> mean 0.
    x = np.array([1.0, 1.0, 0.0])
    w = bs.resample_weights(3, ["A", "A", "B"], n=8000, seed=0)
    means = bs.weighted_means(x, w)
    assert set(np.round(means, 6)) == {0.0, round(2 / 3, 6), 1.0}
    assert np.mean(means == 1.0) == pytest.approx(0.25, abs=0.02)
    assert np.mean(np.isclose(means, 2 / 3)) == pytest.approx(0.5, abs=0.02)
    assert bs.mean_ci(x, n=8000, seed=0, groups=["A", "A", "B"]) == (0.0, 1.0)
    # the image bootstrap sees k/3 for k ~ Binomial(3, 2/3): all-zero has p 1/27, not 1/4
    image_means = bs.weighted_means(x, bs.resample_weights(3, None, n=8000, seed=0))
    assert np.mean(image_means == 0.0) == pytest.approx(1 / 27, abs=0.01)


def test_group_interval_is_wider_for_correlated_images() -> None:
    # 40 cases of 5 identical images: resampling images pretends there are 200 independent values,
    # so its interval is ~sqrt(5) = 2.24x too narrow
    rng = np.random.default_rng(0)
    x = np.repeat(rng.random(40), 5)
    groups = np.repeat(np.arange(40), 5)
    lo_g, hi_g = bs.mean_ci(x, n=2000, seed=0, groups=groups)
    lo_i, hi_i = bs.mean_ci(x, n=2000, seed=0)
    assert 1.9 < (hi_g - lo_g) / (hi_i - lo_i) < 2.6
    refs, hyps = _corpus(4, n=60)
    stats = bs.BleuStats(refs, hyps)
    res = bs.paired_bootstrap(bs.bleu_metric("bleu1"), stats, stats, n=100, groups=[i // 3 for i in range(60)])
    assert res["unit"] == "group" and res["n_units"] == 20 and res["ci95"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="group labels"):
        bs.resample_weights(3, ["a"], n=10)
