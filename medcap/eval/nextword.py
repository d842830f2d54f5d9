"""Next-word classification over (prefix, next word) pairs, as the paper's Table 2.

A caption of n words (ids w1..wn, no markers) gives n + 1 pairs: prefix `<start> w1..wk`
(right-padded with 0 to `max_len`) and target w(k+1), the last target being `<end>`; these are
the pairs the model is trained on. Reference words outside the run's vocabulary are `<unk>` here.
The model is any callable taking {"global", "grid", "prefix"} (raw store features: a run's model
applies its own feature scale) and returning {"probs": (B, V)} (a Keras model); TensorFlow is not
imported by this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medcap.eval.metrics import classification_metrics


def next_word_pairs(token_ids: Sequence[Sequence[int]], start_id: int, end_id: int, max_len: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs of the captions: (image index (P,), prefixes (P, max_len) int32, targets (P,) int64).

    Prefixes longer than `max_len` keep their last `max_len` tokens.
    """
    if max_len < 1:
        raise ValueError(f"next_word_pairs: max_len must be >= 1, got {max_len}")
    images: list[int] = []
    prefixes: list[list[int]] = []
    targets: list[int] = []
    for i, ids in enumerate(token_ids):
        seq = [start_id, *ids, end_id]
        for k in range(1, len(seq)):
            images.append(i)
            prefixes.append(seq[max(0, k - max_len) : k])
            targets.append(seq[k])
    out = np.zeros((len(prefixes), max_len), dtype=np.int32)  # (P, T), 0 = pad
    for row, prefix in enumerate(prefixes):
        out[row, : len(prefix)] = prefix
    return np.array(images, dtype=np.int64), out, np.array(targets, dtype=np.int64)


PAPER_THRESHOLD = 0.5


def paper_prf_counts(probs: np.ndarray, targets: np.ndarray, threshold: float = PAPER_THRESHOLD
                     ) -> tuple[int, int, int]:
    """Counts behind the paper's precision/recall: Keras `Precision()`/`Recall()` on one-hot targets.

    Over every (pair, word) cell of probs (P, V): true positives are cells of the true word with
    p > threshold, predicted positives every cell with p > threshold. Returns (tp, predicted positives, P).
    """
    probs = np.asarray(probs, dtype=np.float32)  # (P, V)
    targets = np.asarray(targets, dtype=np.int64)  # (P,)
    p_true = probs[np.arange(len(targets)), targets]  # (P,)
    return int((p_true > threshold).sum()), int((probs > threshold).sum()), len(targets)


def paper_prf(tp: int, predicted_positive: int, n_pairs: int) -> dict[str, float]:
    """Precision = tp / predicted positives, recall = tp / pairs, F1 their harmonic mean (0 when undefined)."""
    precision = tp / predicted_positive if predicted_positive else 0.0
    recall = tp / n_pairs if n_pairs else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def majority_next_word(train_token_ids: Sequence[Sequence[int]], start_id: int, end_id: int,
                       banned: Sequence[int] = ()) -> int:
    """The most frequent next-word target of the training pairs (ties: the smallest id), `banned` excluded."""
    counts: dict[int, int] = {}
    for ids in train_token_ids:
        for t in [*ids, end_id]:
            if t not in banned:
                counts[int(t)] = counts.get(int(t), 0) + 1
    if not counts:
        return int(end_id)
    best = max(counts.values())
    return min(t for t, c in counts.items() if c == best)


def predict_next_words(model: Any, global_feats: np.ndarray, grid_feats: np.ndarray, images: np.ndarray,
                       prefixes: np.ndarray, targets: np.ndarray | None = None, banned: Sequence[int] = (),
                       batch_size: int = 256) -> tuple[np.ndarray, tuple[int, int, int], int]:
    """Arg-max next word of every pair (P,) among the allowed words, the paper's P/R counts, and the
    number of pairs whose unrestricted arg-max is right (Keras' accuracy, the paper's).

    Features are gathered per pair from the per-image arrays (raw store features: the model scales
    them itself). Words in `banned` (e.g. `<pad>`, `<start>`, `<unk>`, which decoding never emits)
    are never the arg-max; the paper's counts use the unrestricted probabilities, as Keras does.
    """
    g_all = np.asarray(global_feats, dtype=np.float32)  # (N, D)
    r_all = np.asarray(grid_feats, dtype=np.float32).reshape(len(g_all), 49, -1)  # (N, 49, 512)
    banned_idx = np.asarray(sorted(set(int(b) for b in banned)), dtype=np.int64)
    preds = np.zeros(len(prefixes), dtype=np.int64)
    tp = pred_pos = raw_right = 0
    for start in range(0, len(prefixes), batch_size):
        rows = images[start : start + batch_size]
        out = model({"global": g_all[rows], "grid": r_all[rows], "prefix": prefixes[start : start + batch_size]},
                    training=False)
        probs = np.asarray(out["probs"], dtype=np.float32)  # (B, V)
        if targets is not None:
            batch_targets = targets[start : start + len(rows)]
            t, pp, _ = paper_prf_counts(probs, batch_targets)
            tp, pred_pos = tp + t, pred_pos + pp
            raw_right += int((probs.argmax(axis=1) == batch_targets).sum())
        if len(banned_idx):
            probs = probs.copy()
            probs[:, banned_idx] = -1.0
        preds[start : start + len(rows)] = probs.argmax(axis=1)
    return preds, (tp, pred_pos, len(prefixes)), raw_right


def next_word_metrics(model: Any, global_feats: np.ndarray, grid_feats: np.ndarray,
                      token_ids: Sequence[Sequence[int]], start_id: int, end_id: int, max_len: int,
                      batch_size: int = 256, unk_id: int | None = None, banned: Sequence[int] = (),
                      train_token_ids: Sequence[Sequence[int]] | None = None) -> dict[str, Any]:
    """Next-word accuracy, the paper's thresholded precision/recall/F1, macro/weighted extras, baselines.

    `accuracy` counts every pair (the arg-max restricted to words decoding may emit: not `banned`);
    `accuracy_excl_unk` leaves out pairs whose target is `<unk>` (`unk_id`); `unk_target_rate` is the
    accuracy of always answering `<unk>`; `majority_baseline` always answers the most frequent training
    target. `paper_definition` is Keras' Precision()/Recall() on one-hot targets at threshold 0.5.
    """
    images, prefixes, targets = next_word_pairs(token_ids, start_id, end_id, max_len)
    if len(targets) == 0:
        out: dict[str, Any] = classification_metrics([], [])
        out["paper_definition"] = {**paper_prf(0, 0, 0), "accuracy": 0.0, "threshold": PAPER_THRESHOLD}
        return out
    preds, counts, raw_right = predict_next_words(model, global_feats, grid_feats, images, prefixes, targets,
                                                  banned, batch_size)
    out = classification_metrics(targets, preds)
    out["paper_definition"] = {**paper_prf(*counts), "accuracy": raw_right / len(targets),
                               "threshold": PAPER_THRESHOLD}
    out["end_target_rate"] = float(np.mean(targets == end_id))
    if unk_id is not None:
        known = targets != unk_id
        out["unk_target_rate"] = float(np.mean(~known))
        out["accuracy_excl_unk"] = float(np.mean(preds[known] == targets[known])) if known.any() else 0.0
    if train_token_ids is not None:
        word = majority_next_word(train_token_ids, start_id, end_id, banned)
        out["majority_baseline"] = {"word_id": int(word), "accuracy": float(np.mean(targets == word))}
    return out
