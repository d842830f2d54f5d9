"""Clinical facts for the dashboard: per-image marks as text, evaluation and study facts as tables.

The scores come from `medcap.eval.facts_score` (metrics.json `clinical_facts`, predictions.csv `fact_*` marks,
a study's results.json); this module only shapes them. No Streamlit, no TensorFlow.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from medcap.eval.artifacts import as_float, ci_text

FACT_SYMBOLS = {"right": "✓", "wrong": "✗", "not stated": "–"}
SHOWN_FACTS = ("modality", "plane", "region")


def fact_marks_text(row: dict[str, Any], prefix: str = "") -> str:
    """One image's marks in words: "modality ✓ · plane ✗ · region –" ('' when the evaluation has none)."""
    parts = [f"{f} {FACT_SYMBOLS[str(row[f'{prefix}fact_{f}'])]}" for f in SHOWN_FACTS
             if str(row.get(f"{prefix}fact_{f}", "")) in FACT_SYMBOLS]
    return " · ".join(parts)


def facts_table(metrics: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Clinical facts of runs' evaluations (label -> metrics.json) as rows: run, system, fact, stated right of all
    images [CI], wrong of stated [CI], not stated; empty when no evaluation has them."""
    rows = []
    for label, m in metrics.items():
        block = m.get("clinical_facts") if isinstance(m, dict) else None
        if isinstance(block, dict):
            systems = {s: block.get(s) for s in block.get("systems", [])}
            rows.extend({"run": label, **row} for row in _rows(systems))
    return pd.DataFrame(rows)


def pooled_facts_table(clinical: dict[str, Any] | None) -> pd.DataFrame:
    """A study's pooled clinical facts (results.json `clinical_facts`: system -> fact -> score) as rows."""
    return pd.DataFrame(_rows(clinical or {}))


def _rows(systems: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for system, scores in systems.items():
        for fact in SHOWN_FACTS:
            score = (scores or {}).get(fact) if isinstance(scores, dict) else None
            if isinstance(score, dict):
                rows.append({"system": system.replace("_", " "), "fact": fact,
                             "right (of all images)": _share(score, "correct"),
                             "wrong (of stated)": _share(score, "wrong_of_stated"),
                             "not stated": _share(score, "not_stated")})
    return rows


def _share(score: dict[str, Any], key: str) -> str:
    value = as_float(score.get(key))
    if math.isnan(value):
        return "–"
    ci = score.get(f"{key}_ci")
    return f"{value:.3f} {ci_text(ci)}" if ci else f"{value:.3f}"
