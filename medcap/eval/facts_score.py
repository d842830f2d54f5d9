"""Scoring clinical facts (`medcap.data.facts`): shares with case-level bootstrap CIs, the evaluation's
`clinical_facts` block and per-image marks, and the lexicon check on a dataset's references.

Shares of one fact, over the images whose truth is known for it ("scored"):
- `correct`: stated and equal to the truth, of the scored images;
- `wrong_of_stated`: stated and not equal to the truth, of the scored images that state it (None when
  none does);
- `not_stated`: not stated, of the scored images.
Each has a 95% percentile interval over `n_boot` seeded resamples of cases (groups) of the scored images
(`medcap.eval.bootstrap.resample_weights`); resamples without a stated fact are left out of the
`wrong_of_stated` interval.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from medcap.data.facts import GENERAL_FACTS, Facts, Text, extract_facts, fact_marks, predicted_facts, truth_facts
from medcap.data.facts_lexicon import FACTS, LEXICON_VERSION
from medcap.eval import bootstrap as bs

DEFINITION = ("Facts a caption states (medcap.data.facts_lexicon, version {v}) scored against the image's "
              "dataset labels, else the facts its reference caption states. correct: stated and right, of the "
              "images with a known fact; wrong_of_stated: wrong, of those that state it; not_stated: of the "
              "images with a known fact. mr_sequence is scored on MR images only. 95% CIs resample cases.")


def _ci(values: np.ndarray, alpha: float) -> list[float] | None:
    finite = values[np.isfinite(values)]
    return list(bs.percentile_ci(finite, alpha)) if len(finite) else None


def score_fact(marks: Sequence[str], groups: Sequence[Any] | None = None, n_boot: int = bs.N_RESAMPLES,
               seed: int = bs.SEED, alpha: float = bs.ALPHA) -> dict[str, Any]:
    """Shares and CIs of one fact from per-image marks (`fact_marks`); images marked "no label" are left out."""
    keep = [i for i, m in enumerate(marks) if m != "no label"]
    n = len(keep)
    out: dict[str, Any] = {"n_images": len(marks), "n_scored": n}
    if n == 0:
        return {**out, "n_stated": 0, "n_right": 0, "n_wrong": 0, **dict.fromkeys(
            ("correct", "correct_ci", "wrong_of_stated", "wrong_of_stated_ci", "not_stated", "not_stated_ci"))}
    kept = [marks[i] for i in keep]
    right = np.array([m == "right" for m in kept], dtype=np.float64)  # (n,)
    wrong = np.array([m == "wrong" for m in kept], dtype=np.float64)  # (n,)
    stated = right + wrong
    w = bs.resample_weights(n, None if groups is None else [groups[i] for i in keep], n_boot, seed)  # (B, n)
    w = w.astype(np.float64)
    total = w.sum(axis=1)  # (B,)
    with np.errstate(divide="ignore", invalid="ignore"):
        wrong_share = (w @ wrong) / (w @ stated)  # (B,) NaN where a resample states nothing
    n_stated = int(stated.sum())
    return {**out, "n_stated": n_stated, "n_right": int(right.sum()), "n_wrong": int(wrong.sum()),
            "correct": float(right.mean()), "correct_ci": _ci((w @ right) / total, alpha),
            "wrong_of_stated": float(wrong.sum() / n_stated) if n_stated else None,
            "wrong_of_stated_ci": _ci(wrong_share, alpha) if n_stated else None,
            "not_stated": float(1.0 - stated.mean()), "not_stated_ci": _ci((w @ (1.0 - stated)) / total, alpha)}


def score_facts(predicted: Sequence[Mapping[str, str | None]], truth: Sequence[Mapping[str, str | None]],
                groups: Sequence[Any] | None = None, facts: Sequence[str] = GENERAL_FACTS,
                n_boot: int = bs.N_RESAMPLES, seed: int = bs.SEED) -> dict[str, dict[str, Any]]:
    """fact -> `score_fact` of a system's facts per image against the truth per image."""
    return {f: score_fact(fact_marks(truth, predicted, f), groups, n_boot, seed) for f in facts}


def scored_facts(table: pd.DataFrame) -> tuple[str, ...]:
    """The facts an evaluation scores on a table: the general five, and the synthetic set's finding and
    location where the table labels them (`boxes`, or a CSV's `finding` column)."""
    extra = ("finding", "location") if "boxes" in table.columns or "finding" in table.columns else ()
    return (*GENERAL_FACTS, *extra)


