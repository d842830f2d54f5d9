"""Lazy (prefix, next-word) training pairs: small index arrays, features gathered per batch by row.

A caption of n words gives n + 1 pairs: prefix `<start> w1 .. wk` (k = 0..n) -> next word w(k+1),
or `<end>` after the last word. Only (caption, k) index pairs are shuffled and batched; each batch
then reads its images' rows from the (memory-mapped) feature store, so memory stays near the
store's own size whatever the number of pairs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from medcap.model.layers import GRID_CHANNELS, GRID_REGIONS

log = logging.getLogger(__name__)

PAD_ID = 0
START_ID = 2
END_ID = 3


class ReplicaSlice(NamedTuple):
    """Which slices of every global batch one input pipeline feeds (multi-worker training).

    Each global batch of B pairs is cut into `total` contiguous slices (sizes differ by at most one);
    this pipeline yields slices first .. first + local - 1, one per local replica, in that order.
    """

    first: int = 0
    local: int = 1
    total: int = 1


WHOLE = ReplicaSlice()


def _caption_lengths(token_ids: Sequence[Sequence[int]]) -> np.ndarray:
    return np.fromiter((len(t) for t in token_ids), dtype=np.int64, count=len(token_ids))  # (C,)


def _pair_index(token_ids: Sequence[Sequence[int]], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(caption index (P,), k (P,)) for every pair; k is the number of words in the prefix."""
    lengths = _caption_lengths(token_ids)  # (C,)
    too_long = int((lengths > max_len - 1).sum())
    if too_long:
        log.warning(
            "%d captions longer than %d words: only their first %d next-word pairs are used (no <end> pair)",
            too_long,
            max_len - 1,
            max_len,
        )
    counts = np.minimum(lengths + 1, max_len)  # (C,) pairs per caption
    cap = np.repeat(np.arange(len(lengths), dtype=np.int32), counts)  # (P,)
    starts = np.cumsum(counts) - counts  # (C,)
    k = (np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)).astype(np.int32)  # (P,)
    return cap, k


def num_pairs(token_ids: Sequence[Sequence[int]], max_len: int = 21) -> int:
    """Number of (prefix, next word) pairs the captions give (n + 1 each, at most max_len)."""
    return int(np.minimum(_caption_lengths(token_ids) + 1, max_len).sum())


def _sequence_matrix(token_ids: Sequence[Sequence[int]], max_len: int, start_id: int, end_id: int) -> np.ndarray:
    """(C, max_len + 1) int32: `<start> w1 .. wn <end> 0 ..` (words beyond max_len - 1 cut)."""
    seq = np.zeros((len(token_ids), max_len + 1), dtype=np.int32)  # (C, L + 1)
    seq[:, 0] = start_id
    for i, toks in enumerate(token_ids):
        words = np.asarray(list(toks)[:max_len], dtype=np.int32)
        seq[i, 1 : 1 + len(words)] = words
        if len(words) + 1 <= max_len:
            seq[i, 1 + len(words)] = end_id
    return seq


