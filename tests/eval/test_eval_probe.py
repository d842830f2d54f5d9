"""Linear fact probes: pooling values, store reading order, known accuracies on toy problems, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from medcap.eval.probe import pool_grid, pooled_features, probe_fact, probe_facts
from medcap.features.store import open_store
from medcap.features.writer import write_store


def _toy_store(tmp_path, n: int = 6):
    grid = np.zeros((n, 7, 7, 2), dtype=np.float32)  # (N, 7, 7, C)
    for i in range(n):
        grid[i, :, :, 0] = i  # channel 0: constant i -> mean i, max i
        grid[i, 3, 4, 1] = 49.0 * (i + 1)  # channel 1: one hot cell -> mean i + 1, max 49 (i + 1)
    glob = np.arange(n * 3, dtype=np.float32).reshape(n, 3)  # (N, 3)
    folder = tmp_path / "store"
    with write_store(folder, {"global": glob.shape, "grid": grid.shape}) as w:
        w.write("global", 0, glob)
        w.write("grid", 0, grid)
        w.finish([f"img{i}" for i in range(n)], {"global_dim": 3})
    return open_store(folder)


def test_pool_grid_values():
    grid = np.zeros((1, 7, 7, 2), dtype=np.float16)
    grid[0, :, :, 0] = 2.0
    grid[0, 0, 0, 1] = 49.0
    np.testing.assert_allclose(pool_grid(grid, "mean"), [[2.0, 1.0]])
    np.testing.assert_allclose(pool_grid(grid, "max"), [[2.0, 49.0]])
    np.testing.assert_allclose(pool_grid(grid, "mean+max"), [[2.0, 1.0, 2.0, 49.0]])
    assert pool_grid(grid, "mean").dtype == np.float32
    with pytest.raises(ValueError, match="unknown grid pooling 'sum'"):
        pool_grid(grid, "sum")
    with pytest.raises(ValueError, match="must be"):
        pool_grid(grid[0], "mean")


def test_pooled_features_reads_rows_in_the_given_order(tmp_path):
    store = _toy_store(tmp_path)
    rows = [4, 1, 4, 0]
    feats = pooled_features(store, rows, "mean+max", chunk=3)  # chunks smaller than the request
    expected = [[i, i + 1, i, 49.0 * (i + 1)] for i in rows]
    np.testing.assert_allclose(feats, expected, rtol=1e-3)
    np.testing.assert_allclose(pooled_features(store, rows, "mean"), [[i, i + 1] for i in rows], rtol=1e-3)
    np.testing.assert_allclose(pooled_features(store, [5, 2], "global"), [[15, 16, 17], [6, 7, 8]])
    assert pooled_features(store, [], "mean+max").shape == (0, 4)
    with pytest.raises(IndexError, match="out of range"):
        pooled_features(store, [6], "mean")
    with pytest.raises(ValueError, match="unknown feature kind 'fc7'"):
        pooled_features(store, [0], "fc7")


def _blobs(seed: int, n: int) -> tuple[np.ndarray, list[str]]:
    """Three well separated classes in 5-d (centres 10 apart, unit noise)."""
    rng = np.random.default_rng(seed)
    names = ["ct", "mr", "us"]
    y = [names[i % 3] for i in range(n)]
    centres = {"ct": 0.0, "mr": 10.0, "us": -10.0}
    X = np.stack([np.full(5, centres[lab]) for lab in y]) + rng.normal(size=(n, 5))  # (n, 5)
    return X.astype(np.float32), y


def test_separable_problem_is_learnt_perfectly_and_unlabelled_images_are_ignored():
    Xtr, ytr = _blobs(0, 60)
    Xte, yte = _blobs(1, 30)
    ytr_missing = [None if i % 10 == 0 else lab for i, lab in enumerate(ytr)]  # 6 unlabelled
    yte_missing = [None if i % 5 == 0 else lab for i, lab in enumerate(yte)]  # 6 unlabelled
    out = probe_facts(Xtr, {"modality": ytr_missing, "region": ytr}, Xte, {"modality": yte_missing, "region": yte})
    mod = out["modality"]
    assert mod["accuracy"] == 1.0
    assert (mod["n_train"], mod["n_test"]) == (54, 24)
    assert mod["classes"] == ["ct", "mr", "us"]
    assert mod["test_rows"] == [i for i in range(30) if i % 5]
    assert mod["predictions"] == [yte[i] for i in mod["test_rows"]]
    assert out["region"]["accuracy"] == 1.0 and out["region"]["n_test"] == 30
    # the majority baseline: 60 training labels tie 20/20/20, broken by name -> "ct", a third of the test
    assert out["region"]["majority"] == pytest.approx(10 / 30)


def test_mlp_head_and_unseen_test_classes():
    Xtr, ytr = _blobs(0, 60)
    Xte, yte = _blobs(1, 30)
    yte = ["pet" if i < 3 else lab for i, lab in enumerate(yte)]  # a class the training set never had
    out = probe_fact(Xtr, ytr, Xte, yte, head="mlp")
    assert out["accuracy"] == pytest.approx(27 / 30)  # the 3 "pet" images cannot be right, the rest are


def test_probe_is_deterministic_and_not_trivially_perfect():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 8)).astype(np.float32)  # (120, 8)
    y = ["a" if x0 + 0.8 * rng.normal() > 0 else "b" for x0 in X[:, 0]]  # noisy labels: accuracy < 1
    first = probe_fact(X[:80], y[:80], X[80:], y[80:])
    second = probe_fact(X[:80], y[:80], X[80:], y[80:])
    assert first["predictions"] == second["predictions"]
    assert first["accuracy"] == second["accuracy"]
    assert 0.6 < first["accuracy"] < 1.0


def test_single_class_empty_test_and_bad_input():
    X = np.zeros((4, 2), dtype=np.float32)
    one = probe_fact(X, ["ct"] * 4, X, ["ct", "mr", None, ""])
    assert one["accuracy"] == 0.5 and one["n_test"] == 2 and one["classes"] == ["ct"]
    none = probe_fact(X, ["ct", "mr", "ct", "mr"], X, [None] * 4)
    assert none["n_test"] == 0 and np.isnan(none["accuracy"])
    with pytest.raises(ValueError, match="no training image has a label"):
        probe_fact(X, [None] * 4, X, ["ct"] * 4)
    with pytest.raises(ValueError, match="train 3 labels for 4 rows"):
        probe_fact(X, ["ct"] * 3, X, ["ct"] * 4)
    with pytest.raises(ValueError, match="lack the facts \\['plane'\\]"):
        probe_facts(X, {"plane": ["a"] * 4}, X, {})
    with pytest.raises(ValueError, match="unknown probe head 'svm'"):
        probe_fact(X, ["a", "b", "a", "b"], X, ["a"] * 4, head="svm")