def table_truth(table: pd.DataFrame, refs: Sequence[Sequence[Text]] | None = None) -> tuple[list[Facts], list[dict]]:
    """Truth facts and their sources per row: labels, else the row's raw `caption` (else `refs`)."""
    facts, sources = [], []
    for i, row in enumerate(table.to_dict("records")):
        own = [row["caption"]] if isinstance(row.get("caption"), str) and row["caption"] else []
        f, s = truth_facts(row, own or (list(refs[i]) if refs is not None else []))
        facts.append(f)
        sources.append(s)
    return facts, sources


def clinical_facts(table: pd.DataFrame, refs: Sequence[Sequence[Text]] | None, systems: Mapping[str, Sequence[Text]],
                   groups: Sequence[Any] | None = None, stated: Mapping[str, Sequence[Facts | None]] | None = None,
                   n_boot: int = bs.N_RESAMPLES, seed: int = bs.SEED,
                   marks_of: Mapping[str, str] | None = None) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The evaluation's `clinical_facts` block and per-image marks: of system `s` as columns `<prefix>fact_<fact>`
    for each `s: prefix` of `marks_of` (default: the model's as `fact_<fact>`).

    Block: {system: {fact: score_fact}, "truth_source": {fact: {label, reference, none}}, "lexicon",
    "facts", "systems", "definition"}. Marks: {"fact_<fact>": [mark per image]}. `stated` gives a
    system's facts from elsewhere (a findings line), taking precedence over its caption's.
    """
    facts = scored_facts(table)
    truth, sources = table_truth(table, refs)
    block: dict[str, Any] = {"lexicon": LEXICON_VERSION, "facts": list(facts), "systems": list(systems),
                             "definition": DEFINITION.format(v=LEXICON_VERSION)}
    marks: dict[str, list[str]] = {}
    for name, texts in systems.items():
        pred = predicted_facts(texts, (stated or {}).get(name))
        block[name] = score_facts(pred, truth, groups, facts, n_boot, seed)
        prefix = (marks_of if marks_of is not None else {"model": ""}).get(name)
        if prefix is not None:
            marks.update({f"{prefix}fact_{f}": fact_marks(truth, pred, f) for f in facts})
    block["truth_source"] = {f: {k or "none": n for k, n in sorted(Counter(s[f] or "" for s in sources).items())}
                             for f in facts}
    return block, marks


def reference_agreement(table: pd.DataFrame, facts: Sequence[str] = GENERAL_FACTS) -> dict[str, dict[str, Any]]:
    """The lexicon check: for each fact, over images with a label, how many references state it
    (`stated`) and the share of those that agree with the label (`agreement`)."""
    out: dict[str, dict[str, Any]] = {}
    rows = table.to_dict("records")
    labels = [truth_facts(r)[0] for r in rows]  # no references: labels only (mr_sequence on MR only)
    said = [extract_facts(str(r.get("caption") or "")) for r in rows]
    for fact in facts:
        pairs = [(lab[fact], s[fact]) for lab, s in zip(labels, said, strict=True) if lab[fact] is not None]
        stated = [(a, b) for a, b in pairs if b is not None]
        agree = sum(a == b for a, b in stated)
        out[fact] = {"labelled": len(pairs), "stated": len(stated), "agree": agree,
                     "agreement": agree / len(stated) if stated else None}
    return out


def facts_lines(block: Mapping[str, Any] | None) -> list[str]:
    """A plain-text facts table (fact x system: correct [CI], wrong of stated, not stated); [] without a block."""
    if not block:
        return []
    systems = [s for s in block.get("systems", []) if isinstance(block.get(s), dict)]
    lines = [f"clinical facts (lexicon {block.get('lexicon', '?')}): correct [95% CI] / wrong of stated / not stated",
             f"{'fact':<12}" + "".join(f"{s:>34}" for s in systems)]
    for fact in block.get("facts", FACTS):
        cells = []
        for s in systems:
            m = block[s].get(fact) or {}
            if m.get("correct") is None:
                cells.append("no label")
                continue
            ci = m.get("correct_ci") or [float("nan")] * 2
            wrong = "-" if m.get("wrong_of_stated") is None else f"{m['wrong_of_stated']:.2f}"
            cells.append(f"{m['correct']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}] / {wrong} / {m['not_stated']:.2f}")
        lines.append(f"{fact:<12}" + "".join(f"{c:>34}" for c in cells))
    return lines
