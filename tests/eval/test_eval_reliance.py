"""Image reliance: the permutation moves images across cases; a captioner ignoring its image gets ~0."""

from __future__ import annotations

import numpy as np
import pytest

from medcap.eval import bootstrap as bs
from medcap.eval.reliance import own_case_share, swap_permutation
from medcap.eval.scoring import paired_table, score_systems


def test_swap_permutation_is_a_permutation_across_cases() -> None:
    groups = [f"c{i // 3}" for i in range(30)]
    perm = swap_permutation(groups, seed=1)
    assert sorted(perm.tolist()) == list(range(30))
    assert own_case_share(groups, perm) == 0.0
    assert (swap_permutation(groups, seed=1) == perm).all()
    assert not (swap_permutation(groups, seed=2) == perm).all()
    # one case holding most images cannot be fully moved, but the rest is
    lopsided = ["a"] * 8 + ["b"] * 2
    assert own_case_share(lopsided, swap_permutation(lopsided)) == pytest.approx(0.6)
    assert swap_permutation([]).size == 0


def test_reliance_is_zero_for_a_captioner_that_ignores_its_image() -> None:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(15)]
    refs = [[[str(w) for w in rng.choice(words, 6)]] for _ in range(40)]
    groups = [f"c{i // 2}" for i in range(40)]
    perm = swap_permutation(groups)
    constant = [["w1", "w2", "w3"]] * 40  # the same caption whatever the features
    scores, _ = score_systems(refs, {"real": constant, "swapped": [constant[j] for j in perm]}, n_boot=200,
                              with_meteor=False, groups=groups)
    table = paired_table(scores["swapped"], scores["real"], n_boot=200, groups=groups)
    for row in table.values():
        assert row["diff"] == 0.0 and row["ci95"] == [0.0, 0.0]
    # a captioner that copies each image's own reference relies on its image: reliance > 0, CI above 0
    own = [r[0] for r in refs]
    scores, _ = score_systems(refs, {"real": own, "swapped": [own[j] for j in perm]}, n_boot=200,
                              with_meteor=False, groups=groups)
    table = paired_table(scores["swapped"], scores["real"], n_boot=200, groups=groups)
    assert table["bleu1"]["diff"] > 0.5 and table["bleu1"]["ci95"][0] > 0.3
    assert table["bleu1"]["unit"] == "group" and bs.group_codes(40, groups)[1] == 20
