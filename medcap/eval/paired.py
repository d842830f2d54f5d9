"""The paired difference of two systems on the same images: one function for the CLI and the dashboard.

`paired_comparison` scores two systems' captions against the same references and bootstraps B - A over
cases. `python -m medcap compare` calls it after decoding both runs; the Compare page calls
`paired_from_predictions` on the two runs' stored evaluations (no decoding, no TensorFlow).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from medcap.eval import bootstrap as bs
from medcap.eval.metrics import Hyps, Refs
from medcap.eval.scoring import paired_table, score_systems

NOTES = ("Resamples cases (groups), not images. BLEU: NLTK corpus BLEU recomputed per resample; "
         "ROUGE-L/CIDEr/METEOR: mean of per-image scores per resample.")


def paired_comparison(refs: Refs, hyps_a: Hyps, hyps_b: Hyps, groups: list[str], *, n_boot: int = bs.N_RESAMPLES,
                      seed: int = bs.SEED, with_meteor: bool = True) -> dict[str, Any]:
    """{metrics: {metric: {a, b, diff, ci95, share_b_gt_a}}, corpus, bootstrap, notes, skipped} of B vs A."""
    scores, skipped = score_systems(refs, {"a": hyps_a, "b": hyps_b}, n_boot=n_boot, seed=seed,
                                    with_meteor=with_meteor, groups=groups)
    return {
        "n_images": len(refs),
        "metrics": paired_table(scores["a"], scores["b"], n_boot=n_boot, seed=seed, groups=groups),
        "corpus": {"a": scores["a"].summary, "b": scores["b"].summary},
        "n_resamples": n_boot,
        "seed": seed,
        "bootstrap": {"unit": "group", "n_groups": len(set(groups)), "n_resamples": n_boot, "seed": seed},
        "notes": NOTES,
        "skipped": skipped,
    }


def _reference_lists(text: Any) -> list[list[str]]:
    """The `references` cell of predictions.csv (a JSON list of token lists) as token lists."""
    items = json.loads(text) if isinstance(text, str) else []
    return [r if isinstance(r, list) else str(r).split() for r in items]


def paired_from_predictions(a: pd.DataFrame, b: pd.DataFrame, *, n_boot: int = bs.N_RESAMPLES, seed: int = bs.SEED,
                            with_meteor: bool = False) -> dict[str, Any]:
    """The paired difference of two evaluations' predictions (`medcap.eval.artifacts.read_predictions`) on the
    images both scored with the same references; ValueError when they share none."""
    b_by_id = b.set_index("image_id")
    ids = [i for i in a["image_id"].astype(str) if i in b_by_id.index]
    a_by_id = a.set_index("image_id")
    ids = [i for i in ids if a_by_id.at[i, "references"] == b_by_id.at[i, "references"]]
    if not ids:
        raise ValueError("the two evaluations share no image with the same references")
    refs = [_reference_lists(a_by_id.at[i, "references"]) for i in ids]
    hyps_a = [str(a_by_id.at[i, "prediction"]).split() for i in ids]
    hyps_b = [str(b_by_id.at[i, "prediction"]).split() for i in ids]
    groups = [str(a_by_id.at[i, "group"]) for i in ids] if "group" in a.columns else list(ids)
    out = paired_comparison(refs, hyps_a, hyps_b, groups, n_boot=n_boot, seed=seed, with_meteor=with_meteor)
    out["images"] = "the images both evaluations scored, with the same references"
    return out
