"""Lazy (prefix, next-word) pairs: exact pairs, reproducible seeded order, features gathered by row."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from medcap.model import make_pairs_dataset, num_pairs, pairs_for

N, D = 5, 3
CAPTIONS = [[5, 6, 7], [8], [9, 10], [], [11, 12, 13, 14]]
ROWS = np.array([4, 0, 2, 1, 4])  # caption i uses store row ROWS[i]


def store() -> tuple[np.ndarray, np.ndarray]:
    """Row r of the global features is all r; grid row r is r + region/100 (float16 like the store)."""
    glob = np.repeat(np.arange(N, dtype=np.float16)[:, None], D, axis=1)  # (N, D)
    region = (np.arange(49) / 100).reshape(7, 7, 1)
    grid = (np.arange(N).reshape(N, 1, 1, 1) + region + np.zeros((1, 7, 7, 512))).astype(np.float16)  # (N, 7, 7, 512)
    return glob, grid


def collect(ds: object) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    g, gr, p, t = [], [], [], []
    for x, y in ds:
        g.append(x["global"].numpy())
        gr.append(x["grid"].numpy())
        p.append(x["prefix"].numpy())
        t.append(y.numpy())
    return np.concatenate(g), np.concatenate(gr), np.concatenate(p), np.concatenate(t)


def test_pairs_for_known_caption() -> None:
    cap, prefix, target = pairs_for([[5, 6, 7]], max_len=6)
    assert cap.tolist() == [0, 0, 0, 0]  # n + 1 pairs
    assert prefix.tolist() == [[2, 0, 0, 0, 0, 0], [2, 5, 0, 0, 0, 0], [2, 5, 6, 0, 0, 0], [2, 5, 6, 7, 0, 0]]
    assert target.tolist() == [5, 6, 7, 3]
    assert prefix.dtype == np.int32 and target.dtype == np.int32


def test_pairs_counts_and_long_captions() -> None:
    assert num_pairs(CAPTIONS) == 4 + 2 + 3 + 1 + 5
    cap, _, target = pairs_for(CAPTIONS)
    assert np.bincount(cap).tolist() == [4, 2, 3, 1, 5]
    assert target[cap == 3].tolist() == [3]  # an empty caption just ends
    # a caption longer than max_len - 1 words keeps its first max_len pairs and gets no false <end>
    cap, prefix, target = pairs_for([[5, 6, 7, 8, 9]], max_len=3)
    assert prefix.tolist() == [[2, 0, 0], [2, 5, 0], [2, 5, 6]]
    assert target.tolist() == [5, 6, 7]
    assert num_pairs([[5, 6, 7, 8, 9]], max_len=3) == 3


def test_batches_hold_the_right_feature_rows_and_pairs() -> None:
    glob, grid = store()
    ds = make_pairs_dataset(glob, grid, ROWS, CAPTIONS, batch_size=4, shuffle=False, max_len=6)
    g, gr, prefix, target = collect(ds)
    cap, want_prefix, want_target = pairs_for(CAPTIONS, max_len=6)
    np.testing.assert_array_equal(prefix, want_prefix)
    np.testing.assert_array_equal(target, want_target)
    assert g.dtype == np.float32 and g.shape == (15, D) and gr.shape == (15, 49, 512)
    np.testing.assert_array_equal(g[:, 0], ROWS[cap])
    np.testing.assert_allclose(gr[:, :, 0], ROWS[cap][:, None] + np.arange(49)[None] / 100, atol=0.01)


def test_order_is_reproducible_per_seed_and_epoch() -> None:
    glob, grid = store()

    def order(seed: int, epoch: int) -> list[tuple[int, ...]]:
        ds = make_pairs_dataset(glob, grid, ROWS, CAPTIONS, batch_size=4, seed=seed, epoch=epoch, max_len=6)
        _, _, prefix, target = collect(ds)
        return [(*p, t) for p, t in zip(prefix.tolist(), target.tolist(), strict=True)]

    a = order(1, 0)
    assert a == order(1, 0)  # same seed and epoch: same order (a resumed run reproduces it)
    assert a != order(1, 1) and a != order(2, 0)
    assert sorted(a) == sorted(order(1, 1))  # same pairs, new order
    # several epochs in one dataset = the single-epoch datasets one after another
    both = make_pairs_dataset(glob, grid, ROWS, CAPTIONS, batch_size=4, seed=1, epoch=0, num_epochs=2, max_len=6)
    assert both.cardinality().numpy() == 8
    _, _, prefix, target = collect(both)
    assert [(*p, t) for p, t in zip(prefix.tolist(), target.tolist(), strict=True)] == a + order(1, 1)


def test_augmented_views_are_sampled_per_image_and_epoch() -> None:
    glob, grid = store()
    aug_g = np.stack([glob + 10, glob + 20], axis=1)  # (N, 2, D): view v adds 10 * v
    aug_grid = np.stack([grid + 10, grid + 20], axis=1)  # (N, 2, 7, 7, 512)
    rows = np.arange(N)
    caps = [[5]] * N

    def views(epoch: int) -> np.ndarray:
        ds = make_pairs_dataset(
            glob, grid, rows, caps, 16, shuffle=False, epoch=epoch, aug_global=aug_g, aug_grid=aug_grid, max_len=6
        )
        g, gr, _, _ = collect(ds)
        cap = np.repeat(rows, 2)
        offset = (g[:, 0] - cap) / 10  # 0 = original, 1 or 2 = augmented view
        np.testing.assert_allclose(gr[:, 0, 0] - cap, offset * 10, atol=0.05)  # grid from the same view
        per_image = offset.reshape(N, 2)
        assert (per_image[:, 0] == per_image[:, 1]).all()  # one view per image per epoch
        return per_image[:, 0]

    v0 = views(0)
    assert set(np.unique(v0)) <= {0, 1, 2}
    np.testing.assert_array_equal(v0, views(0))
    assert any((views(e) != v0).any() for e in (1, 2, 3))


def test_bad_inputs_are_named() -> None:
    glob, grid = store()
    with pytest.raises(ValueError, match="image rows"):
        make_pairs_dataset(glob, grid, [0, 9], [[5], [6]], 4)
    with pytest.raises(ValueError, match="captions"):
        make_pairs_dataset(glob, grid, [0], [[5], [6]], 4)
    with pytest.raises(ValueError, match="grid features"):
        make_pairs_dataset(glob, grid[:, :, :, :3], [0], [[5]], 4)
    with pytest.raises(ValueError, match="aug_global"):
        make_pairs_dataset(glob, grid, [0], [[5]], 4, aug_global=glob[:, None])


def test_memmap_store_is_read_not_copied(tmp_path: object) -> None:
    glob, grid = store()
    path = tmp_path / "grid.f16"  # type: ignore[operator]
    mm = np.memmap(path, dtype=np.float16, mode="w+", shape=grid.shape)
    mm[:] = grid
    mm.flush()
    ro = np.memmap(path, dtype=np.float16, mode="r", shape=grid.shape)
    ds = make_pairs_dataset(glob, ro, ROWS, CAPTIONS, batch_size=8, shuffle=False, max_len=6)
    _, gr, _, _ = collect(ds)
    cap, _, _ = pairs_for(CAPTIONS, max_len=6)
    np.testing.assert_allclose(gr[:, 0, 0], ROWS[cap], atol=0.01)


def test_store_pairs_dataset_reads_the_store_and_its_augmented_views() -> None:
    from types import SimpleNamespace

    from medcap.model import store_pairs_dataset

    glob, grid = store()
    aug_g, aug_grid = (glob + 10)[:, None], (grid + 10)[:, None]  # (N, 1, D), (N, 1, 7, 7, 512)
    fake = SimpleNamespace(
        path="fake-store",
        global_feats=lambda: glob,
        grid=lambda: grid,
        aug_global=lambda: aug_g,
        aug_grid=lambda: aug_grid,
    )
    rows, caps = np.arange(N), [[5]] * N
    plain = collect(store_pairs_dataset(fake, rows, caps, 16, shuffle=False, max_len=6))
    np.testing.assert_array_equal(plain[0][:, 0], np.repeat(rows, 2))
    seen = set()
    for epoch in range(4):
        g, _, _, _ = collect(
            store_pairs_dataset(fake, rows, caps, 16, shuffle=False, max_len=6, augment=True, epoch=epoch)
        )
        seen |= set(np.round(g[:, 0] - np.repeat(rows, 2)).astype(int).tolist())
    assert seen == {0, 10}  # original and augmented views both used
    no_aug = SimpleNamespace(**{**vars(fake), "aug_global": lambda: None, "aug_grid": lambda: None})
    g, _, _, _ = collect(store_pairs_dataset(no_aug, rows, caps, 16, shuffle=False, max_len=6, augment=True))
    np.testing.assert_array_equal(g[:, 0], np.repeat(rows, 2))
