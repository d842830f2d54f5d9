"""The run files training writes besides weights and status: config.json and history.csv.

`config_json` is what config.json holds (the settings, the data and feature store it used, the feature
scale, the vocabulary size, library versions, the git commit); `write_history` rewrites history.csv, one
row per finished epoch in `HISTORY_COLUMNS` order.
"""

from __future__ import annotations

import datetime as dt
import math
import platform
import subprocess
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import medcap
from medcap.base.io import write_text
from medcap.config import RunConfig
from medcap.runs.folder import RunDir
from medcap.train.prep import RunData, feature_store_summary

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "val_cider", "lr", "seconds")


def finite(x: float) -> float | None:
    """`x`, or None when it is not finite (JSON has no inf/nan)."""
    return float(x) if math.isfinite(x) else None


def write_history(run_dir: Path, rows: list[dict[str, float]]) -> None:
    """Rewrite the run's history.csv from the epoch rows (atomic)."""
    lines = [",".join(HISTORY_COLUMNS)]
    for row in rows:
        lines.append(",".join(_fmt(row.get(c, math.nan)) for c in HISTORY_COLUMNS))
    write_text(RunDir(run_dir).history, "\n".join(lines) + "\n")


def _fmt(x: Any) -> str:
    if isinstance(x, int | np.integer):
        return str(int(x))
    return repr(float(x))


def config_json(cfg: RunConfig, data: RunData | None, vocab_size: int | None) -> dict[str, Any]:
    """config.json of a run: before its data is prepared (`data` None) and after."""
    return {
        "run": cfg.to_dict(),
        "dataset_fingerprint": data.fingerprint if data else None,
        "feature_store": feature_store_summary(data.store) if data else None,
        "feature_scale": data.feature_scale if data else None,
        "vocab_size": vocab_size,
        "n_images": {k: len(v) for k, v in data.image_ids.items()} if data else None,
        "n_pairs": {k: data.n_pairs(k) for k in data.token_ids} if data else None,
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                     "keras": keras.__version__, "numpy": np.__version__, "medcap": medcap.__version__},
        "git_commit": _git_commit(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
