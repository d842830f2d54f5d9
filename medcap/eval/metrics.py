"""Caption and next-word metrics, computed by the reference libraries (pure Python, no TensorFlow).

Inputs everywhere: `refs` is a list (one entry per image) of lists of reference token lists;
`hyps` is a list (one per image) of hypothesis token lists. Tokens are joined with single spaces
before they reach pycocoevalcap (which splits on spaces again), so both libraries see the same words.

- BLEU-n: NLTK `corpus_bleu` with cumulative weights (1,0,0,0), (1/2,1/2,0,0), (1/3,1/3,1/3,0),
  (1/4,1/4,1/4,1/4) and NO smoothing for the corpus score (as in the paper); sentence-level BLEU
  (per-image columns) uses NLTK `sentence_bleu` with smoothing method1 (epsilon 0.1).
- ROUGE-L, CIDEr (CIDEr-D style, sigma 6, n=4, x10), METEOR 1.5: pycocoevalcap's classes.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

Tokens = Sequence[str]
Refs = Sequence[Sequence[Tokens]]
Hyps = Sequence[Tokens]

BLEU_WEIGHTS: dict[str, tuple[float, float, float, float]] = {
    "bleu1": (1.0, 0.0, 0.0, 0.0),
    "bleu2": (1 / 2, 1 / 2, 0.0, 0.0),
    "bleu3": (1 / 3, 1 / 3, 1 / 3, 0.0),
    "bleu4": (1 / 4, 1 / 4, 1 / 4, 1 / 4),
}

# The one list of caption metrics, in display order, with display names (tables, CLI, dashboard).
METRIC_NAMES: dict[str, str] = {
    "bleu1": "BLEU-1",
    "bleu2": "BLEU-2",
    "bleu3": "BLEU-3",
    "bleu4": "BLEU-4",
    "rouge_l": "ROUGE-L",
    "cider": "CIDEr",
    "meteor": "METEOR",
}
CORPUS_METRICS: tuple[str, ...] = tuple(METRIC_NAMES)
# Metrics with a per-image score in predictions.csv (METEOR is corpus-only: one Java call per evaluation).
PER_IMAGE_METRICS: tuple[str, ...] = tuple(m for m in CORPUS_METRICS if m != "meteor")

DEFINITIONS: dict[str, str] = {
    "bleu1": "Corpus BLEU with cumulative weights (1,0,0,0): clipped unigram precision summed over all images "
    "times the corpus brevity penalty (NLTK corpus_bleu, no smoothing).",
    "bleu2": "Corpus BLEU, weights (1/2,1/2,0,0): geometric mean of corpus 1- and 2-gram precisions x brevity "
    "penalty (NLTK corpus_bleu, no smoothing).",
    "bleu3": "Corpus BLEU, weights (1/3,1/3,1/3,0) (NLTK corpus_bleu, no smoothing).",
    "bleu4": "Corpus BLEU, weights (1/4,1/4,1/4,1/4) (NLTK corpus_bleu, no smoothing).",
    "rouge_l": "ROUGE-L F-measure (beta 1.2) of the longest common subsequence, mean over images "
    "(pycocoevalcap Rouge).",
    "cider": "CIDEr: TF-IDF weighted 1-4-gram cosine similarity with a Gaussian length penalty (sigma 6), x10, "
    "mean over images; document frequencies from the evaluated references (pycocoevalcap Cider).",
    "meteor": "METEOR 1.5 (exact, stem, synonym, paraphrase matches; language en, -norm), pycocoevalcap Meteor "
    "(Java).",
    "accuracy": "Next-word accuracy: share of (prefix, next word) pairs whose arg-max prediction is the true "
    "next word (scikit-learn accuracy_score).",
    "precision_macro": "Unweighted mean over classes (words in y_true or y_pred) of per-word precision; a word "
    "never predicted counts 0 (scikit-learn, average='macro', zero_division=0).",
    "recall_macro": "Unweighted mean over classes of per-word recall (scikit-learn, average='macro', "
    "zero_division=0).",
    "f1_macro": "Unweighted mean over classes of per-word F1 (scikit-learn, average='macro', zero_division=0).",
    "precision_weighted": "Per-word precision averaged with weights = true-word support (scikit-learn, "
    "average='weighted', zero_division=0).",
    "recall_weighted": "Per-word recall weighted by support; equals accuracy for single-label data "
    "(scikit-learn, average='weighted').",
    "f1_weighted": "Per-word F1 weighted by support (scikit-learn, average='weighted', zero_division=0).",
    "n_pairs": "Number of (prefix, next word) pairs scored.",
}


@dataclass
class Scored:
    """A corpus score plus the per-image scores it was averaged from (empty with `skipped`)."""

    value: float
    per_image: np.ndarray = field(default_factory=lambda: np.zeros(0))
    skipped: str | None = None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def provenance() -> dict[str, dict[str, str]]:
    """Implementation and version of every metric, for metrics.json."""
    nltk_v, coco_v, sk_v = _version("nltk"), _version("pycocoevalcap"), _version("scikit-learn")
    corpus = "no smoothing (SmoothingFunction().method0), as the paper"
    out: dict[str, dict[str, str]] = {
        name: {"implementation": "nltk.translate.bleu_score.corpus_bleu", "version": nltk_v, "smoothing": corpus}
        for name in BLEU_WEIGHTS
    }
    out["rouge_l"] = {"implementation": "pycocoevalcap.rouge.Rouge", "version": coco_v, "smoothing": "none"}
    out["cider"] = {"implementation": "pycocoevalcap.cider.Cider", "version": coco_v, "smoothing": "none"}
    out["meteor"] = {"implementation": "pycocoevalcap.meteor.Meteor (meteor-1.5.jar)", "version": coco_v,
                     "smoothing": "none"}
    out["sentence_bleu"] = {"implementation": "nltk.translate.bleu_score.sentence_bleu", "version": nltk_v,
                            "smoothing": "SmoothingFunction().method1 (epsilon 0.1)"}
    out["next_word"] = {"implementation": "sklearn.metrics", "version": sk_v, "smoothing": "zero_division=0"}
    return out


def _check(refs: Refs, hyps: Hyps) -> None:
    if len(refs) != len(hyps):
        raise ValueError(f"metrics: {len(refs)} reference sets but {len(hyps)} hypotheses")
    for i, r in enumerate(refs):
        if len(r) == 0:
            raise ValueError(f"metrics: image #{i} has no reference caption")


def corpus_bleu_scores(refs: Refs, hyps: Hyps) -> dict[str, float]:
    """Corpus BLEU-1..4 (NLTK corpus_bleu, cumulative weights, no smoothing). Empty corpus gives 0."""
    from nltk.translate.bleu_score import corpus_bleu

    _check(refs, hyps)
    if not hyps:
        return dict.fromkeys(BLEU_WEIGHTS, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NLTK warns when an n-gram order has no match (score ~0)
        scores = corpus_bleu(
            [[list(t) for t in r] for r in refs], [list(h) for h in hyps], weights=list(BLEU_WEIGHTS.values())
        )
    if not isinstance(scores, list):  # NLTK returns a bare 0 when nothing matches
        scores = [scores] * len(BLEU_WEIGHTS)
    return {name: float(s) for name, s in zip(BLEU_WEIGHTS, scores, strict=True)}


def sentence_bleu_scores(refs: Sequence[Tokens], hyp: Tokens, smoothing: str | None = "method1") -> dict[str, float]:
    """Sentence BLEU-1..4 of one hypothesis (NLTK sentence_bleu; smoothing method name or None)."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    if len(refs) == 0:
        raise ValueError("sentence_bleu_scores: no reference caption")
    fn = getattr(SmoothingFunction(), smoothing) if smoothing else None
    if not hyp:
        return dict.fromkeys(BLEU_WEIGHTS, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = sentence_bleu([list(t) for t in refs], list(hyp), weights=list(BLEU_WEIGHTS.values()),
                               smoothing_function=fn)
    if not isinstance(scores, list):
        scores = [scores] * len(BLEU_WEIGHTS)
    return {name: float(s) for name, s in zip(BLEU_WEIGHTS, scores, strict=True)}


def _coco_inputs(refs: Refs, hyps: Hyps) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    gts = {i: [" ".join(t) for t in r] for i, r in enumerate(refs)}
    res = {i: [" ".join(h)] for i, h in enumerate(hyps)}
    return gts, res


def rouge_l(refs: Refs, hyps: Hyps) -> Scored:
    """ROUGE-L (pycocoevalcap Rouge): mean over images and the per-image scores."""
    from pycocoevalcap.rouge.rouge import Rouge

    _check(refs, hyps)
    if not hyps:
        return Scored(0.0)
    gts, res = _coco_inputs(refs, hyps)
    value, per_image = Rouge().compute_score(gts, res)
    return Scored(float(value), np.asarray(per_image, dtype=np.float64))


def cider(refs: Refs, hyps: Hyps) -> Scored:
    """CIDEr (pycocoevalcap Cider): document frequencies from these references; mean and per image."""
    from pycocoevalcap.cider.cider import Cider

    _check(refs, hyps)
    if not hyps or not any(t for r in refs for t in r):
        return Scored(0.0, np.zeros(len(hyps)))  # no reference n-gram at all: nothing to weight
    gts, res = _coco_inputs(refs, hyps)
    value, per_image = Cider().compute_score(gts, res)
    return Scored(float(value), np.asarray(per_image, dtype=np.float64))


def java_available() -> str | None:
    """None when a working `java` is on PATH, else the reason METEOR must be skipped."""
    java = shutil.which("java")
    if java is None:
        return "java not found on PATH (METEOR 1.5 is a Java program)"
    try:
        subprocess.run([java, "-version"], capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"java on PATH does not run: {exc}"
    return None


def meteor(refs: Refs, hyps: Hyps) -> Scored:
    """METEOR 1.5 via pycocoevalcap (one JVM, closed afterwards). Skipped (with a reason) without Java."""
    return meteor_systems(refs, {"hyp": hyps})["hyp"]


def _meteor_clean(text: str) -> str:
    # METEOR's '|||' field separator and newlines would break its stdin protocol.
    return text.replace("|||", " ").replace("\n", " ")


def meteor_systems(refs: Refs, systems: dict[str, Hyps]) -> dict[str, Scored]:
    """METEOR of several systems on the same references with ONE JVM (spawned once, closed afterwards)."""
    for hyps in systems.values():
        _check(refs, hyps)
    reason = java_available()
    if reason:
        return {name: Scored(float("nan"), skipped=reason) for name in systems}
    if not refs:
        return {name: Scored(0.0) for name in systems}
    from pycocoevalcap.meteor.meteor import Meteor

    out: dict[str, Scored] = {}
    scorer = None
    try:
        scorer = Meteor()
        for name, hyps in systems.items():
            gts, res = _coco_inputs(refs, hyps)
            gts = {k: [_meteor_clean(s) or "." for s in v] for k, v in gts.items()}
            res = {k: [_meteor_clean(v[0])] for k, v in res.items()}
            value, per_image = scorer.compute_score(gts, res)
            out[name] = Scored(float(value), np.asarray(per_image, dtype=np.float64))
    except (OSError, ValueError) as exc:
        log.warning("METEOR failed: %s", exc)
        return {name: Scored(float("nan"), skipped=f"METEOR failed: {exc}") for name in systems}
    finally:
        if scorer is not None:
            _close_meteor(scorer)
    return out


def _close_meteor(scorer: Any) -> None:
    proc = scorer.meteor_p
    with contextlib.suppress(OSError):
        proc.stdin.close()
    proc.kill()
    proc.wait()
    for stream in (proc.stdout, proc.stderr):
        with contextlib.suppress(OSError):
            stream.close()


def classification_metrics(y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any] | None = None
                           ) -> dict[str, float]:
    """Accuracy and macro/weighted precision, recall, F1 (scikit-learn, zero_division=0)."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    if len(y_true) != len(y_pred):
        raise ValueError(f"classification_metrics: {len(y_true)} true labels but {len(y_pred)} predictions")
    out: dict[str, float] = {"n_pairs": len(y_true)}
    if len(y_true) == 0:
        out.update(dict.fromkeys(("accuracy", "precision_macro", "recall_macro", "f1_macro",
                                  "precision_weighted", "recall_weighted", "f1_weighted"), 0.0))
        return out
    out["accuracy"] = float(accuracy_score(y_true, y_pred))
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg, zero_division=0)
        out[f"precision_{avg}"] = float(p)
        out[f"recall_{avg}"] = float(r)
        out[f"f1_{avg}"] = float(f)
    return out

