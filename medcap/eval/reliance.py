"""Image grounding check: how much worse the captions get when each image's features are swapped.

Every evaluation also decodes its images with each image's features replaced by those of another image of
the same evaluation set (a fixed, seeded permutation that moves every image to another case when there
is more than one case). "Image reliance" is the metric of the real captions minus that of the swapped
ones, with a paired case-level bootstrap CI. A captioner that ignores its image scores the same on both:
reliance ~ 0. Pure NumPy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def swap_permutation(groups: Sequence[str], seed: int = 0) -> np.ndarray:
    """A permutation p (N,) with groups[p[i]] != groups[i] wherever possible (image i gets p[i]'s features).

    Images are shuffled (seeded), then each takes the features of the image half the set further along
    the shuffled order of groups, so with two or more cases no image keeps its own case unless one case
    holds more than half of the images. With one image (or one case) the permutation is a seeded shuffle.
    """
    labels = np.asarray([str(g) for g in groups])
    n = len(labels)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    order = order[np.argsort(labels[order], kind="stable")]  # grouped by case, shuffled within
    shift = n // 2 if n > 1 else 0
    perm = np.empty(n, dtype=np.int64)
    perm[order] = np.roll(order, -shift)  # image order[i] gets order[i + n/2]
    return perm


def own_case_share(groups: Sequence[str], perm: np.ndarray) -> float:
    """Share of images that received features of their own case (0 when the swap is clean)."""
    labels = np.asarray([str(g) for g in groups])
    return float(np.mean(labels == labels[perm])) if len(labels) else 0.0