def _prefixes(seq: np.ndarray, cap: np.ndarray, k: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded prefixes (P, max_len) and next-word targets (P,) for pairs (cap, k)."""
    rows = seq[cap]  # (P, L + 1)
    keep = np.arange(max_len)[None, :] <= k[:, None]  # (P, L)
    prefix = np.where(keep, rows[:, :max_len], PAD_ID).astype(np.int32)  # (P, L)
    target = rows[np.arange(len(cap)), k + 1].astype(np.int32)  # (P,)
    return prefix, target


def pairs_for(
    token_ids: Sequence[Sequence[int]], max_len: int = 21, start_id: int = START_ID, end_id: int = END_ID
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs as numpy: (caption index (P,), prefix (P, max_len) int32, target (P,) int32)."""
    cap, k = _pair_index(token_ids, max_len)
    prefix, target = _prefixes(_sequence_matrix(token_ids, max_len, start_id, end_id), cap, k, max_len)
    return cap, prefix, target


def _order(n_pairs: int, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    if not shuffle:
        return np.arange(n_pairs, dtype=np.int64)
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n_pairs)  # (P,)


def _views(n_images: int, n_aug: int, seed: int, epoch: int) -> np.ndarray:
    """View per image for one epoch: 0 = original features, v >= 1 = augmented view v - 1."""
    return np.random.default_rng([int(seed), int(epoch), 1]).integers(0, n_aug + 1, size=n_images)  # (N,)


def _check_inputs(global_feats: Any, grid_feats: Any, image_rows: np.ndarray, token_ids: Sequence) -> None:
    n = len(global_feats)
    if len(grid_feats) != n:
        raise ValueError(f"global features have {n} rows but grid features {len(grid_feats)}")
    if tuple(grid_feats.shape[1:]) not in ((7, 7, GRID_CHANNELS), (GRID_REGIONS, GRID_CHANNELS)):
        raise ValueError(f"grid features must be (N, 7, 7, 512), got {tuple(grid_feats.shape)}")
    if len(image_rows) != len(token_ids):
        raise ValueError(f"{len(image_rows)} image rows for {len(token_ids)} captions")
    if len(image_rows) and (image_rows.min() < 0 or image_rows.max() >= n):
        raise ValueError(f"image rows must lie in [0, {n}), got [{image_rows.min()}, {image_rows.max()}]")


def make_pairs_dataset(
    global_feats: np.ndarray,
    grid_feats: np.ndarray,
    image_rows: Sequence[int] | np.ndarray,
    token_ids: Sequence[Sequence[int]],
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    max_len: int = 21,
    start_id: int = START_ID,
    end_id: int = END_ID,
    aug_global: np.ndarray | None = None,
    aug_grid: np.ndarray | None = None,
    epoch: int = 0,
    num_epochs: int | None = 1,
    replicas: ReplicaSlice = WHOLE,
) -> tf.data.Dataset:
    """Lazy dataset of ({"global" (B, D), "grid" (B, 49, 512), "prefix" (B, max_len)}, next_word (B,)).

    global_feats (N, D) and grid_feats (N, 7, 7, 512) may be float16 memmaps; image_rows[i] is the
    feature row of caption i, token_ids[i] its word ids (no start/end). The pair order of epoch e is
    seeded by (seed, e), so a resumed run reproduces it. With aug_global (N, K, D) and aug_grid
    (N, K, 7, 7, 512), each epoch uses one seeded view per image (original or one of the K).
    The dataset holds `num_epochs` consecutive epochs starting at `epoch` (None: endless, for
    `fit(steps_per_epoch=ceil(pairs / batch_size))`); each epoch ends with its own partial batch.

    With `replicas` (multi-worker), every pipeline walks the same global batches of `batch_size` pairs
    and yields only its replicas' slices of each, so the replicas of all workers together see exactly
    the global batch a single process sees. A last partial batch smaller than `replicas.total` is
    dropped (a replica must not get an empty slice).
    """
    rows_all = np.asarray(image_rows, dtype=np.int64)  # (C,)
    _check_inputs(global_feats, grid_feats, rows_all, token_ids)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if (aug_global is None) != (aug_grid is None):
        raise ValueError("give both aug_global and aug_grid, or neither")
    n_aug = 0 if aug_global is None else int(aug_global.shape[1])
    cap, k = _pair_index(token_ids, max_len)  # (P,), (P,)
    seq = _sequence_matrix(token_ids, max_len, start_id, end_id)  # (C, L + 1)
    n_pairs = len(cap)
    if n_pairs == 0:
        raise ValueError("no captions: the pairs dataset would be empty")
    dim = int(global_feats.shape[1])
    _check_replicas(replicas)
    kept = _kept_pairs(n_pairs, batch_size, replicas.total)

    def epoch_order(ep: np.int64) -> np.ndarray:
        return _order(n_pairs, shuffle, seed, int(ep))[:kept]

    def gather(idx: np.ndarray, ep: np.int64, part: np.int64) -> tuple[np.ndarray, ...]:
        if replicas.total > 1:  # this replica's contiguous slice of the global batch
            lo, hi = len(idx) * int(part) // replicas.total, len(idx) * (int(part) + 1) // replicas.total
            idx = idx[lo:hi]
        c, kk = cap[idx], k[idx]  # (B,), (B,)
        prefix, target = _prefixes(seq, c, kk, max_len)  # (B, L), (B,)
        rows = rows_all[c]  # (B,)
        uniq, inv = np.unique(rows, return_inverse=True)  # sorted rows: sequential memmap reads
        if n_aug:
            view = _views(len(global_feats), n_aug, seed, int(ep))[uniq]  # (U,)
            g = np.empty((len(uniq), dim), dtype=np.float32)  # (U, D)
            gr = np.empty((len(uniq), GRID_REGIONS, GRID_CHANNELS), dtype=np.float32)  # (U, 49, 512)
            for j, (r, v) in enumerate(zip(uniq, view, strict=True)):
                g[j] = global_feats[r] if v == 0 else aug_global[r, v - 1]
                gr[j] = np.reshape(grid_feats[r] if v == 0 else aug_grid[r, v - 1], (GRID_REGIONS, GRID_CHANNELS))
        else:
            g = np.asarray(global_feats[uniq], dtype=np.float32)  # (U, D)
            gr = np.asarray(grid_feats[uniq], dtype=np.float32).reshape(len(uniq), GRID_REGIONS, GRID_CHANNELS)
        return g[inv], gr[inv], prefix, target  # (B, D), (B, 49, 512), (B, L), (B,)

    def load(idx: tf.Tensor, ep: tf.Tensor, part: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        g, gr, prefix, target = tf.numpy_function(
            gather, [idx, ep, part], [tf.float32, tf.float32, tf.int32, tf.int32], stateful=False
        )
        g.set_shape([None, dim])  # (B, D)
        gr.set_shape([None, GRID_REGIONS, GRID_CHANNELS])  # (B, 49, 512)
        prefix.set_shape([None, max_len])  # (B, L)
        target.set_shape([None])  # (B,)
        return {"global": g, "grid": gr, "prefix": prefix}, target

    def one_epoch(ep: tf.Tensor) -> tf.data.Dataset:
        order = tf.numpy_function(epoch_order, [ep], tf.int64, stateful=False)
        order.set_shape([kept])  # (P,)
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
        if replicas.local > 1:  # one slice per local replica, in replica order
            parts = tf.data.Dataset.range(replicas.first, replicas.first + replicas.local)
            batches = batches.flat_map(lambda idx: parts.map(lambda j: (idx, j)))
        else:
            batches = batches.map(lambda idx: (idx, tf.constant(replicas.first, tf.int64)))
        return batches.map(lambda idx, j: load(idx, ep, j), num_parallel_calls=tf.data.AUTOTUNE,
                           deterministic=True)

    stop = np.iinfo(np.int64).max if num_epochs is None else epoch + int(num_epochs)
    ds = tf.data.Dataset.range(int(epoch), stop).flat_map(one_epoch)
    if num_epochs is not None:  # flat_map hides the length; Keras wants it to size epochs
        per_epoch = -(-kept // batch_size) * replicas.local
        ds = ds.apply(tf.data.experimental.assert_cardinality(int(num_epochs) * per_epoch))
    return ds.prefetch(tf.data.AUTOTUNE)


def _check_replicas(replicas: ReplicaSlice) -> None:
    first, local, total = replicas
    if total < 1 or local < 1 or first < 0 or first + local > total:
        raise ValueError(f"replica slice {tuple(replicas)}: need 0 <= first, 1 <= local, first + local <= total")


def _kept_pairs(n_pairs: int, batch_size: int, n_replicas: int) -> int:
    """Pairs per epoch: all, less a last partial batch too small to give every replica a pair."""
    rest = n_pairs % batch_size
    return n_pairs - rest if 0 < rest < n_replicas else n_pairs


def global_batches(n_pairs: int, batch_size: int, n_replicas: int = 1) -> int:
    """Global batches per epoch of a (sharded) pairs dataset."""
    return -(-_kept_pairs(n_pairs, batch_size, n_replicas) // batch_size)


def store_pairs_dataset(
    store: Any,
    image_rows: Sequence[int] | np.ndarray,
    token_ids: Sequence[Sequence[int]],
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    max_len: int = 21,
    augment: bool = False,
    epoch: int = 0,
    num_epochs: int | None = 1,
    replicas: ReplicaSlice = WHOLE,
) -> tf.data.Dataset:
    """`make_pairs_dataset` over a `medcap.features.FeatureStore` (its augmented views when `augment`)."""
    aug_g = store.aug_global() if augment else None
    aug_r = store.aug_grid() if augment else None
    if augment and aug_g is None:
        log.warning("%s: no augmented views in the store; training on the original features", store.path)
        aug_r = None
    return make_pairs_dataset(
        store.global_feats(),
        store.grid(),
        image_rows,
        token_ids,
        batch_size,
        shuffle=shuffle,
        seed=seed,
        max_len=max_len,
        aug_global=aug_g,
        aug_grid=aug_r,
        epoch=epoch,
        num_epochs=num_epochs,
        replicas=replicas,
    )
