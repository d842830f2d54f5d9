"""Seed noise: runs that differ only in their init seed, and the mean +- sd of their metrics (no TensorFlow).

The paper's Model-80 vs Model-70 gap (0.001 BLEU-1) can only be judged against how much one setting
moves between seeds; a run's bootstrap CI measures image/case sampling, not training randomness.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from medcap.runs.index import RunInfo

# Settings that do not define "the same setting": the init seed and the run's label.
SEED_FIELDS = ("seed", "name")


def setting_key(info: RunInfo) -> str:
    """The run's settings without its seed and name (runs with equal keys differ only in seed)."""
    run = dict(info.config.get("run", {}))
    for field in SEED_FIELDS:
        run.pop(field, None)
    if run.get("split_seed") is None:  # older runs: the seed also chose the split
        run["split_seed"] = info.config.get("run", {}).get("seed")
    return json.dumps(run, sort_keys=True, default=str)


def seed_groups(infos: Sequence[RunInfo]) -> list[list[RunInfo]]:
    """Groups of two or more runs that differ only in their init seed, largest first."""
    groups: dict[str, list[RunInfo]] = {}
    for info in infos:
        if info.config.get("run"):
            groups.setdefault(setting_key(info), []).append(info)
    return sorted((g for g in groups.values() if len(g) > 1), key=len, reverse=True)


def seed_summary(metrics_by_run: Mapping[str, Mapping[str, Any]], keys: Sequence[str] = (
        "bleu1", "bleu2", "bleu4", "rouge_l", "cider")) -> pd.DataFrame:
    """Mean, sd (n-1) and n over seeds of each model metric; one row per metric.

    `metrics_by_run`: run label -> its metrics.json; the mean bootstrap CI half-width is shown beside the
    seed sd so the two kinds of noise can be compared.
    """
    rows = []
    for key in keys:
        values = [m["model"][key]["value"] for m in metrics_by_run.values() if key in m.get("model", {})]
        widths = [(m["model"][key]["ci95"][1] - m["model"][key]["ci95"][0]) / 2 for m in metrics_by_run.values()
                  if key in m.get("model", {}) and m["model"][key].get("ci95")]
        if not values:
            continue
        arr = np.asarray(values, dtype=np.float64)
        rows.append({"metric": key, "n_seeds": len(arr), "mean": float(arr.mean()),
                     "sd": float(arr.std(ddof=1)) if len(arr) > 1 else float("nan"),
                     "min": float(arr.min()), "max": float(arr.max()),
                     "mean CI half-width": float(np.mean(widths)) if widths else float("nan")})
    return pd.DataFrame(rows)


def reliance_table(metrics_by_label: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Image reliance per run: metric of the real captions minus that with features swapped across cases.

    Evaluations written before the check existed show "not computed".
    """
    rows = []
    for label, metrics in metrics_by_label.items():
        rel = (metrics.get("image_reliance") or {}).get("metrics")
        row: dict[str, Any] = {"run": label}
        for key in ("bleu1", "bleu4", "cider"):
            if not rel or key not in rel:
                row[key] = "not computed"
                continue
            lo, hi = rel[key]["ci95"]
            row[key] = f"{rel[key]['value']:+.4f} [{lo:+.4f}, {hi:+.4f}]"
        rows.append(row)
    return pd.DataFrame(rows)
