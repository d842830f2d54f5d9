"""1-NN retrieval by blocks (`medcap.base.neighbours.top_k`, the one neighbour search): the same neighbours
and ties as the brute-force arg-max over all pairs."""

from __future__ import annotations

import numpy as np
import pytest

from medcap.base.neighbours import top_k
from medcap.eval.baselines import nearest_neighbour_captions


def nearest_neighbours(train: np.ndarray, query: np.ndarray, chunk: int, train_block: int) -> np.ndarray:
    """(Q,) index of each query's closest training row, searched by blocks of the given sizes."""
    return top_k(train, query, 1, query_block=chunk, train_block=train_block)[0][:, 0]


def brute_force(train: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Every query against every training row at once (the O(Nq x Ntr) definition)."""

    def unit(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    return np.argmax(unit(query) @ unit(train).T, axis=1)


BLOCKS = [(1, 1), (3, 2), (7, 5), (1024, 8192), (64, 1000)]


@pytest.mark.parametrize(("chunk", "train_block"), BLOCKS)
def test_blocked_matches_brute_force_on_random_data(chunk, train_block):
    rng = np.random.default_rng(7)
    train = rng.standard_normal((203, 24)).astype(np.float16)
    query = rng.standard_normal((57, 24)).astype(np.float16)
    query[:5] = train[[3, 50, 51, 200, 0]]  # exact matches
    got = nearest_neighbours(train, query, chunk=chunk, train_block=train_block)
    assert np.array_equal(got, brute_force(train, query))
    assert got[:5].tolist() == [3, 50, 51, 200, 0]


@pytest.mark.parametrize(("chunk", "train_block"), BLOCKS)
def test_blocked_keeps_lowest_index_ties_like_brute_force(chunk, train_block):
    # entries +-1 on exactly 4 (train) or 16 (query) positions: unit rows are multiples of 1/2 and 1/4,
    # so every similarity is exact and ties are real ties, whatever the summation order
    rng = np.random.default_rng(3)
    dim = 32

    def dyadic(n: int, nonzero: int) -> np.ndarray:
        x = np.zeros((n, dim), dtype=np.float16)
        for row in x:
            cols = rng.choice(dim, size=nonzero, replace=False)
            row[cols] = rng.choice([-1.0, 1.0], size=nonzero)
        return x

    train = dyadic(150, 4)
    train[[20, 90, 149]] = train[7]  # duplicates of row 7 tie with it: 7 must win
    train[110] = 3 * train[60]  # same direction, other length: ties with 60 (cosine), 60 must win
    query = np.concatenate([dyadic(60, 16), 2 * train[[90, 110, 149]]])
    want = brute_force(train, query)
    got = nearest_neighbours(train, query, chunk=chunk, train_block=train_block)
    assert np.array_equal(got, want)
    assert got[-3:].tolist() == [7, 60, 7]
    sims = (query.astype(np.float32) / np.linalg.norm(query.astype(np.float32), axis=1, keepdims=True)) @ (
        train.astype(np.float32) / np.linalg.norm(train.astype(np.float32), axis=1, keepdims=True)).T
    n_tied = int((sims == sims.max(axis=1, keepdims=True)).sum(axis=1).max())
    assert n_tied >= 4  # the data really has ties to break


def test_nearest_neighbour_captions_and_bad_input():
    train = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float16)
    idx, caps = nearest_neighbour_captions(train, [["a"], ["b"], ["c", "d"]],
                                           np.array([[0, 5], [2, 2.1], [3, 0]], dtype=np.float16))
    assert idx.tolist() == [1, 2, 0] and caps == [["b"], ["c", "d"], ["a"]]
    with pytest.raises(ValueError, match="block sizes"):
        nearest_neighbours(train, train, chunk=0, train_block=1)
    with pytest.raises(ValueError, match="no training features"):
        nearest_neighbour_captions(np.zeros((0, 2)), [], train)
