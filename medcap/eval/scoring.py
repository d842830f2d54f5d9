"""Score several captioning systems on the same references: every corpus metric with its bootstrap CI."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medcap.eval import bootstrap as bs
from medcap.eval.metrics import BLEU_WEIGHTS, Hyps, Refs, cider, corpus_bleu_scores, meteor_systems, rouge_l


@dataclass
class SystemScores:
    """One system's corpus metrics ({"value", "ci95"}), per-image arrays and BLEU statistics."""

    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    per_image: dict[str, np.ndarray] = field(default_factory=dict)  # rouge_l, cider, meteor: (N,)
    bleu_stats: bs.BleuStats | None = None


def score_systems(refs: Refs, systems: dict[str, Hyps], n_boot: int = bs.N_RESAMPLES, seed: int = bs.SEED,
                  with_meteor: bool = True) -> tuple[dict[str, SystemScores], dict[str, str]]:
    """Corpus BLEU-1..4, ROUGE-L, CIDEr and METEOR (one JVM for all systems) with 95% bootstrap CIs.

    Every system is resampled with the same seeded image indices. Returns (scores by system, skipped
    metric -> reason).
    """
    skipped: dict[str, str] = {}
    meteors = meteor_systems(refs, systems) if with_meteor else {}
    if not with_meteor:
        skipped["meteor"] = "not requested (with_meteor=False)"
    out: dict[str, SystemScores] = {}
    for name, hyps in systems.items():
        sc = SystemScores()
        bleu = corpus_bleu_scores(refs, hyps)  # NLTK itself gives the point estimate
        sc.bleu_stats = bs.BleuStats(refs, hyps)
        cis = bs.bootstrap_bleu(sc.bleu_stats, n=n_boot, seed=seed)
        for key in BLEU_WEIGHTS:
            sc.summary[key] = {"value": bleu[key], "ci95": list(cis[key])}
        for key, scored in (("rouge_l", rouge_l(refs, hyps)), ("cider", cider(refs, hyps))):
            sc.per_image[key] = scored.per_image
            sc.summary[key] = {"value": scored.value, "ci95": list(bs.mean_ci(scored.per_image, n_boot, seed))}
        met = meteors.get(name)
        if met is not None and met.skipped is None:
            sc.per_image["meteor"] = met.per_image
            # CI from per-image scores; the value is pycocoevalcap's corpus METEOR
            sc.summary["meteor"] = {"value": met.value, "ci95": list(bs.mean_ci(met.per_image, n_boot, seed))}
        elif met is not None:
            skipped["meteor"] = met.skipped or "skipped"
        out[name] = sc
    return out, skipped


def paired_table(a: SystemScores, b: SystemScores, n_boot: int = bs.N_RESAMPLES, seed: int = bs.SEED
                 ) -> dict[str, dict[str, Any]]:
    """For each metric both systems have: A, B, B - A, paired-bootstrap 95% CI of B - A, share B > A.

    BLEU is recomputed from n-gram statistics per resample; ROUGE-L, CIDEr and METEOR use the mean of
    per-image scores (for METEOR this differs slightly from pycocoevalcap's aggregated corpus score).
    """
    if a.bleu_stats is None or b.bleu_stats is None:
        raise ValueError("paired_table: both systems need BLEU statistics")
    out: dict[str, dict[str, Any]] = {}
    for key in BLEU_WEIGHTS:
        out[key] = bs.paired_bootstrap(bs.bleu_metric(key), a.bleu_stats, b.bleu_stats, n=n_boot, seed=seed)
    for key in ("rouge_l", "cider", "meteor"):
        if key in a.per_image and key in b.per_image:
            out[key] = bs.paired_bootstrap(bs.mean_metric, a.per_image[key], b.per_image[key], n=n_boot, seed=seed)
    return out

