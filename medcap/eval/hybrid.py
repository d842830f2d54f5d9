"""Retrieval-augmented evaluation: what the caption memory adds, and what decoding guarantees by construction.

A run with `memory_k > 0` does not caption with its network alone: every next-word distribution is mixed
with the continuations of the nearest training captions (`medcap.model.decoding.memory`), which copies spans of
those captions. Such a run is a retrieval-augmented system, and its evaluation reports beside it:

- `model_neural_only`: the same weights re-decoded with the memory off (`memory_k = 0`), everything else equal;
- image reliance both ways: features swapped with the memory held to each TRUE image's neighbours (what the
  network itself reads from the image: the neural part), and features and memory both swapped (the
  whole system, the same check as for any run).

Also here: which caption-health figures a run's decoding settings enforce (0% back-to-back repeats under
`block_repeats` is a rule of the search, not a quality result) and the record of the pool the baselines
and the memory retrieve from. TensorFlow only through the loaded run's `decode`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

NEURAL_ONLY = "model_neural_only"
SWAPPED_MEMORY_HELD = "swapped_features_memory_held"
LABEL = "retrieval-augmented"

DEFINITIONS = {
    "retrieval_augmented": "true when decoding mixes each next-word distribution with the caption memory "
    "(memory_k > 0): the captions are partly copied from the nearest training captions",
    NEURAL_ONLY: "the same weights decoded with the caption memory off (memory_k = 0), every other setting equal",
    "image_reliance.metrics": "real minus swapped, features AND caption memory swapped together (the whole system)",
    "image_reliance.neural_part": "real minus swapped, features swapped but the caption memory held to each true "
    "image's own neighbours: what the network itself reads from the image",
    "caption_health.enforced_by_decoding": "figures guaranteed by the decoding rules (e.g. block_repeats forbids "
    "back-to-back repeats, so their share is 0 by construction), not a measured quality",
    "baseline_pool": "the training images the 1-NN and most-frequent baselines (and the caption memory) draw from",
}


def is_retrieval_augmented(settings: Mapping[str, Any]) -> bool:
    """True when these decoding settings (RunConfig decode fields) read the caption memory."""
    return int(settings.get("memory_k") or 0) > 0 and float(settings.get("memory_lambda") or 0.0) > 0


def extra_decodes(loaded: Any, ev: Any, settings: Mapping[str, Any], options: Any, memory: Any,
                  perm: np.ndarray | None) -> dict[str, list[list[str]]]:
    """For a retrieval-augmented decode: the neural-only captions and, given the swap `perm`, the captions
    of swapped features with the memory held to the true images' neighbours ({} otherwise).

    `options` and `memory` are the evaluation's (`DecodeOptions`, the caption memory of `ev.image_ids`)."""
    if not is_retrieval_augmented(settings):
        return {}
    neural = loaded.decode(ev.global_feats, ev.grid_feats, options.replace(memory_k=0), image_ids=ev.image_ids)
    out = {NEURAL_ONLY: [list(c.words) for c in neural]}
    if perm is not None:  # features of another case, each row still decoding with its TRUE image's memory
        held = loaded.decode(ev.global_feats[perm], ev.grid_feats[perm], options, image_ids=ev.image_ids,
                             memory=memory)
        out[SWAPPED_MEMORY_HELD] = [list(c.words) for c in held]
    return out


def reliance_table(table: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """`paired_table(swapped, model)` rows as image-reliance entries: value (real - swapped), CI, swapped."""
    return {k: {"value": v["diff"], "ci95": v["ci95"], "swapped": v["a"]} for k, v in table.items()}


def enforced_by_decoding(settings: Mapping[str, Any]) -> list[str]:
    """Caption-health keys whose value the decoding rules fix (block_repeats, no_repeat_ngram = 2)."""
    out = []
    if bool(settings.get("block_repeats")):
        out.append("adjacent_repeat_share")
    if int(settings.get("no_repeat_ngram") or 0) == 2:
        out.append("repeated_bigram_share")
    return out


def baseline_pool(loaded: Any) -> dict[str, Any]:
    """The pool the baselines retrieve from: size, cases, the caption rule and a digest of its image ids."""
    train = loaded.training_set()
    cfg = loaded.cfg
    long = "longer ones truncated" if cfg.long_captions == "truncate" else "longer ones dropped"
    digest = hashlib.sha256("\n".join(sorted(map(str, train.ids))).encode("utf-8")).hexdigest()
    return {"n_images": len(train.ids), "n_cases": len(set(train.groups)),
            "rule": f"the run's training split, captions of at most {cfg.max_words} words ({long})",
            "long_captions": cfg.long_captions, "max_words": cfg.max_words, "ids_sha256": digest}


def add_neural_reliance(reliance: dict[str, Any], scores: Mapping[str, Any], **boot: Any) -> None:
    """Add `neural_part` (features swapped, memory held) to an evaluation's image-reliance record."""
    from medcap.eval.scoring import paired_table

    if SWAPPED_MEMORY_HELD in scores:
        held = paired_table(scores[SWAPPED_MEMORY_HELD], scores["model"], **boot)
        reliance["neural_part"] = reliance_table(held)


def add_health(health: dict[str, Any], settings: Mapping[str, Any], extra: Mapping[str, Any], refs: Any) -> None:
    """Mark what decoding enforces on the model's caption health; add the neural-only captions' health."""
    from medcap.eval.health import caption_health

    enforced = enforced_by_decoding(settings)
    health["model"]["enforced_by_decoding"] = enforced
    if NEURAL_ONLY in extra:
        health[NEURAL_ONLY] = {**caption_health(extra[NEURAL_ONLY], refs), "enforced_by_decoding": enforced}


def metrics_fields(loaded: Any, settings: Mapping[str, Any], scores: Mapping[str, Any]) -> dict[str, Any]:
    """metrics.json entries: `retrieval_augmented`, `model_neural_only` (when it is) and `baseline_pool`."""
    out: dict[str, Any] = {"retrieval_augmented": is_retrieval_augmented(settings),
                           "baseline_pool": baseline_pool(loaded)}
    if NEURAL_ONLY in scores:
        out[NEURAL_ONLY] = scores[NEURAL_ONLY].summary
    return out
