"""Evaluation: caption metrics, bootstrap CIs, baselines, the paper's tables, run evaluation and comparison.

`metrics`, `bootstrap`, `baselines` and `paper` are pure (no TensorFlow); `evaluate_run` and
`compare_runs` (resolved lazily here) load runs and import TensorFlow through `medcap.train` only
when called.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"evaluate_run": "medcap.eval.evaluate", "compare_runs": "medcap.eval.compare"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'medcap.eval' has no attribute {name!r}")
