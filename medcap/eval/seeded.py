"""Scores over cases AND training seeds: a two-level bootstrap (pure NumPy plus the metric libraries).

A study trains every system once per init seed on every fold. Its intervals must cover both sources of
noise: which cases were sampled and which seed trained the model. One resample (the two-level bootstrap):

1. draw the G cases with replacement (the case bootstrap of `medcap.eval.bootstrap`), then
2. for every drawn case, draw one of the S seeds, and take that seed's captions for the case's images.

Items are stacked seed by seed: item `s * N + i` is image i as captioned by seed s, so a resample is a
weight row (S * N,). The point estimate uses every item once (corpus BLEU over all seeds' captions; the
mean of per-image scores over images and seeds). A paired difference applies the SAME weight rows to both
systems, so case c is drawn with the same seed s for both (seed s of system A against seed s of system
B). With one seed this is exactly the case bootstrap (the same random draws). Systems that do not depend
on the seed (1-NN, most frequent caption) are tiled S times.

CIDEr's document frequencies come from each block's own references (`blocks`: the fold of each image),
as in every fold's own evaluation; the pooled CIDEr is the mean of those per-image scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medcap.eval import bootstrap as bs
from medcap.eval.metrics import BLEU_WEIGHTS, Refs, Tokens, cider, meteor_systems, rouge_l
from medcap.eval.scoring import SystemScores

METHOD = ("two-level bootstrap: resample cases with replacement, then one training seed per drawn case "
          "(the same seed for every system in a paired difference); 95% percentile interval")
CIDER_RULE = ("CIDEr document frequencies from each fold's own test references (as in each fold's "
              "evaluation); the pooled value is the mean of those per-image scores")

SeededHyps = Sequence[Sequence[Tokens]]  # (S, N) token lists: one caption list per seed


def two_level_weights(n_items: int, groups: bs.Groups, n_seeds: int, n: int = bs.N_RESAMPLES,
                      seed: int = bs.SEED) -> np.ndarray:
    """Weights (n, S * N) int32 of `n` two-level resamples (cases, then a seed per drawn case).

    With `n_seeds == 1` the rows equal `bootstrap.resample_weights` (the same draws).
    """
    if n_seeds < 1:
        raise ValueError(f"two_level_weights: need at least one seed, got {n_seeds}")
    codes, n_groups = bs.group_codes(n_items, groups)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(n, n_groups))  # (n, G) drawn cases
    picks = np.zeros_like(draws) if n_seeds == 1 else rng.integers(0, n_seeds, size=(n, n_groups))  # (n, G)
    cells = picks * n_groups + draws  # (n, G) index into (S, G)
    offsets = (np.arange(n, dtype=np.int64) * n_seeds * n_groups)[:, None]  # (n, 1)
    counts = np.bincount((cells + offsets).ravel(), minlength=n * n_seeds * n_groups)
    counts = counts.reshape(n, n_seeds, n_groups)  # (n, S, G)
    return counts[:, :, codes].reshape(n, n_seeds * n_items).astype(np.int32)  # (n, S * N)


def _blocked(fn: Any, refs: Refs, hyps: Sequence[Tokens], blocks: Sequence[int]) -> np.ndarray:
    """Per-image scores (N,) of `fn(refs, hyps)` computed block by block (each block's own references)."""
    labels = np.asarray(blocks)
    out = np.zeros(len(hyps), dtype=np.float64)
    for b in sorted(set(labels.tolist())):
        rows = np.nonzero(labels == b)[0]
        out[rows] = fn([refs[i] for i in rows], [hyps[i] for i in rows]).per_image
    return out


def score_seeded(refs: Refs, systems: dict[str, SeededHyps], blocks: Sequence[int], groups: bs.Groups,
                 n_boot: int = bs.N_RESAMPLES, seed: int = bs.SEED, with_meteor: bool = True
                 ) -> tuple[dict[str, SystemScores], dict[str, str], np.ndarray]:
    """Every system's corpus metrics with two-level CIs; returns (scores, skipped, weights (n, S * N)).

    `systems[name]` holds S caption lists of N images each (the same S for every system; tile a
    seed-independent system). Each summary entry has `value`, `ci95` and, with S > 1, `per_seed` (the
    metric of each seed's captions alone) and `seed_sd` (their sd, n - 1).
    """
    n_img = len(refs)
    sizes = {len(h) for h in systems.values()}
    if len(sizes) != 1:
        raise ValueError(f"score_seeded: systems have different numbers of seeds {sorted(sizes)}")
    n_seeds = sizes.pop()
    for name, per_seed in systems.items():
        if any(len(h) != n_img for h in per_seed):
            raise ValueError(f"score_seeded: {name} does not caption all {n_img} images for every seed")
    weights = two_level_weights(n_img, groups, n_seeds, n_boot, seed)
    tiled_refs = [r for _ in range(n_seeds) for r in refs]
    flat = {name: [h for hyps in per_seed for h in hyps] for name, per_seed in systems.items()}
    skipped: dict[str, str] = {}
    meteors = meteor_systems(tiled_refs, flat) if with_meteor else {}
    if not with_meteor:
        skipped["meteor"] = "not requested (with_meteor=False)"
    tiled_blocks = [b for _ in range(n_seeds) for b in blocks]
    seed_rows = np.arange(n_seeds * n_img).reshape(n_seeds, n_img)  # (S, N) item index of (seed, image)
    out: dict[str, SystemScores] = {}
    for name, hyps in flat.items():
        sc = SystemScores(bleu_stats=bs.BleuStats(tiled_refs, hyps))
        values = sc.bleu_stats.scores()
        boot = sc.bleu_stats.scores_batch(weights)
        for key in BLEU_WEIGHTS:
            per = [sc.bleu_stats.scores(_one_seed(seed_rows, s))[key] for s in range(n_seeds)]
            sc.summary[key] = _entry(values[key], boot[key], per)
        sc.per_image["rouge_l"] = rouge_l(tiled_refs, hyps).per_image
        sc.per_image["cider"] = _blocked(cider, tiled_refs, hyps, tiled_blocks)
        met = meteors.get(name)
        if met is not None and met.skipped is None:
            sc.per_image["meteor"] = np.asarray(met.per_image, dtype=np.float64)
        elif met is not None:
            skipped["meteor"] = met.skipped or "skipped"
        for key, per_item in sc.per_image.items():
            per = [float(np.mean(per_item[seed_rows[s]])) for s in range(n_seeds)]
            sc.summary[key] = _entry(float(np.mean(per_item)), bs.weighted_means(per_item, weights), per)
        out[name] = sc
    return out, skipped, weights


def _one_seed(seed_rows: np.ndarray, s: int) -> np.ndarray:
    """Weights (S * N,) selecting seed s's items once."""
    w = np.zeros(seed_rows.size, dtype=np.int64)
    w[seed_rows[s]] = 1
    return w


def _entry(value: float, boot: np.ndarray, per_seed: list[float]) -> dict[str, Any]:
    out: dict[str, Any] = {"value": float(value), "ci95": list(bs.percentile_ci(boot))}
    if len(per_seed) > 1:
        out["per_seed"] = [float(v) for v in per_seed]
        out["seed_sd"] = float(np.std(per_seed, ddof=1))
    return out


def paired_seeded(a: SystemScores, b: SystemScores, weights: np.ndarray) -> dict[str, dict[str, Any]]:
    """B - A for every metric both have, under the same two-level resamples `weights` (n, S * N)."""
    if a.bleu_stats is None or b.bleu_stats is None:
        raise ValueError("paired_seeded: both systems need BLEU statistics")
    full = np.ones((1, weights.shape[1]), dtype=np.int32)
    out: dict[str, dict[str, Any]] = {}
    for key in BLEU_WEIGHTS:
        fn = bs.bleu_metric(key)
        out[key] = _paired(fn(a.bleu_stats, full)[0], fn(b.bleu_stats, full)[0],
                           fn(b.bleu_stats, weights) - fn(a.bleu_stats, weights), len(weights))
    for key in ("rouge_l", "cider", "meteor"):
        if key in a.per_image and key in b.per_image:
            xa, xb = a.per_image[key], b.per_image[key]
            out[key] = _paired(float(np.mean(xa)), float(np.mean(xb)),
                               bs.weighted_means(xb, weights) - bs.weighted_means(xa, weights), len(weights))
    return out


def _paired(va: float, vb: float, diffs: np.ndarray, n: int) -> dict[str, Any]:
    return {"a": float(va), "b": float(vb), "diff": float(vb) - float(va), "ci95": list(bs.percentile_ci(diffs)),
            "share_b_gt_a": float(np.mean(np.asarray(diffs) > 0)), "n_resamples": n, "method": METHOD}
