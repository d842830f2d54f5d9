"""Image-level fact predictors: modality, plane, body region (and the synthetic set's finding and location)
from a run's image features, with a confidence threshold per fact below which the findings line says "not sure".

One standardised multinomial logistic regression per fact, fitted on the run's TRAINING images' labels
(`medcap.data.facts.label_facts`); each threshold is the lowest probability whose stated-but-wrong share stays
within the fact's target (`WRONG_TARGETS`) on out-of-fold predictions of those same images (case-grouped k-fold
over the run's training pool), never chosen on test images. Saved as
plain JSON in the run folder (`RunDir.facts`: standardiser, coefficients, classes, thresholds), read back
without pickle; prediction is NumPy. No TensorFlow here.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medcap.data.facts import LINE_FACTS, facts_line, sure_facts

log = logging.getLogger(__name__)

# The largest stated-but-wrong share allowed for each fact of the findings line (`medcap.data.facts.LINE_FACTS`).
WRONG_TARGETS: dict[str, float] = {"modality": 0.05, "plane": 0.10, "region": 0.10, "finding": 0.10,
                                   "location": 0.10}
FEATURE_KINDS = ("global", "mean+max", "global+mean+max")
FORMAT = "medcap.facts/1"


def fact_inputs(global_feats: np.ndarray, grid: np.ndarray | None, kind: str = "mean+max") -> np.ndarray:
    """The predictors' input: the global vector (N, D), the grid pooled by mean and max (N, 2C), or both."""
    parts = []
    if "global" in kind:
        parts.append(np.asarray(global_feats, dtype=np.float32).reshape(len(global_feats), -1))  # (N, D)
    if "mean+max" in kind:
        if grid is None:
            raise ValueError(f"fact inputs {kind!r} need the grid features")
        g = np.asarray(grid, dtype=np.float32).reshape(len(grid), -1, grid.shape[-1])  # (N, 49, C)
        parts.append(np.concatenate([g.mean(axis=1), g.max(axis=1)], axis=1))  # (N, 2C)
    if not parts:
        raise ValueError(f"unknown fact inputs {kind!r}: choose one of {', '.join(FEATURE_KINDS)}")
    return np.concatenate(parts, axis=1)  # (N, F)


