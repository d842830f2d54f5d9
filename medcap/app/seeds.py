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

from medcap.eval.artifacts import ci_text, num_text
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


def seed_of(info: RunInfo) -> Any:
    """The run's init seed (config.json `run.seed`)."""
    return info.config.get("run", {}).get("seed")


def seed_groups(infos: Sequence[RunInfo]) -> list[list[RunInfo]]:
    """Groups of runs with the same settings and two or more DISTINCT init seeds, largest first.

    One run per seed: a run repeating a seed already in the group (the same setting trained twice) is left
    out (the first listed is kept: `list_runs` lists the newest first), so "n seeds" counts distinct seeds.
    """
    groups: dict[str, dict[Any, RunInfo]] = {}
    for info in infos:
        if info.config.get("run"):
            groups.setdefault(setting_key(info), {}).setdefault(json.dumps(seed_of(info)), info)
    return sorted((list(g.values()) for g in groups.values() if len(g) > 1), key=len, reverse=True)


def repeated_seed_runs(infos: Sequence[RunInfo], group: Sequence[RunInfo]) -> list[RunInfo]:
    """Runs with a group's settings and a seed the group already holds (left out of its seed statistics)."""
    if not group:
        return []
    key, kept = setting_key(group[0]), {i.run_id for i in group}
    return [i for i in infos if i.config.get("run") and i.run_id not in kept and setting_key(i) == key]


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

    Evaluations written before the check existed show "not computed". A retrieval-augmented run has two
    rows: the whole system (features and caption memory swapped) and its neural part (features swapped,
    the memory held to the true image's neighbours).
    """
    rows = []
    for label, metrics in metrics_by_label.items():
        rel = metrics.get("image_reliance") or {}
        parts = [("", rel.get("metrics"))]
        if rel.get("neural_part"):
            parts = [(" · whole system (features and memory swapped)", rel.get("metrics")),
                     (" · neural part (features swapped, memory held)", rel["neural_part"])]
        for suffix, values in parts:
            row: dict[str, Any] = {"run": label + suffix}
            for key in ("bleu1", "bleu4", "cider"):
                if not values or key not in values:
                    row[key] = "not computed"
                    continue
                row[key] = f"{num_text(values[key]['value'], 4, True)} {ci_text(values[key]['ci95'], 4, True)}"
            rows.append(row)
    return pd.DataFrame(rows)
