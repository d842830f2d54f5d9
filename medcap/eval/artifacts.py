"""Readers of an evaluation's outputs (`<run>/eval/<name>/`) and the tables made from them.

The writer is `medcap.eval.evaluate`; both sides share `PREDICTION_COLUMNS` and the file names of
`medcap.runs.folder.EvalDir`. No TensorFlow and no Streamlit here (the dashboard imports this at page
load). Every reader turns a missing, broken or older file into a `ValueError` naming the file.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medcap.base.io import read_json
from medcap.eval.metrics import METRIC_NAMES
from medcap.runs.folder import EvalDir, RunDir
from medcap.runs.schema import (
    PREDICTION_NUMERIC,
    PREDICTION_REQUIRED,
    RunFileError,
    check,
    metrics_problem,
    predictions_problem,
)

# Columns of the predictions file, in the order the writer puts them; `modality` follows when the
# dataset has one, then the model caption's clinical-facts marks (`medcap.eval.facts_score`: "right",
# "wrong", "not stated", "no label") of the facts scored. Older files may lack the later ones: the
# reader needs only the first five.
PREDICTION_COLUMNS: tuple[str, ...] = (
    "image_id",
    "image_path",
    "references",
    "prediction",
    "bleu1",
    "bleu2",
    "bleu3",
    "bleu4",
    "rouge_l",
    "ref_len",
    "pred_len",
    "nn_caption",
    "nn_bleu1",
)
_FACT_COLUMNS = tuple(f"fact_{f}" for f in ("modality", "mr_sequence", "contrast", "plane", "region", "finding",
                                            "location"))
# Clinical-fact marks per image: the model (findings line + caption), its caption alone, the same-pool 1-NN.
OPTIONAL_PREDICTION_COLUMNS: tuple[str, ...] = ("modality", "boxes", "facts_line", *_FACT_COLUMNS,
                                                *(f"caption_{c}" for c in _FACT_COLUMNS),
                                                *(f"nn_{c}" for c in _FACT_COLUMNS))
# Written since the case-level evaluation (older files lack them; readers treat them as optional).
CASE_PREDICTION_COLUMNS: tuple[str, ...] = ("cider", "nn_cider", "group")
REQUIRED_PREDICTION_COLUMNS: tuple[str, ...] = PREDICTION_REQUIRED  # PREDICTION_COLUMNS[:5]

NEXT_WORD_NAMES = {
    "paper_definition.accuracy": "Accuracy (paper's definition: arg-max over all words)",
    "paper_definition.precision": "Precision (paper's definition: Keras, threshold 0.5)",
    "paper_definition.recall": "Recall (paper's definition: Keras, threshold 0.5)",
    "paper_definition.f1": "F1 (paper's definition)",
    "accuracy": "Accuracy (words decoding may emit)",
    "accuracy_excl_unk": "Accuracy, <unk> targets left out",
    "majority_baseline.accuracy": "Majority next-word baseline accuracy",
    "precision_macro": "Precision (macro)",
    "recall_macro": "Recall (macro)",
    "f1_macro": "F1 (macro)",
    "precision_weighted": "Precision (weighted)",
    "recall_weighted": "Recall (weighted)",
    "f1_weighted": "F1 (weighted)",
}


def as_float(value: Any) -> float:
    """`value` as a float; NaN when it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def num_text(value: Any, digits: int = 3, signed: bool = False) -> str:
    """A number as text with `digits` decimals, in scientific notation when those would print a non-zero
    value as 0 (e.g. -4.2e-05, never "-0.000"); '' when it is not a number."""
    x = as_float(value)
    if math.isnan(x):
        return ""
    sign = "+" if signed else ""
    if x != 0 and abs(x) < 0.5 * 10.0**-digits:
        return f"{x:{sign}.2e}"
    return f"{x:{sign}.{digits}f}"


def ci_text(ci: Any, digits: int = 3, signed: bool = False) -> str:
    """A 95% interval `[lo, hi]` as text (`num_text` of each end; '' when it is not a pair of numbers)."""
    try:
        lo, hi = (float(v) for v in ci)
    except (TypeError, ValueError):
        return ""
    return f"[{num_text(lo, digits, signed)}, {num_text(hi, digits, signed)}]"


RETRIEVAL = "retrieval-augmented"


def decoding_label(metrics: dict[str, Any]) -> str:
    """How an evaluation's captions were decoded: "retrieval-augmented (caption memory k=..)" or "neural"."""
    if not metrics.get("retrieval_augmented"):
        return "neural (no caption memory)" if "retrieval_augmented" in metrics else "not recorded"
    opts = metrics.get("decode_options") or {}
    k, lam = opts.get("memory_k", "?"), opts.get("memory_lambda", "?")
    return f"{RETRIEVAL} (caption memory of {k} neighbours, lambda {lam})"


