"""Is an image unlike a run's training images? Its nearest-neighbour similarity against a calibrated threshold.

A caption model captions anything, a grey square included, in the words of its training set. What tells a
user that an image is outside what the model has seen: the cosine similarity of the image's global features
to its closest training image (`medcap.base.neighbours.top_k`, the search similar cases use), compared with how
close the training images are to each other.

Calibration (`calibrate`): every training image's leave-one-out similarity, i.e. its similarity to the
closest *other* training image (at most `MAX_CALIBRATION` images, a seeded sample, against all of them).
The threshold is the `PERCENTILE`-th percentile (1st) of those: an image whose closest training image is
less similar than that is less like the training set than 99% of the training images are like each other,
and gets a warning. No TensorFlow, no Streamlit here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medcap.base.neighbours import top_k

PERCENTILE = 1.0  # threshold: this percentile of the training images' leave-one-out similarities
MAX_CALIBRATION = 2000  # training images used as calibration queries at most (seeded sample)


@dataclass(frozen=True)
class Familiarity:
    """The calibrated threshold of one run's training set."""

    threshold: float  # cosine similarity; below it an image is flagged
    percentile: float
    n_train: int
    n_calibration: int
    median: float  # median leave-one-out similarity of the training images (for the message)

    def is_unfamiliar(self, similarity: float) -> bool:
        """True when an image whose closest training image has this similarity is out of distribution."""
        return bool(similarity < self.threshold)

    def describe(self, similarity: float) -> str:
        """One sentence: the image's closest similarity beside the training set's own."""
        return (f"its closest training image has cosine similarity {similarity:.3f}; only {self.percentile:g}% of "
                f"the training images are less similar to their own closest other training image (threshold "
                f"{self.threshold:.3f}, median {self.median:.3f}, over {self.n_calibration} of {self.n_train} images)")


def leave_one_out(train_feats: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Similarity (len(rows),) of each training row in `rows` to its closest *other* training row."""
    idx, sims = top_k(train_feats, np.asarray(train_feats[rows], dtype=np.float32), 2)  # (Q, 2)
    own = idx[:, 0] == rows  # usually the row itself comes first; a duplicate image may come first instead
    return np.where(own, sims[:, 1], sims[:, 0]).astype(np.float32)


def calibrate(train_feats: np.ndarray, percentile: float = PERCENTILE, max_queries: int = MAX_CALIBRATION,
              seed: int = 0) -> Familiarity:
    """The threshold of a training set's global features (N, D); ValueError with fewer than 2 images."""
    n = len(train_feats)
    if n < 2:
        raise ValueError(f"out-of-distribution check: needs at least 2 training images, got {n}")
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    rows = np.arange(n)
    if n > max_queries:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=max_queries, replace=False))
    loo = leave_one_out(train_feats, rows)  # (Q,)
    return Familiarity(threshold=float(np.percentile(loo, percentile)), percentile=percentile, n_train=n,
                       n_calibration=len(rows), median=float(np.median(loo)))


def nearest_similarity(train_feats: np.ndarray, query: np.ndarray) -> float:
    """Cosine similarity of one query (D,) to its closest training row."""
    _, sims = top_k(train_feats, np.asarray(query, dtype=np.float32).reshape(1, -1), 1)  # (1, 1)
    return float(sims[0, 0])


__all__ = ["MAX_CALIBRATION", "PERCENTILE", "Familiarity", "calibrate", "leave_one_out", "nearest_similarity"]
