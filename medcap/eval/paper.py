"""The paper's reported figures (Kanavos, Vonitsanos, Mylonas), as data to show beside medcap's results.

Only figures stated in the paper's Tables 2 and 3 are stored. Table 4 compares the two models with
other published methods; those other methods' figures are not stored here (not reproduced in this
package), so the table holds the two models' rows as reported and a note. `None` means not reported.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from medcap.eval.artifacts import ci_text

PAPER = "Integrating Convolutional and Recurrent Neural Networks for Enhanced Medical Image Captioning"
AUTHORS = "Kanavos, Vonitsanos, Mylonas"

# Table 2: presets and next-word classification metrics on each model's test split.
TABLE2: list[dict[str, Any]] = [
    {"model": "Model-80", "preset": "model-80", "split": "80/10/10", "batch_size": 64, "max_epochs": 100,
     "accuracy": 0.4941, "precision": 0.7095, "recall": 0.3031, "f1": 0.4244},
    {"model": "Model-70", "preset": "model-70", "split": "70/15/15", "batch_size": 128, "max_epochs": 100,
     "accuracy": 0.3936, "precision": 0.6336, "recall": 0.1849, "f1": 0.2862},
]

# Table 3: corpus BLEU of generated captions.
TABLE3: list[dict[str, Any]] = [
    {"model": "Model-80", "preset": "model-80", "bleu1": 0.309, "bleu2": 0.205},
    {"model": "Model-70", "preset": "model-70", "bleu1": 0.310, "bleu2": 0.207},
]

# Table 4: comparison with other published methods. Only the paper's own two rows are stored.
TABLE4: list[dict[str, Any]] = [
    {"method": "Model-80 (this paper)", "preset": "model-80", "bleu1": 0.309, "bleu2": 0.205,
     "bleu3": None, "bleu4": None},
    {"method": "Model-70 (this paper)", "preset": "model-70", "bleu1": 0.310, "bleu2": 0.207,
     "bleu3": None, "bleu4": None},
]
TABLE4_NOTE = (
    "The paper's Table 4 also lists other published methods; their figures are not stored in medcap "
    "(not reported here). BLEU-3/4 are not reported for the paper's models."
)

NOTES: dict[str, str] = {
    "table2": "The paper does not state how precision/recall/F1 are averaged over words; medcap reports "
    "both macro (zero_division=0) and support-weighted averages beside them. The stored F1 is the paper's as "
    "printed: it is NOT exactly the harmonic mean of the printed P and R (0.4244 vs 2PR/(P+R) = 0.4247 for "
    "Model-80; 0.2862 vs 0.2863 for Model-70), a rounding or averaging detail the paper does not explain.",
    "table3": "Corpus BLEU with cumulative weights; the paper reports BLEU-1 and BLEU-2 only.",
    "table4": TABLE4_NOTE,
    "claim": "The paper reads Model-70 as better than Model-80 by 0.001 BLEU-1 (0.310 vs 0.309); "
    "`python -m medcap compare` tests such a difference with a paired bootstrap.",
}

# Where each paper column lives in medcap's metrics.json ("next_word" or "model" section).
# Each paper column and medcap's figure under the same definition: next-word accuracy, precision, recall
# and F1 as Keras computes them (arg-max over every word; Precision()/Recall() on one-hot targets at 0.5,
# which the paper's own figures imply: recall < accuracy < precision; its F1 is close to, but not exactly,
# 2PR / (P + R) of its printed P and R: 0.4244 vs 0.4247, 0.2862 vs 0.2863).
METRIC_KEYS: dict[str, tuple[str, str]] = {
    "accuracy": ("next_word", "paper_definition.accuracy"),
    "precision": ("next_word", "paper_definition.precision"),
    "recall": ("next_word", "paper_definition.recall"),
    "f1": ("next_word", "paper_definition.f1"),
    "bleu1": ("model", "bleu1"),
    "bleu2": ("model", "bleu2"),
}


def _lookup(section: Any, key: str) -> Any:
    """Follow a dotted key ("paper_definition.precision") into nested dicts; None when absent."""
    for part in key.split("."):
        if not isinstance(section, dict):
            return None
        section = section.get(part)
    return section


def tables() -> dict[str, list[dict[str, Any]]]:
    """All stored tables keyed 'table2', 'table3', 'table4' (copies: callers may modify them)."""
    return {name: [dict(r) for r in rows] for name, rows in (("table2", TABLE2), ("table3", TABLE3),
                                                               ("table4", TABLE4))}


def paper_figures(preset: str) -> dict[str, float]:
    """The paper's reported figures for a preset ('model-80' or 'model-70'), keyed by paper column.

    Returns {} for any other preset (the paper reports nothing for it).
    """
    out: dict[str, float] = {}
    for row in (*TABLE2, *TABLE3):
        if row["preset"] == preset:
            out.update({k: v for k, v in row.items() if k in METRIC_KEYS and v is not None})
    return out


def table_frames() -> dict[str, pd.DataFrame]:
    """The stored tables as DataFrames keyed 'table2', 'table3', 'table4'."""
    return {name: pd.DataFrame(rows) for name, rows in tables().items()}


PAPER_DATA = "medicat"  # the dataset kind the paper's figures come from
NOT_COMPARABLE = "different data: not comparable"


def data_note(metrics: dict[str, Any]) -> str | None:
    """None when an evaluation scored the paper's kind of data (MedICaT), else why it is not comparable."""
    spec = str(metrics.get("dataset") or "")
    kind = spec.partition(":")[0].strip().lower()
    if kind == PAPER_DATA:
        return None
    what = f"`{spec}`" if spec else "dataset not recorded"
    return f"{NOT_COMPARABLE} ({what}; the paper's figures are on MedICaT)"


def comparison(metrics_by_label: dict[str, dict[str, Any]], presets: dict[str, str]) -> pd.DataFrame:
    """medcap's figure beside the paper's for every paper column (rows: run label x column).

    `metrics_by_label` maps labels to evaluations' metrics; `presets` maps each label to its run's
    preset; presets the paper does not report get no rows. Like with like only: an evaluation on other
    data than the paper's MedICaT gets no signed difference and the note "different data: not comparable".
    `medcap 95% CI` is the evaluation's interval where it has one.
    """
    rows = []
    for label, metrics in metrics_by_label.items():
        reported = paper_figures(presets.get(label, ""))
        other_data = data_note(metrics)
        for column, (section, key) in METRIC_KEYS.items():
            if column not in reported:
                continue
            item = _lookup(metrics.get(section) or {}, key)
            try:
                ours = float(item.get("value") if isinstance(item, dict) else item)
            except (TypeError, ValueError):
                ours = float("nan")
            paper = float(reported[column])
            ci = item.get("ci95") if isinstance(item, dict) else None
            note = "" if ours == ours else "not computed (evaluation older than this figure)"
            rows.append({"run": label, "figure": column, "medcap": ours,
                         "medcap 95% CI": ci_text(ci, digits=4) if ci else "",
                         "paper": paper, "difference": float("nan") if other_data else ours - paper,
                         "note": "; ".join(x for x in (note, other_data) if x)})
    return pd.DataFrame(rows, columns=["run", "figure", "medcap", "medcap 95% CI", "paper", "difference", "note"])