def eval_dir(run_dir: Path, eval_name: str) -> EvalDir:
    """The evaluation folder `eval_name` of a run (name sanitised)."""
    return RunDir(Path(run_dir)).eval_dir(eval_name)


# ----------------------------------------------------------------------------------------------
# readers


def read_metrics(run_dir: Path, eval_name: str) -> dict[str, Any]:
    """An evaluation's metrics as a dict; ValueError naming the file when missing, not JSON, or of the wrong
    shape (`RunFileError` from `medcap.runs.schema.metrics_problem`)."""
    path = eval_dir(run_dir, eval_name).metrics
    try:
        data = read_json(path)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except ValueError as exc:  # truncated or hand-edited: this evaluation alone is unusable
        raise RunFileError(run_file(path), "not valid JSON (truncated?)") from exc
    check(run_file(path), metrics_problem(data))  # "unreadable eval/<name>/metrics.json: model.bleu1 is a string"
    return data


def run_file(path: Path) -> str:
    """An evaluation file as named in messages: relative to its run folder (`eval/<name>/metrics.json`)."""
    return f"{RunDir.EVAL}/{path.parent.name}/{path.name}"


def _references_text(text: Any) -> str:
    try:
        items = json.loads(text)
    except (TypeError, ValueError):
        return str(text)
    if isinstance(items, list):
        return " | ".join(" ".join(r) if isinstance(r, list) else str(r) for r in items)
    return str(items)


def _resolve_image(run_dir: Path, image_path: Any) -> str:
    """An absolute image path as it is; a relative one joined to the run folder (normalised)."""
    if not isinstance(image_path, str) or not image_path:
        missing = image_path is None or (isinstance(image_path, float) and math.isnan(image_path))
        return "" if missing else str(image_path)
    path = Path(image_path)
    return str(path) if path.is_absolute() else os.path.normpath(run_dir / path)


def read_predictions(run_dir: Path, eval_name: str) -> pd.DataFrame:
    """An evaluation's per-image predictions, with `references` parsed into a readable `reference` column.

    ValueError naming the file when it is missing, unreadable, lacks the required columns or holds a
    non-number in a score column (`medcap.runs.schema.predictions_problem`).
    """
    path = eval_dir(run_dir, eval_name).predictions
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"image_id": str})
    except FileNotFoundError as exc:
        raise ValueError(f"{path}: missing") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: unreadable ({exc.__class__.__name__})") from exc
    check(run_file(path), predictions_problem(list(df.columns), {c: df[c].tolist() for c in PREDICTION_NUMERIC
                                                               if c in df.columns}))
    # a relative image path (the example bundle's) is relative to the run folder
    df["image_path"] = [_resolve_image(Path(run_dir), p) for p in df["image_path"]]
    df["reference"] = df["references"].map(_references_text)
    df["prediction"] = df["prediction"].fillna("").astype(str)
    for col in df.columns:
        if col.startswith(("bleu", "nn_bleu")) or col in ("rouge_l", "ref_len", "pred_len"):
            df[col] = pd.to_numeric(df[col], errors="coerce")
    words = df["reference"].str.split("|").str[0].str.split().str.len()
    df["ref_len"] = df["ref_len"].fillna(words) if "ref_len" in df.columns else words
    return df


def read_attention(run_dir: Path, eval_name: str, image_id: str) -> np.ndarray | None:
    """The (n_words, 7, 7) attention of one test image (None when the evaluation has none for it)."""
    path = eval_dir(run_dir, eval_name).attention
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if image_id not in npz.files:
                return None
            att = np.asarray(npz[image_id], dtype=np.float32)  # (n_words, 7, 7)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from exc
    if att.ndim != 3:
        raise ValueError(f"{path}: attention of {image_id} has shape {att.shape}, expected (n_words, h, w)")
    return att


def attention_ids(run_dir: Path, eval_name: str) -> list[str]:
    """Image ids that have an attention map in an evaluation."""
    path = eval_dir(run_dir, eval_name).attention
    if not path.is_file():
        return []
    try:
        with np.load(path, allow_pickle=False) as npz:
            return list(npz.files)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from exc


# ----------------------------------------------------------------------------------------------
# tables


