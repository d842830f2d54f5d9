"""Training runs: `train_run`, `resume_run`, grid search (TensorFlow, imported lazily).

Reopening a trained run for inference is `medcap.inference.opened.load_run`.

`import medcap.train` is cheap; the names below import TensorFlow on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "train_run": "medcap.train.runner",
    "resume_run": "medcap.train.runner",
    "RunCancelled": "medcap.train.runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'medcap.train' has no attribute {name!r}")
