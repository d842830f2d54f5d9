"""Captions agree with the findings line: words contradicting a sure fact are never generated."""

from __future__ import annotations

import numpy as np

from medcap.data.vocab import Vocabulary
from medcap.model.decoding import BANNED, DecodeOptions, Hypotheses, build_processors
from medcap.model.decoding.facts import contradicting_words, fact_bans, fact_words


def test_a_sure_fact_bans_the_words_of_its_other_values() -> None:
    ct = contradicting_words("modality", "ct")
    assert {"mri", "mr", "t2", "flair", "gadolinium"} <= ct and "ct" not in ct
    mr = contradicting_words("modality", "mr")
    assert {"ct", "cta", "hypodense"} <= mr and "mri" not in mr
    assert {"coronal", "sagittal"} <= contradicting_words("plane", "axial")
    assert "axial" not in contradicting_words("plane", "axial")
    head = contradicting_words("region", "head")
    assert {"lung", "liver"} <= head and "brain" not in head
    assert contradicting_words("finding", "nodule") == frozenset()


def test_fact_words_processor_bans_per_image_and_only_when_asked() -> None:
    vocab = Vocabulary.build([["axial", "ct", "mri", "coronal", "brain", "lung"]], min_count=1)
    bans = fact_bans(vocab, [{"modality": "ct", "plane": "axial"}, {}])
    assert sorted(vocab.words[i] for i in bans[0]) == ["coronal", "mri"]
    assert bans[1].size == 0
    probs = np.full((3, len(vocab)), 0.1)  # (a, V): hypotheses 0, 1 of image 0; hypothesis 2 of image 1
    hyps = Hypotheses(images=np.array([0, 0, 1]), generated=np.zeros((3, 4), dtype=np.int32),
                      n_generated=np.zeros(3, dtype=np.int32))
    on = build_processors(DecodeOptions(facts_constrain=True), vocab, fact_bans=bans)(probs, hyps)
    mri, coronal, lung = vocab.index["mri"], vocab.index["coronal"], vocab.index["lung"]
    assert (on[:2, [mri, coronal]] == BANNED).all() and on[0, lung] == 0.1
    assert on[2, mri] == 0.1  # the second image is sure of nothing
    off = build_processors(DecodeOptions(), vocab, fact_bans=bans)(probs, hyps)
    assert off[0, mri] == 0.1


def test_facts_silent_bans_every_word_of_an_unsure_fact_but_keeps_the_sure_values_own_words() -> None:
    vocab = Vocabulary.build([["axial", "ct", "mri", "coronal", "brain", "lung", "mass"]], min_count=1)
    sure_ct = {"modality": "ct"}
    plain = fact_bans(vocab, [sure_ct])
    silent = fact_bans(vocab, [sure_ct, {}], unsure=[["plane", "region"], ["modality"]])
    assert sorted(vocab.words[i] for i in plain[0]) == ["mri"]
    assert sorted(vocab.words[i] for i in silent[0]) == ["axial", "brain", "coronal", "lung", "mri"]
    assert sorted(vocab.words[i] for i in silent[1]) == ["ct", "mri"]  # nothing sure: no modality word at all
    assert fact_words("finding") == frozenset() and {"axial", "coronal", "sagittal"} <= fact_words("plane")
