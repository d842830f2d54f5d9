"""Captions of the synthetic demo set: a small seeded grammar, and a parser that checks a caption.

Findings and locations have canonical names (`FINDINGS`, `LOCATIONS`). A caption names a finding by
one word (`FINDING_WORDS`, synonyms included) and a location by a side word ("right"/"left") plus a
level word ("upper"/"apex", "middle"/"mid", "lower"/"base"). Two findings are joined by "and", so a
caption splits at "and" into one clause per finding. Side is the patient's side: the patient's right
is on the image's left (radiology convention).
"""

from __future__ import annotations

import re

import numpy as np

FINDINGS: tuple[str, ...] = ("nodule", "mass", "cavity", "consolidation", "effusion", "fracture")
SIDES: tuple[str, ...] = ("right", "left")
LEVELS: tuple[str, ...] = ("upper", "middle", "lower")
LOCATIONS: tuple[str, ...] = tuple(f"{side} {level} zone" for side in SIDES for level in LEVELS)
SIZES: tuple[str, ...] = ("small", "large")

# Word in a caption -> canonical finding it names.
FINDING_WORDS: dict[str, str] = {
    "nodule": "nodule",
    "nodular": "nodule",
    "mass": "mass",
    "tumor": "mass",
    "cavity": "cavity",
    "cavitary": "cavity",
    "consolidation": "consolidation",
    "infiltrate": "consolidation",
    "effusion": "effusion",
    "fracture": "fracture",
}
SIDE_WORDS: dict[str, str] = {"right": "right", "left": "left"}
LEVEL_WORDS: dict[str, str] = {
    "upper": "upper",
    "apex": "upper",
    "apical": "upper",
    "middle": "middle",
    "mid": "middle",
    "lower": "lower",
    "base": "lower",
    "basal": "lower",
}
NORMAL_WORDS: frozenset[str] = frozenset({"normal", "unremarkable", "no", "clear"})

_STUDY = {
    "XR": ("chest radiograph", "chest film", "frontal chest radiograph", "pa chest film"),
    "CT": ("axial ct image", "axial ct slice", "ct of the chest", "axial chest ct"),
}
_NORMAL = {
    "XR": (
        "no acute cardiopulmonary abnormality",
        "normal chest radiograph",
        "chest film shows no abnormality",
        "unremarkable chest radiograph",
        "clear lungs on chest film",
        "no acute cardiopulmonary process on chest radiograph",
    ),
    "CT": (
        "normal axial ct of the chest",
        "no acute abnormality on axial ct image",
        "unremarkable chest ct",
        "axial ct slice shows clear lungs",
        "no focal lung abnormality on axial chest ct",
    ),
}
# Noun phrases for a finding after its size word ("a small ___").
_NOUN_PHRASES = {
    "nodule": ("nodule", "pulmonary nodule", "nodular opacity"),
    "mass": ("mass", "lung mass", "spiculated mass", "tumor"),
    "cavity": ("cavity", "cavitary lesion", "thick walled cavity"),
    "consolidation": ("consolidation", "area of consolidation", "airspace consolidation", "infiltrate"),
    "effusion": ("pleural effusion", "effusion"),
    "fracture": ("rib fracture", "fracture"),
}
# Nouns usable as pre-modified heads ("small right upper lobe ___").
_HEAD_NOUNS = {
    "nodule": ("nodule",),
    "mass": ("mass",),
    "cavity": ("cavity",),
    "consolidation": ("consolidation", "infiltrate"),
    "effusion": ("effusion",),
    "fracture": ("rib fracture",),
}
_VERBS = ("shows", "demonstrates", "with")
_MAX_WORDS = 20
_TOKEN = re.compile(r"[a-z0-9]+")


def words_of(caption: str) -> list[str]:
    """Lowercase word tokens of a caption (letters and digits; punctuation dropped)."""
    return _TOKEN.findall(caption.lower())


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _location_phrase(rng: np.random.Generator, location: str) -> str:
    side, level, _ = location.split()
    style = int(rng.integers(6))
    if style == 0 and level == "lower":
        return f"{side} lung base"
    if style == 0 and level == "upper":
        return f"{side} lung apex"
    level_word = "mid" if level == "middle" and style % 2 else level
    nouns = ("zone", "lung", "lung field") if (side, level) == ("left", "middle") else ("zone", "lobe", "lung")
    return f"{side} {level_word} {_pick(rng, nouns)}"