def metrics_table(metrics_by_label: dict[str, dict[str, Any]], include_baselines: bool = True) -> pd.DataFrame:
    """Long table (series, metric, value, lo, hi) of caption metrics for several evaluations.

    Series are the runs' labels, plus `<label> · <baseline>` for the baselines when asked.
    """
    rows = []
    for label, metrics in metrics_by_label.items():
        retrieval = bool(metrics.get("retrieval_augmented"))
        blocks = [(f"{label} · {RETRIEVAL}" if retrieval else label, metrics.get("model", {}))]
        if metrics.get("model_neural_only"):
            blocks.append((f"{label} · neural only (memory off)", metrics["model_neural_only"]))
        if include_baselines:
            for base, values in (metrics.get("baselines") or {}).items():
                short = {"most_frequent": "most-frequent", "nearest_neighbour": "1-NN"}.get(base, base)
                blocks.append((f"{label} · {short} baseline", values))
        for series, values in blocks:
            if not isinstance(values, dict):
                continue
            for key, display in METRIC_NAMES.items():
                item = values.get(key)
                if isinstance(item, dict):
                    value = as_float(item.get("value"))
                    ci = item.get("ci95") or [math.nan, math.nan]
                elif item is not None:
                    value, ci = as_float(item), [math.nan, math.nan]
                else:
                    continue
                lo, hi = (as_float(v) for v in [*list(ci), math.nan, math.nan][:2])
                rows.append({"series": series, "metric": display, "value": value, "lo": lo, "hi": hi})
    return pd.DataFrame(rows, columns=["series", "metric", "value", "lo", "hi"])


def side_by_side(long: pd.DataFrame) -> pd.DataFrame:
    """Pivot a metrics_table into metric rows x series columns of "value [lo, hi]" text."""
    if long.empty:
        return pd.DataFrame()

    def cell(row: pd.Series) -> str:
        if math.isnan(row["value"]):
            return "n/a"
        ci = "" if math.isnan(row["lo"]) else f" {ci_text([row['lo'], row['hi']])}"
        return f"{num_text(row['value'])}{ci}"

    text = long.assign(text=long.apply(cell, axis=1))
    order = [m for m in METRIC_NAMES.values() if m in set(text["metric"])]
    table = text.pivot(index="metric", columns="series", values="text").reindex(order)
    return table[list(dict.fromkeys(long["series"]))].fillna("—")


def next_word_table(metrics_by_label: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Next-word classification metrics (paper Table 2 style): rows metrics, columns runs."""
    data = {}
    for label, metrics in metrics_by_label.items():
        nw = metrics.get("next_word") or {}
        row = {}
        for key, display in NEXT_WORD_NAMES.items():
            value: Any = nw
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            row[display] = as_float(value) if value is not None else float("nan")
        data[label] = row
    return pd.DataFrame(data)


def scope_table(metrics_by_label: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """What each evaluation scored: split, its role (test / validation used for model selection), the CI unit.

    Evaluations written before these fields existed say "not recorded".
    """
    rows = []
    for label, m in metrics_by_label.items():
        boot = m.get("bootstrap") or {}
        unit = f"{boot['n_groups']} cases" if boot.get("unit") == "group" else "images (not recorded: older)"
        rows.append({"run": label, "run id": m.get("run_id", "?"), "run label": m.get("run_label", "not recorded"),
                     "split": m.get("split", "?"),
                     "role": m.get("split_role", "not recorded"), "images": m.get("n_images"),
                     "CI resamples": unit, "decode": m.get("decode", "?"), "decoding": decoding_label(m)})
    return pd.DataFrame(rows)


def health_table(metrics_by_label: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Caption health of each evaluation's model captions ("not computed" for older evaluations).

    A figure the decoding rules guarantee (0 back-to-back repeats under block_repeats) reads "(enforced by
    decoding)"; a retrieval-augmented run's neural-only captions get their own row.
    """
    keys = {"adjacent_repeat_share": "word repeated back to back", "repeated_bigram_share": "any 2-gram repeated",
            "distinct_caption_ratio": "distinct captions / images", "distinct_words": "distinct words",
            "mean_length": "mean length", "reference_mean_length": "reference mean length"}
    rows = []
    for label, m in metrics_by_label.items():
        every = m.get("caption_health") or {}
        for which, suffix in (("model", ""), ("model_neural_only", " · neural only (memory off)")):
            health = every.get(which)
            if which != "model" and not health:
                continue
            enforced = set((health or {}).get("enforced_by_decoding") or [])
            row: dict[str, Any] = {"run": label + suffix}
            for key, name in keys.items():
                value = health.get(key) if health else "not computed"
                row[name] = f"{num_text(value)} (enforced by decoding)" if key in enforced else value
            rows.append(row)
    return pd.DataFrame(rows)
