"""Retrieval-aware decoding helpers: neighbours, the id-indexed caption memory, next-word evidence, and the
decoding processors (memory mix, repeat bans, banned tokens, minimum length)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from medcap.base.neighbours import top_k
from medcap.model.decoding.memory import build_memory, memory_next_word
from medcap.model.decoding.options import DecodeOptions
from medcap.model.decoding.processors import (
    BanTokens,
    BlockAdjacentRepeat,
    BlockRepeatedNgrams,
    Hypotheses,
    MemoryMix,
    MinLength,
    build_processors,
)

VOCAB = SimpleNamespace(pad_id=0, unk_id=1, start_id=2, end_id=3)


def test_top_k_neighbours_equals_brute_force_with_ties() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50, 6)).astype(np.float32)
    train[7] = train[3]  # an exact tie: the lower index comes first
    query = np.vstack([train[3] * 2.0, rng.normal(size=(9, 6))]).astype(np.float32)
    idx, sims = top_k(train, query, k=4, query_block=3, train_block=7)  # merged across training blocks
    unit = train / np.linalg.norm(train, axis=1, keepdims=True)
    qn = query / np.linalg.norm(query, axis=1, keepdims=True)
    brute = np.argsort(-(qn @ unit.T), axis=1, kind="stable")[:, :4]
    assert (idx == brute).all()
    assert list(idx[0, :2]) == [3, 7] and sims[0, 0] == pytest.approx(1.0, abs=1e-6)


def test_memory_next_word_backs_off_and_votes_by_similarity() -> None:
    # vocab ids: 3 <end>, 4 axial, 5 ct, 6 of, 7 brain, 8 liver
    train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]], dtype=np.float32)
    caps = [[4, 5, 6, 7], [4, 5, 6, 8], [5]]
    mem = build_memory(train, caps, np.array([[1.0, 0.02]], dtype=np.float32), ["img"], k=2, temperature=1.0)
    assert list(mem.neighbours[0]) == [0, 1] and mem.k == 2 and mem.image_ids == ("img",)
    w0, w1 = mem.weights[0]
    gen = np.zeros((3, 5), dtype=np.int64)
    gen[1, :3] = [4, 5, 6]  # "axial ct of" -> brain (neighbour 0) or liver (neighbour 1)
    gen[2, :1] = [8]  # "liver" ends neighbour 1's caption -> <end>
    p = memory_next_word(mem, np.zeros(3, dtype=np.int64), gen, np.array([0, 3, 1]), vocab_size=9, end_id=3)
    assert p[0, 4] == pytest.approx(1.0)  # both captions start with "axial"
    assert p[1, 7] == pytest.approx(w0) and p[1, 8] == pytest.approx(w1)
    assert p[2, 3] == pytest.approx(1.0)
    gen[2, :1] = [2]  # a word no neighbour has: no evidence, the model's row is kept
    p = memory_next_word(mem, np.zeros(3, dtype=np.int64), gen, np.array([0, 3, 1]), vocab_size=9, end_id=3)
    assert p[2].sum() == 0.0
    model = np.full((3, 9), 1 / 9)
    hyps = Hypotheses(np.zeros(3, dtype=np.int64), gen, np.array([0, 3, 1]))
    mixed = MemoryMix(mem, ["img"], 0.5, end_id=3)(model.copy(), hyps)
    assert mixed[2] == pytest.approx(model[2]) and mixed[0, 4] == pytest.approx(0.5 + 0.5 / 9)
    assert mixed[1, 7] == pytest.approx(0.5 / 9 + 0.5 * w0)
    assert np.allclose(mixed.sum(axis=1), 1.0)


def test_repeat_bans() -> None:
    gen = np.array([[5, 6, 5, 0], [5, 5, 0, 0], [0, 0, 0, 0]])
    hyps = Hypotheses(np.zeros(3, dtype=np.int64), gen, np.array([3, 2, 0]))
    s = BlockAdjacentRepeat()(np.zeros((3, 9)), hyps)
    assert s[0, 5] == -1.0 and s[1, 5] == -1.0 and (s[2] == 0).all() and s.sum() == -2.0
    s = BlockRepeatedNgrams(2)(np.zeros((3, 9)), hyps)
    assert s[0, 6] == -1.0 and s[1, 5] == -1.0 and s.sum() == -2.0  # "5 6" seen -> after "5" ban 6; "5 5" -> 5
    s = BlockRepeatedNgrams(3)(np.zeros((3, 9)), hyps)
    assert s.sum() == 0.0  # "6 5" was never followed by anything yet
    s = MinLength(3, end_id=3)(np.zeros((3, 9)), hyps)
    assert s[:, 3].tolist() == [0.0, -1.0, -1.0] and s.sum() == -2.0
    s = BanTokens([0, 2, 0])(np.zeros((3, 9)), hyps)
    assert (s[:, [0, 2]] == -1.0).all() and s.sum() == -6.0
    with pytest.raises(ValueError, match="no_repeat_ngram must be >= 2"):
        BlockRepeatedNgrams(1)


def test_processors_follow_the_options_in_one_fixed_order() -> None:
    mem = build_memory(np.eye(2, dtype=np.float32), [[4], [5]], np.eye(2, dtype=np.float32), ["a", "b"], k=1)
    plain = build_processors(DecodeOptions(), VOCAB)
    assert [type(p).__name__ for p in plain] == ["BanTokens"] and plain[0].token_ids == [0, 1, 2]
    assert build_processors(DecodeOptions(), VOCAB, ban_end=True)[0].token_ids == [0, 1, 2, 3]
    every = build_processors(DecodeOptions(block_repeats=True, no_repeat_ngram=3, min_words=4, memory_k=1),
                             VOCAB, mem, ["b", "a"])
    assert [type(p).__name__ for p in every] == ["MemoryMix", "BanTokens", "BlockAdjacentRepeat",
                                                 "BlockRepeatedNgrams", "MinLength"]
    assert every[0].rows.tolist() == [1, 0] and every[3].n == 3 and every[4].min_words == 4
    # memory_lambda 0: the memory is built (memory_k > 0) but not mixed
    assert "MemoryMix" not in [type(p).__name__ for p in build_processors(
        DecodeOptions(memory_k=1, memory_lambda=0.0), VOCAB, mem, ["a"])]
    probs = np.full((1, 6), 1 / 6, dtype=np.float32)
    hyps = Hypotheses(np.array([0]), np.array([[4, 0]]), np.array([1]))
    out = every(probs, hyps)  # image "b": its memory caption is [5]; after "4" it offers nothing: the model's row
    assert out.dtype == np.float64 and probs[0, 0] == pytest.approx(1 / 6)  # the input is not modified
    assert out[0].tolist() == pytest.approx([-1.0, -1.0, -1.0, -1.0, -1.0, 1 / 6])  # 3 <end> before 4 words, 4 again


def test_caption_memory_is_indexed_by_image_id() -> None:
    rng = np.random.default_rng(0)
    train, query = rng.normal(size=(30, 5)), rng.normal(size=(10, 5))
    caps = [[i] for i in range(30)]
    ids = [f"q{i}" for i in range(10)]
    perm = rng.permutation(10)
    whole = build_memory(train, caps, query, ids, k=4, temperature=0.1)
    direct = build_memory(train, caps, query[perm], [ids[p] for p in perm], k=4, temperature=0.1)
    rows = whole.rows(direct.image_ids)  # the same image, wherever it sits
    assert rows.tolist() == perm.tolist()
    assert (whole.neighbours[rows] == direct.neighbours).all()
    assert [whole.captions[r] for r in rows] == direct.captions
    np.testing.assert_allclose(whole.weights[rows], direct.weights)
    np.testing.assert_allclose(whole.similarity[rows], direct.similarity)
    with pytest.raises(ValueError, match="caption memory has no image 'nope' \\(it holds 10 images\\)"):
        whole.rows(["q1", "nope"])
    with pytest.raises(ValueError, match="image ids must be distinct, \\['q1'\\]"):
        build_memory(train, caps, query[:3], ["q0", "q1", "q1"], k=2)
    with pytest.raises(ValueError, match="3 query features but 2 image ids"):
        build_memory(train, caps, query[:3], ["q0", "q1"], k=2)