def _finding_clause(rng: np.random.Generator, finding: str, location: str, size: str, style: int) -> str:
    """One finding: 'a small nodule in the right upper lobe' or 'small right upper lobe nodule'."""
    loc = _location_phrase(rng, location)
    if style == 0:
        return f"{size} {loc} {_pick(rng, _HEAD_NOUNS[finding])}"
    return f"a {size} {_pick(rng, _NOUN_PHRASES[finding])} in the {loc}"


def _compose(rng: np.random.Generator, kind: str, lesions: list[tuple[str, str, str]]) -> str:
    study = _pick(rng, _STUDY[kind])
    if not lesions:
        return _pick(rng, _NORMAL[kind])
    style = int(rng.integers(2))  # 0: pre-modified head noun, 1: noun phrase + "in the" location
    clauses = [_finding_clause(rng, f, loc, size, style) for f, loc, size in lesions]
    body = " and ".join(clauses)
    form = int(rng.integers(3))
    if form == 0:
        return f"{study} {_pick(rng, _VERBS)} {body if style else 'a ' + body}"
    if form == 1:
        return f"{body.removeprefix('a ')} on {study}"
    return f"there is {body}" if style else f"there is a {body}"


def make_caption(rng: np.random.Generator, kind: str, lesions: list[tuple[str, str, str]]) -> str:
    """A caption of at most 20 words for (finding, location, size) triples, drawn from the grammar."""
    for _ in range(50):
        text = _compose(rng, kind, lesions)
        if len(text.split()) <= _MAX_WORDS:
            return text
    raise RuntimeError(f"no caption of <= {_MAX_WORDS} words for {lesions}")  # not reachable with this grammar


def _clause_pairs(words: list[str]) -> list[tuple[str | None, str | None]] | None:
    """(finding, location) per 'and'-separated clause; None when a clause is ambiguous."""
    pairs: list[tuple[str | None, str | None]] = []
    clause: list[str] = []
    for word in [*words, "and"]:
        if word != "and":
            clause.append(word)
            continue
        findings = [FINDING_WORDS[w] for w in clause if w in FINDING_WORDS]
        sides = {SIDE_WORDS[w] for w in clause if w in SIDE_WORDS}
        levels = {LEVEL_WORDS[w] for w in clause if w in LEVEL_WORDS}
        clause = []
        if not findings and not sides and not levels:
            continue
        if len(set(findings)) > 1 or len(sides) > 1 or len(levels) > 1:
            return None
        location = f"{sides.pop()} {levels.pop()} zone" if sides and levels else None
        pairs.append((findings[0] if findings else None, location))
    return pairs


def caption_names_findings(caption: str, boxes: list[dict]) -> bool:
    """True when the caption names every true finding with its location and no other finding.

    `boxes` are the record's boxes (`finding` and `location` keys are used). Synonyms are accepted and
    order is free. With no true findings, True when the caption states a normal study (one of
    "normal", "unremarkable", "no", "clear") and names no finding.
    """
    words = words_of(caption)
    if not boxes:
        return not any(w in FINDING_WORDS for w in words) and any(w in NORMAL_WORDS for w in words)
    pairs = _clause_pairs(words)
    if pairs is None or any(f is None or loc is None for f, loc in pairs):
        return False
    truth = sorted((b["finding"], b["location"]) for b in boxes)
    return sorted(pairs) == truth  # type: ignore[arg-type]


def finding_word_positions(words: list[str]) -> dict[str, int]:
    """Canonical finding -> index of the first word in `words` that names it (synonyms included)."""
    positions: dict[str, int] = {}
    for i, word in enumerate(words):
        finding = FINDING_WORDS.get(word.lower())
        if finding is not None and finding not in positions:
            positions[finding] = i
    return positions


def vocabulary() -> set[str]:
    """Every word the grammar can produce (for tests and documentation)."""
    phrases: list[str] = ["a in the on there is and lung base apex mid zone lobe field", *_VERBS, *SIZES]
    for options in (*_STUDY.values(), *_NORMAL.values(), *_NOUN_PHRASES.values(), *_HEAD_NOUNS.values()):
        phrases.extend(options)
    phrases.extend(SIDES)
    phrases.extend(LEVELS)
    return {w for p in phrases for w in words_of(p)}
