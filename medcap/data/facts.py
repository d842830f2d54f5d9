"""Clinical facts of captions: what a caption states (modality, MR sequence, contrast, plane, body region;
the synthetic set's finding and location) and the truth from the dataset's labels. Pure Python (no
TensorFlow).

- `extract_facts(text)`: the facts a caption states, by the lexicon of `medcap.data.facts_lexicon`.
- `label_facts(row)`: the facts a dataset's labels give an image (MedPix `modality` (Type),
  `modality_detail`, `plane`, `location_category`; the synthetic set's `modality`, `plane`, `boxes`;
  a CSV's columns named like the facts). `truth_facts` falls back to the reference caption for a fact
  an image has no label for, and records which source it used.
- `predicted_facts(texts, stated)`: a system's facts per image; a fact in `stated` (e.g. parsed from a
  findings line) takes precedence over the caption's, so caption and findings line are scored together,
  or alone (texts only, or empty texts with `stated`).
- `fact_marks`: per image "right" / "wrong" / "not stated" / "no label" (truth unknown). An image has a
  truth for a fact when a label or a reference gives it; `mr_sequence` has one on MR images only.
The shares with case-level CIs, the evaluation's `clinical_facts` block and the lexicon check on the
references are in `medcap.eval.facts_score`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from medcap.data.facts_lexicon import (
    FACTS,
    IMPLIED_CT,
    IMPLIED_MR,
    LABEL_VALUES,
    MEDPIX_DETAIL,
    PHRASES,
    REGIONS,
    VALUES,
)
from medcap.data.synthetic_text import FINDING_WORDS, LEVEL_WORDS, NORMAL_WORDS, SIDE_WORDS
from medcap.data.text import tokenize

Facts = dict[str, str | None]
Text = str | Sequence[str]
GENERAL_FACTS: tuple[str, ...] = ("modality", "mr_sequence", "contrast", "plane", "region")
# The facts a findings line states (`medcap.model.facts_head` predicts them), in its order.
LINE_FACTS: tuple[str, ...] = ("modality", "plane", "region", "finding", "location")
MARKS: tuple[str, ...] = ("right", "wrong", "not stated", "no label")
_T2_STAR = re.compile(r"\bt2\s*\*", re.IGNORECASE)


def tokens_of(text: Text) -> list[str]:
    """Caption tokens (`medcap.data.tokenize`; "T2*" becomes "t2star" first); a token list stays as it is."""
    if isinstance(text, str):
        return tokenize(_T2_STAR.sub("t2star", text))
    return [str(t).lower() for t in text]


@cache
def _compiled(name: str) -> dict[str, list[tuple[tuple[str, ...], str]]]:
    """first word -> [(phrase words, value)], longest phrase first, of a fact's phrases (`PHRASES`) or of
    the words implying a modality ("implied_mr", "implied_ct")."""
    implied = {"implied_mr": dict.fromkeys(IMPLIED_MR, "mr"), "implied_ct": dict.fromkeys(IMPLIED_CT, "ct")}
    out: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for phrase, value in (implied.get(name) or PHRASES[name]).items():
        words = tuple(phrase.split())
        out.setdefault(words[0], []).append((words, value))
    for entries in out.values():
        entries.sort(key=lambda e: -len(e[0]))
    return out


def find_phrases(tokens: Sequence[str], table: Mapping[str, list[tuple[tuple[str, ...], str]]]) -> list[str]:
    """Values of the phrases matched left to right, longest first; a match consumes its words (a phrase
    of value "" is anatomy that only consumes them: "superior sagittal sinus" states no plane)."""
    found, i = [], 0
    while i < len(tokens):
        for words, value in table.get(tokens[i], ()):
            if tuple(tokens[i:i + len(words)]) == words:
                if value:
                    found.append(value)
                i += len(words)
                break
        else:
            i += 1
    return found


def _one(values: Sequence[str]) -> str | None:
    """The value when every match states the same one; None ("axial and coronal images") otherwise."""
    return values[0] if values and len(set(values)) == 1 else None


def _modality(tokens: Sequence[str]) -> str | None:
    stated = find_phrases(tokens, _compiled("modality"))
    named = [v for v in stated if v != "angiography"] if {"ct", "mr"} & set(stated) else stated
    if named:
        return named[0]
    if find_phrases(tokens, _compiled("implied_mr")):
        return "mr"
    return "ct" if find_phrases(tokens, _compiled("implied_ct")) else None


def _region(tokens: Sequence[str]) -> str | None:
    votes = find_phrases(tokens, _compiled("region"))
    if not votes:
        return None
    counts = {r: votes.count(r) for r in dict.fromkeys(votes)}
    first, second = sorted(counts.values(), reverse=True)[:2] if len(counts) > 1 else (len(votes), 0)
    return None if first == second else max(counts, key=lambda r: counts[r])


def _synthetic(tokens: Sequence[str]) -> tuple[str | None, str | None]:
    """(finding, location) as the synthetic set's grammar states them (see the lexicon's docstring)."""
    findings = sorted({FINDING_WORDS[w] for w in tokens if w in FINDING_WORDS})
    places: set[str] = set()
    clause: list[str] = []
    for word in [*tokens, "and"]:
        if word != "and":
            clause.append(word)
            continue
        sides = {SIDE_WORDS[w] for w in clause if w in SIDE_WORDS}
        levels = {LEVEL_WORDS[w] for w in clause if w in LEVEL_WORDS}
        if len(sides) == 1 and len(levels) == 1:
            places.add(f"{sides.pop()} {levels.pop()} zone")
        clause = []
    if findings:
        finding: str | None = "+".join(findings)
    else:
        finding = "none" if any(w in NORMAL_WORDS for w in tokens) else None
    return finding, ("+".join(sorted(places)) or None)


def extract_facts(text: Text) -> Facts:
    """The facts a caption states (None: not stated), keys `FACTS`. `text`: raw text or tokens.

    >>> extract_facts("Axial T2-weighted MRI of the brain")["modality"]
    'mr'
    """
    tokens = tokens_of(text)
    first = {f: _one(find_phrases(tokens, _compiled(f))) for f in ("mr_sequence", "contrast", "plane")}
    finding, location = _synthetic(tokens)
    return {"modality": _modality(tokens), **first, "region": _region(tokens), "finding": finding,
            "location": location}


def _label(text: Any) -> str:
    if text is None or (isinstance(text, float) and text != text):
        return ""
    return " ".join(str(text).split()).strip().lower()


def normalise(fact: str, value: Any) -> str | None:
    """A dataset label as a fact value (None: no label): a fact value as it is, a known label text
    (`LABEL_VALUES`: "CT", "XR", "Transverse", ...), else the fact the label text states (not for plane:
    "Other View", "3D Reconstruction" are no plane)."""
    text = _label(value)
    if not text:
        return None
    if text in VALUES.get(fact, ()) or fact in ("finding", "location"):
        return text
    if text in LABEL_VALUES.get(fact, {}):
        return LABEL_VALUES[fact][text]
    return None if fact == "plane" else extract_facts(text).get(fact)


def _boxes(text: Any) -> tuple[str | None, str | None]:
    try:
        boxes = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None, None
    if not isinstance(boxes, list):
        return None, None
    findings = sorted({str(b.get("finding")) for b in boxes if isinstance(b, dict) and b.get("finding")})
    places = sorted({str(b.get("location")) for b in boxes if isinstance(b, dict) and b.get("location")})
    return ("+".join(findings) or "none"), ("+".join(places) or None)


def label_facts(row: Mapping[str, Any]) -> Facts:
    """The facts an image's dataset labels give (None: no label), keys `FACTS`.

    MedPix rows (a `location_category` column): `modality` (Type) -> ct/mr, `modality_detail` ->
    mr_sequence/contrast (`MEDPIX_DETAIL`), `plane` -> axial (Axial, Transverse)/coronal/sagittal,
    `location_category` -> region. Its `location` column (e.g. "Genitourinary") is not the synthetic fact.
    Synthetic rows: `modality` (XR -> radiograph, CT -> ct), `plane`, `boxes` -> finding (sorted, "+"-joined,
    "none" without boxes) and location. Other rows (a CSV): columns named like the facts.
    """
    get = row.get
    out: Facts = dict.fromkeys(FACTS)
    out["modality"] = normalise("modality", get("modality"))
    out["plane"] = normalise("plane", get("plane"))
    detail = _label(get("modality_detail"))
    if detail in MEDPIX_DETAIL:
        out["mr_sequence"], out["contrast"] = MEDPIX_DETAIL[detail]
    elif detail:  # another detail text ("MR - Montage", a CSV's): what it states
        stated = extract_facts(detail)
        out["mr_sequence"], out["contrast"] = stated["mr_sequence"], stated["contrast"]
    for fact in ("mr_sequence", "contrast"):
        out[fact] = out[fact] or normalise(fact, get(fact))
    category = _label(get("location_category"))
    out["region"] = category if category in REGIONS else normalise("region", get("region") or category)
    if isinstance(get("boxes"), str):
        out["finding"], out["location"] = _boxes(get("boxes"))
    elif "location_category" not in row:
        out["finding"], out["location"] = normalise("finding", get("finding")), normalise("location", get("location"))
    return out


def truth_facts(row: Mapping[str, Any], references: Sequence[Text] = ()) -> tuple[Facts, dict[str, str | None]]:
    """(facts, source per fact): the label where the image has one, else the first reference caption that
    states the fact ("reference"), else None. `mr_sequence` applies to MR images only (None otherwise)."""
    facts, sources = label_facts(row), {}
    stated = [extract_facts(r) for r in references]
    for fact in FACTS:
        if facts[fact] is not None:
            sources[fact] = "label"
            continue
        facts[fact] = next((s[fact] for s in stated if s[fact] is not None), None)
        sources[fact] = "reference" if facts[fact] is not None else None
    if facts["modality"] != "mr":
        facts["mr_sequence"], sources["mr_sequence"] = None, None
    return facts, sources


def predicted_facts(texts: Sequence[Text],
                    stated: Sequence[Mapping[str, str | None] | None] | None = None) -> list[Facts]:
    """A system's facts per image: from its caption texts, overridden fact by fact by `stated` (e.g. a
    findings line's facts) where that gives a value."""
    out = [extract_facts(t) for t in texts]
    if stated is not None:
        if len(stated) != len(out):
            raise ValueError(f"predicted_facts: {len(out)} captions but {len(stated)} stated-facts entries")
        for facts, extra in zip(out, stated, strict=True):
            facts.update({k: v for k, v in (extra or {}).items() if v is not None and k in facts})
    return out