@dataclass
class FactHead:
    """One fact's classifier: standardise, then softmax(x W^T + b) over `classes`."""

    fact: str
    classes: list[str]
    mean: np.ndarray  # (F,)
    scale: np.ndarray  # (F,)
    coef: np.ndarray  # (K, F), K = len(classes); a binary fit stores (-w/2, w/2)
    intercept: np.ndarray  # (K,)
    threshold: float = 0.5

    def proba(self, x: np.ndarray) -> np.ndarray:
        """(N, K) class probabilities of inputs x (N, F)."""
        z = ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale) @ self.coef.T + self.intercept  # (N, K)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def to_json(self) -> dict[str, Any]:
        return {"fact": self.fact, "classes": self.classes, "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept.tolist(), "threshold": self.threshold}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FactHead:
        head = cls(fact=str(data["fact"]), classes=[str(c) for c in data["classes"]],
                   mean=np.asarray(data["mean"], dtype=np.float64), scale=np.asarray(data["scale"], dtype=np.float64),
                   coef=np.asarray(data["coef"], dtype=np.float64),
                   intercept=np.asarray(data["intercept"], dtype=np.float64), threshold=float(data["threshold"]))
        k, f = head.coef.shape
        shapes = (head.intercept.shape, head.mean.shape, head.scale.shape)
        if k != len(head.classes) or shapes != ((k,), (f,), (f,)):
            raise ValueError(f"fact head {head.fact!r}: coefficient shapes do not match its {k} classes")
        return head


def _clean(labels: Sequence[str | None]) -> list[str | None]:
    return [None if v is None or str(v).strip() == "" else str(v) for v in labels]


def fit_head(fact: str, x: np.ndarray, labels: Sequence[str | None], c: float = 0.1, seed: int = 0) -> FactHead | None:
    """Fit one fact on the labelled rows of x (N, F); None when fewer than two classes are labelled."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    y = _clean(labels)
    rows = [i for i, v in enumerate(y) if v is not None]
    classes = sorted({y[i] for i in rows})  # type: ignore[misc]
    if len(classes) < 2:
        return None
    xs = np.asarray(x, dtype=np.float64)[rows]  # (n, F)
    mean, scale = xs.mean(axis=0), xs.std(axis=0)
    scale[scale < 1e-6] = 1.0
    model = LogisticRegression(C=c, max_iter=3000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit((xs - mean) / scale, [y[i] for i in rows])
    coef, intercept = model.coef_, model.intercept_
    if len(classes) == 2:  # sklearn's binary fit: one row for the second class; softmax of (-z/2, z/2) = sigmoid(z)
        coef, intercept = np.vstack([-coef[0] / 2, coef[0] / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    return FactHead(fact, [str(k) for k in model.classes_], mean, scale, np.asarray(coef), np.asarray(intercept))


def calibrate(head: FactHead, x: np.ndarray, labels: Sequence[str | None], target: float) -> float:
    """`calibrate_probs` of the head's own probabilities of x."""
    return calibrate_probs(head.classes, head.proba(np.asarray(x)) if len(x) else np.zeros((0, len(head.classes))),
                           labels, target)


def calibrate_probs(classes: Sequence[str], probs: np.ndarray, labels: Sequence[str | None], target: float) -> float:
    """The lowest probability threshold whose stated-but-wrong share on the labelled rows stays <= target
    (1.0, i.e. never stated, when none does; 0.5 when nothing is labelled). probs: (N, K) over `classes`."""
    y = _clean(labels)
    rows = [i for i, v in enumerate(y) if v is not None]
    if not rows:
        return 0.5
    p_rows = np.asarray(probs)[rows]  # (n, K)
    best, p = p_rows.argmax(axis=1), p_rows.max(axis=1)
    right = np.array([classes[b] == y[i] for b, i in zip(best, rows, strict=True)])
    for t in sorted({0.0, *p.tolist()}):
        stated = p >= t
        if stated.any() and (~right[stated]).mean() <= target:
            return float(t)
    return 1.0


@dataclass
class FactPredictor:
    """Every fact's head over one kind of input features."""

    inputs: str
    heads: dict[str, FactHead]

    @classmethod
    def fit(cls, x: np.ndarray, labels: Mapping[str, Sequence[str | None]], groups: Sequence[str] | None = None,
            inputs: str = "mean+max", c: float = 0.1, seed: int = 0, folds: int = 5) -> FactPredictor:
        """Fit each fact of `labels` with two or more labelled classes on all rows of x (N, F); its threshold from
        out-of-fold probabilities (`folds` case-grouped folds of the same rows; `groups`: the case of each row)."""
        from sklearn.model_selection import GroupKFold

        heads = {}
        groups = list(groups) if groups is not None else [str(i) for i in range(len(x))]
        for fact in LINE_FACTS:
            if fact not in labels:
                continue
            head = fit_head(fact, x, labels[fact], c=c, seed=seed)
            if head is None:
                continue
            y = _clean(labels[fact])
            n_groups = len(set(groups))
            if n_groups >= 2:
                oof: list[str | None] = [None] * len(x)
                probs = np.zeros((len(x), len(head.classes)))  # (N, K) out-of-fold
                for train_rows, held_rows in GroupKFold(n_splits=min(folds, n_groups)).split(x, groups=groups):
                    part = fit_head(fact, x[train_rows], [y[i] for i in train_rows], c=c, seed=seed)
                    if part is None:
                        continue
                    p = part.proba(x[held_rows])  # (n, k) over the part's classes
                    for j, cls_name in enumerate(part.classes):
                        probs[held_rows, head.classes.index(cls_name)] = p[:, j]
                    for i in held_rows:
                        oof[i] = y[i]
                head.threshold = calibrate_probs(head.classes, probs, oof, WRONG_TARGETS.get(fact, 0.10))
            heads[fact] = head
            log.info("fact head %s: %d classes, threshold %.3f", fact, len(head.classes), head.threshold)
        return cls(inputs=inputs, heads=heads)

    def predict(self, x: np.ndarray) -> list[dict[str, tuple[str, float, bool]]]:
        """Per image {fact: (most probable value, its probability, sure = probability >= threshold)}."""
        out: list[dict[str, tuple[str, float, bool]]] = [{} for _ in range(len(x))]
        for fact, head in self.heads.items():
            probs = head.proba(x)  # (N, K)
            for i, row in enumerate(probs):
                k = int(row.argmax())
                out[i][fact] = (head.classes[k], float(row[k]), bool(row[k] >= head.threshold))
        return out

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "inputs": self.inputs, "heads": [h.to_json() for h in self.heads.values()]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "facts.json") -> FactPredictor:
        """Read `to_json`'s dict; ValueError naming `source` when it is not one."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ValueError(f"{source}: not a medcap fact-predictor file (format {FORMAT})")
        try:
            heads = [FactHead.from_json(h) for h in data["heads"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: malformed fact head ({exc})") from exc
        return cls(inputs=str(data.get("inputs", "mean+max")), heads={h.fact: h for h in heads})


__all__ = [
    "LINE_FACTS",
    "FactHead",
    "FactPredictor",
    "calibrate",
    "calibrate_probs",
    "fact_inputs",
    "facts_line",
    "fit_head",
    "sure_facts",
]
