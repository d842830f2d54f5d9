"""Two-level bootstrap (cases, then a training seed per case) and scores pooled over seeds."""

from __future__ import annotations

import numpy as np
import pytest

from medcap.eval import bootstrap as bs
from medcap.eval import seeded

REFS = [[["a", "small", "nodule", "left"]], [["a", "large", "mass", "right"]], [["no", "finding", "seen", "here"]],
        [["a", "small", "effusion", "left"]], [["a", "large", "nodule", "right"]], [["a", "cavity", "left", "apex"]]]
GROUPS = ["c1", "c1", "c2", "c2", "c3", "c3"]
GOOD = [r[0] for r in REFS]
BAD = [["x", "y", "z", "w"]] * 6


def test_one_seed_is_exactly_the_case_bootstrap() -> None:
    two = seeded.two_level_weights(6, GROUPS, 1, n=50, seed=3)
    assert np.array_equal(two, bs.resample_weights(6, GROUPS, 50, 3))


def test_each_drawn_case_takes_one_seed_for_all_its_images() -> None:
    w = seeded.two_level_weights(6, GROUPS, 3, n=200, seed=0)  # (200, 3 * 6)
    assert w.shape == (200, 18)
    per_seed = w.reshape(200, 3, 6)  # (n, S, N)
    assert np.array_equal(per_seed.sum(axis=1).sum(axis=1), np.full(200, 6))  # 3 cases x 2 images per row
    for s in range(3):  # images of one case always come together, whatever the seed
        assert np.array_equal(per_seed[:, s, 0], per_seed[:, s, 1])
    assert (per_seed.sum(axis=(0, 2)) > 0).all()  # every seed is drawn


def test_seed_noise_widens_the_interval_and_pairs_use_the_same_seed() -> None:
    systems = {"steady": [GOOD, GOOD], "noisy": [GOOD, BAD], "noisy_too": [GOOD, BAD]}
    scores, skipped, weights = seeded.score_seeded(REFS, systems, blocks=[0] * 6, groups=GROUPS, n_boot=300,
                                                   with_meteor=False)
    assert skipped["meteor"].startswith("not requested")
    steady, noisy = scores["steady"].summary["bleu1"], scores["noisy"].summary["bleu1"]
    assert steady["value"] == pytest.approx(1.0) and steady["ci95"] == pytest.approx([1.0, 1.0])
    assert steady["per_seed"] == pytest.approx([1.0, 1.0]) and steady["seed_sd"] == pytest.approx(0.0)
    assert noisy["per_seed"] == pytest.approx([1.0, 0.0]) and noisy["seed_sd"] == pytest.approx(np.sqrt(0.5))
    lo, hi = noisy["ci95"]
    assert lo < 0.5 < hi  # the seed a case draws decides most of the score
    same = seeded.paired_seeded(scores["noisy"], scores["noisy_too"], weights)
    assert same["bleu1"]["diff"] == 0.0 and same["bleu1"]["ci95"] == [0.0, 0.0]  # seed s against seed s
    diff = seeded.paired_seeded(scores["steady"], scores["noisy"], weights)["cider"]
    assert diff["diff"] < 0 and diff["ci95"][1] <= 0.0


def test_cider_document_frequencies_come_from_each_block() -> None:
    from medcap.eval.metrics import cider

    partial = [["a", "small", "nodule", "right"], BAD[0], ["a", "large", "mass", "left"], ["a", "small", "effusion"],
               BAD[0], ["a", "cavity", "left", "base"]]
    systems = {"sys": [partial]}
    blocks = [0, 0, 0, 1, 1, 1]
    scores, _, _ = seeded.score_seeded(REFS, systems, blocks=blocks, groups=GROUPS, n_boot=20, with_meteor=False)
    hyps = systems["sys"][0]
    first = cider(REFS[:3], hyps[:3]).per_image
    second = cider(REFS[3:], hyps[3:]).per_image
    assert scores["sys"].per_image["cider"] == pytest.approx(np.concatenate([first, second]))
    assert scores["sys"].summary["cider"]["value"] == pytest.approx(np.mean(np.concatenate([first, second])))
    assert scores["sys"].summary["cider"]["value"] != pytest.approx(cider(REFS, hyps).value)  # not the all-refs rule
