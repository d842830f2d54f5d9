"""Linear probes on image features: how much of each clinical fact the features already know.

A probe is a standardised multinomial logistic regression per fact, fitted on the training images'
labels and scored on the test images; images without a label for a fact are left out of that fact.
It is the floor a captioner's fact predictors must beat (issue 21, item 4). Pure: numpy and
scikit-learn, no TensorFlow; the feature store is read through its float16 memory maps.

Labels are plain strings per image (None or "" = no label), so the module knows nothing of MedPix.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from medcap.features.store import FeatureStore

log = logging.getLogger(__name__)

POOL_KINDS = ("global", "mean", "max", "mean+max")
HEADS = ("linear", "mlp")


def pool_grid(grid: np.ndarray, kind: str = "mean+max") -> np.ndarray:
    """Pool a (N, h, w, C) grid to (N, C) ("mean", "max") or (N, 2C) ("mean+max": mean then max), float32."""
    if grid.ndim != 4:
        raise ValueError(f"grid must be (N, h, w, C), got shape {grid.shape}")
    g = np.asarray(grid, dtype=np.float32)  # (N, h, w, C)
    if kind == "mean":
        return g.mean(axis=(1, 2))  # (N, C)
    if kind == "max":
        return g.max(axis=(1, 2))  # (N, C)
    if kind == "mean+max":
        return np.concatenate([g.mean(axis=(1, 2)), g.max(axis=(1, 2))], axis=1)  # (N, 2C)
    raise ValueError(f"unknown grid pooling {kind!r}: choose one of {', '.join(POOL_KINDS[1:])}")


def pooled_features(store: FeatureStore, rows: Sequence[int] | np.ndarray, kind: str = "mean+max",
                    chunk: int = 256) -> np.ndarray:
    """The probe's input for store rows, in the given order, as float32.

    kind: "global" (the store's global vector, (N, D)), or a pooling of the grid (`pool_grid`): "mean",
    "max" (N, C) or "mean+max" (N, 2C). The grid memmap is read in chunks of sorted rows.
    """
    if kind not in POOL_KINDS:
        raise ValueError(f"unknown feature kind {kind!r}: choose one of {', '.join(POOL_KINDS)}")
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= len(store)):
        raise IndexError(f"rows out of range 0..{len(store) - 1} of feature store {store.path}")
    order = np.argsort(rows, kind="stable")
    if kind == "global":
        out = np.empty((len(rows), store.global_dim), dtype=np.float32)  # (N, D)
        out[order] = np.asarray(store.global_feats()[rows[order]], dtype=np.float32)
        return out
    grid = store.grid()  # (M, h, w, C) float16 memmap
    width = grid.shape[-1] * (2 if kind == "mean+max" else 1)
    out = np.empty((len(rows), width), dtype=np.float32)  # (N, C or 2C)
    for start in range(0, len(rows), chunk):
        part = order[start:start + chunk]
        out[part] = pool_grid(grid[rows[part]], kind)  # (n, C or 2C)
    return out


def _clean(labels: Sequence[str | None]) -> list[str | None]:
    return [None if lab is None or str(lab).strip() == "" else str(lab) for lab in labels]


def make_head(head: str = "linear", c: float = 1.0, seed: int = 0, max_iter: int = 2000, alpha: float = 1e-2
              ) -> Pipeline:
    """Standardise + classifier: "linear" (multinomial logistic regression, L2 strength 1/c) or "mlp"
    (one hidden layer of 256 ReLU units, L2 `alpha`, Adam for a fixed 200 epochs: no early stopping, so the
    result does not hang on a small validation slice)."""
    if head == "linear":
        clf: Any = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    elif head == "mlp":
        clf = MLPClassifier(hidden_layer_sizes=(256,), alpha=alpha, max_iter=200, n_iter_no_change=200,
                            random_state=seed)
    else:
        raise ValueError(f"unknown probe head {head!r}: choose one of {', '.join(HEADS)}")
    return make_pipeline(StandardScaler(), clf)


def probe_fact(train_x: np.ndarray, train_y: Sequence[str | None], test_x: np.ndarray,
               test_y: Sequence[str | None], head: str = "linear", c: float = 1.0, seed: int = 0
               ) -> dict[str, Any]:
    """Fit one fact's probe on the labelled training rows, score it on the labelled test rows.

    Returns {accuracy, n_train, n_test, classes (sorted training classes), majority (accuracy of always
    answering the training set's most frequent class), predictions (one per labelled test row, in order),
    test_rows (their positions in test_x)}. accuracy is NaN when no test row has a label.
    """
    train_y, test_y = _clean(train_y), _clean(test_y)
    if len(train_y) != len(train_x) or len(test_y) != len(test_x):
        raise ValueError(f"labels and features differ in length: train {len(train_y)} labels for "
                         f"{len(train_x)} rows, test {len(test_y)} labels for {len(test_x)} rows")
    tr = [i for i, lab in enumerate(train_y) if lab is not None]
    te = [i for i, lab in enumerate(test_y) if lab is not None]
    ytr = [train_y[i] for i in tr]
    yte = [test_y[i] for i in te]
    classes = sorted(set(ytr))
    if not classes:
        raise ValueError("no training image has a label for this fact")
    counts = Counter(ytr)
    top = min(classes, key=lambda k: (-counts[k], k))  # most frequent, ties by name
    if len(classes) == 1:
        pred = [top] * len(te)
    else:
        model = make_head(head, c=c, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(np.asarray(train_x, dtype=np.float32)[tr], ytr)
        pred = [str(p) for p in model.predict(np.asarray(test_x, dtype=np.float32)[te])] if te else []
    correct = sum(p == y for p, y in zip(pred, yte, strict=True))
    return {"accuracy": correct / len(te) if te else float("nan"), "n_train": len(tr), "n_test": len(te),
            "classes": classes, "majority": (sum(y == top for y in yte) / len(te)) if te else float("nan"),
            "predictions": pred, "test_rows": te}


def probe_facts(train_x: np.ndarray, train_labels: dict[str, Sequence[str | None]], test_x: np.ndarray,
                test_labels: dict[str, Sequence[str | None]], head: str = "linear", c: float = 1.0,
                seed: int = 0) -> dict[str, dict[str, Any]]:
    """`probe_fact` for every fact of `train_labels` (same keys required in `test_labels`); deterministic."""
    missing = sorted(set(train_labels) - set(test_labels))
    if missing:
        raise ValueError(f"test labels lack the facts {missing}")
    out = {}
    for fact, labels in train_labels.items():
        out[fact] = probe_fact(train_x, labels, test_x, test_labels[fact], head=head, c=c, seed=seed)
        log.info("probe %s (%s): accuracy %.3f on %d test images, %d classes", fact, head,
                 out[fact]["accuracy"], out[fact]["n_test"], len(out[fact]["classes"]))
    return out