def fact_marks(truth: Sequence[Mapping[str, str | None]], predicted: Sequence[Mapping[str, str | None]],
               fact: str) -> list[str]:
    """Per image: "no label" (truth unknown), "not stated", "right" or "wrong"."""
    if len(truth) != len(predicted):
        raise ValueError(f"fact_marks: {len(truth)} truths but {len(predicted)} predictions")
    marks = []
    for t, p in zip(truth, predicted, strict=True):
        if t.get(fact) is None:
            marks.append("no label")
        elif p.get(fact) is None:
            marks.append("not stated")
        else:
            marks.append("right" if p[fact] == t[fact] else "wrong")
    return marks


def sure_facts(predicted: Mapping[str, tuple[str, float, bool]]) -> dict[str, str]:
    """The facts a findings line states: the sure ones."""
    return {fact: value for fact, (value, _, sure) in predicted.items() if sure}


def facts_line(predicted: Mapping[str, tuple[str, float, bool]], with_probabilities: bool = False) -> str:
    """The findings line in plain words, in `LINE_FACTS` order: "ct axial head"; with probabilities
    "ct (0.98) · axial (0.91) · not sure: region"."""
    facts = [f for f in LINE_FACTS if f in predicted]
    if not with_probabilities:
        return " ".join(predicted[f][0] for f in facts if predicted[f][2] and predicted[f][0] != "none")
    parts = [f"{predicted[f][0]} ({predicted[f][1]:.2f})" if predicted[f][2] else f"not sure: {f}" for f in facts]
    return " · ".join(parts)
