"""metrics.json, assembled in one place from the typed parts of an evaluation (`EvalReport` -> `metrics_json`).

`medcap.eval.evaluate` computes the parts (scores of the model and the baselines, next-word metrics, caption
health, clinical facts, image reliance, ...); this module alone decides the file's keys. Readers check the file
against `medcap.runs.schema`. No TensorFlow here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medcap.eval import bootstrap as bs
from medcap.eval import hybrid
from medcap.eval.metrics import DEFINITIONS, provenance

NEXT_WORD_DEFINITIONS = {
    "next_word.accuracy": "share of (prefix, next word) pairs whose arg-max, among the words decoding may emit "
    "(not <pad>, <start>, <unk>), is the true next word",
    "next_word.accuracy_excl_unk": "the same over pairs whose true next word is in the vocabulary",
    "next_word.majority_baseline": "always answering the most frequent next word of the training pairs",
    "next_word.paper_definition": "the paper's precision/recall/F1, inferred from its figures (recall < accuracy "
    "< precision): Keras Precision()/Recall() on one-hot targets at threshold 0.5. P = pairs whose true word has "
    "p > 0.5 / pairs with any word above 0.5; R = pairs whose true word has p > 0.5 / all pairs; F1 = 2PR/(P+R). "
    "The paper's stored F1 is not exactly that harmonic mean: 0.4244 where its P and R (0.7095, 0.3031) give "
    "0.4247, 0.2862 where 0.6336 and 0.1849 give 0.2863 (rounding or per-batch averaging in the paper)",
    "next_word.precision_macro": "scikit-learn macro average over words (not the paper's definition)",
    "image_reliance": "metric of the real captions minus that of captions decoded with each image's features "
    "swapped for another case's (paired case-level bootstrap CI); ~0 means the captions ignore the image",
}

BASELINE_DEFINITIONS = {
    "most_frequent": "Every image gets the most frequent caption of the run's training split, each caption "
    "counted once per case that uses it.",
    "nearest_neighbour": "Each image gets the caption of the run's training image whose global CNN feature is "
    "closest by cosine similarity (1-NN retrieval).",
}


@dataclass
class EvalReport:
    """Everything one evaluation writes into metrics.json."""

    name: str  # the evaluation folder's name
    loaded: Any  # medcap.inference.opened.LoadedRun: run id, vocabulary, max_words
    ev: Any  # medcap.eval.evalset.EvalSet: dataset, split, images
    decode: str  # "greedy" | "beam:K"
    refs: list  # per image: [reference tokens]
    scores: dict[str, Any]  # system -> medcap.eval.scoring.SystemScores
    skipped: dict[str, str]  # metric -> why it was not computed
    most_frequent: list[str]  # the most-frequent baseline's caption
    next_word: dict[str, Any]
    split: dict[str, Any]  # medcap.eval.evaluate.split_description
    groups: list[str]  # the case of each image (bootstrap unit)
    n_boot: int
    seed: int
    reliance: dict[str, Any]  # image reliance ({} when not measured)
    health: dict[str, Any]  # caption health per system
    facts: dict[str, Any]  # medcap.eval.facts_score.clinical_facts block
    decode_options: dict[str, Any]  # DecodeOptions.describe(memory)
    weights: dict[str, Any]  # medcap.eval.scored.scored_weights: which epoch's weights were scored
    dataset_check: dict[str, Any]
    retrieval: dict[str, Any]  # medcap.eval.hybrid.metrics_fields: retrieval_augmented, neural-only, pool


def metrics_json(r: EvalReport) -> dict[str, Any]:
    """The metrics.json object of an evaluation."""
    _, n_groups = bs.group_codes(len(r.ev), r.groups)
    return {
        **_header(r),
        "model": r.scores["model"].summary,
        "baselines": {"most_frequent": r.scores["most_frequent"].summary,
                      "nearest_neighbour": r.scores["nearest_neighbour"].summary},
        "most_frequent_caption": " ".join(r.most_frequent),
        "next_word": r.next_word,
        "definitions": {**DEFINITIONS, **BASELINE_DEFINITIONS, **NEXT_WORD_DEFINITIONS, **hybrid.DEFINITIONS},
        "provenance": _provenance(r),
        "skipped": r.skipped,
        **r.split,
        "bootstrap": {"unit": "group", "n_groups": n_groups, "n_images": len(r.ev), "n_resamples": r.n_boot,
                      "seed": r.seed},
        "image_reliance": r.reliance or None,
        "caption_health": r.health,
        "clinical_facts": r.facts,
        "decode_options": r.decode_options,
        "attention_maps": "last_position",
        "weights": r.weights,
        "dataset_check": r.dataset_check,
        **r.retrieval,
    }


def _header(r: EvalReport) -> dict[str, Any]:
    ev = r.ev
    return {"name": r.name, "run_id": Path(r.loaded.run_dir).name, "dataset": ev.spec, "dataset_name": ev.name,
            "split": ev.split, "images": ev.basis, "decode": r.decode, "n_images": len(ev), "left_out": ev.left_out}


def _provenance(r: EvalReport) -> dict[str, Any]:
    prov = provenance()
    in_vocab = sum(1 for ref in r.refs for w in ref[0] if w in r.loaded.vocab)
    n_words = sum(len(ref[0]) for ref in r.refs)
    return {
        "metrics": prov,
        "tokenization": "medcap.data.tokenize (lowercase, punctuation stripped, numbers and abbreviations kept)",
        "references_per_image": 1,
        "references": f"the paper's rule: images whose caption has at most {r.loaded.cfg.max_words} words, each "
        "scored against its own full caption (images sharing a group are not pooled); words outside the run's "
        "vocabulary stay as they are",
        "reference_oov_rate": (1 - in_vocab / n_words) if n_words else 0.0,
        "next_word_pairs": "caption of n words -> n + 1 (prefix, next word) pairs incl. <end>; "
        "out-of-vocabulary reference words are <unk> targets",
        "smoothing": {"corpus_bleu": prov["bleu1"]["smoothing"], "sentence_bleu": prov["sentence_bleu"]["smoothing"]},
        "bootstrap": {"resamples": r.n_boot, "seed": r.seed, "unit": "group (case)", "ci": "percentile 2.5-97.5",
                      "bleu": "recomputed from per-image n-gram statistics of the resampled cases",
                      "rouge_l/cider/meteor": "mean of per-image scores, value and interval alike (CIDEr keeps the "
                      "document frequencies of the full reference set; METEOR's pooled corpus score is kept as "
                      "corpus_value)"},
        "decode": r.decode,
        "n_images": len(r.ev),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
