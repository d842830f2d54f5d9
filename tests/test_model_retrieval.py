"""Retrieval-aware decoding helpers: neighbours, caption memory, next-word evidence, repeat bans."""

from __future__ import annotations

import numpy as np
import pytest

from medcap.base.neighbours import top_k
from medcap.model.retrieval import (
    ban_adjacent,
    ban_repeats,
    build_memory,
    memory_next_word,
    mix,
)


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
    mem = build_memory(train, caps, np.array([[1.0, 0.02]], dtype=np.float32), k=2, temperature=1.0)
    assert list(mem.neighbours[0]) == [0, 1]
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
    mixed = mix(model, p, 0.5)
    assert mixed[2] == pytest.approx(model[2]) and mixed[0, 4] == pytest.approx(0.5 + 0.5 / 9)
    assert np.allclose(mixed.sum(axis=1), 1.0)


def test_repeat_bans() -> None:
    gen = np.array([[5, 6, 5, 0], [5, 5, 0, 0], [0, 0, 0, 0]])
    s = ban_adjacent(np.zeros((3, 9)), gen, np.array([3, 2, 0]), -1.0)
    assert s[0, 5] == -1.0 and s[1, 5] == -1.0 and (s[2] == 0).all() and s.sum() == -2.0
    s = ban_repeats(np.zeros((3, 9)), gen, np.array([3, 2, 0]), 2, -1.0)
    assert s[0, 6] == -1.0 and s[1, 5] == -1.0 and s.sum() == -2.0  # "5 6" seen -> after "5" ban 6; "5 5" -> 5


def test_memory_of_permuted_queries_is_the_memory_subset() -> None:
    rng = np.random.default_rng(0)
    train, query = rng.normal(size=(30, 5)), rng.normal(size=(10, 5))
    caps = [[i] for i in range(30)]
    perm = rng.permutation(10)
    whole = build_memory(train, caps, query, k=4, temperature=0.1).subset(perm)
    direct = build_memory(train, caps, query[perm], k=4, temperature=0.1)
    assert (whole.neighbours == direct.neighbours).all() and whole.captions == direct.captions
    np.testing.assert_allclose(whole.weights, direct.weights)
    np.testing.assert_allclose(whole.similarity, direct.similarity)
