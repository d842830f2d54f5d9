"""Resume state of a run: everything needed to continue after the last finished epoch.

One atomic `.npz` per save (`RunDir.resume_state`) holds the JSON-encoded counters (epoch, best
val_loss, early-stopping and plateau waits, lr, seed, history rows) as a unicode array, every model
variable (dropout seed-generator states included) and every optimizer variable. No pickle: the
file loads with `allow_pickle=False`.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medcap.base.io import save_npz
from medcap.runs.folder import RunDir

log = logging.getLogger(__name__)

RESUME_FILE = RunDir.RESUME
_STATE_KEY = "state_json"


@dataclass
class ResumeState:
    """Counters of the training loop after `epoch` finished epochs."""

    epoch: int = 0  # finished epochs
    best_val_loss: float = math.inf
    best_epoch: int = 0
    es_wait: int = 0  # epochs without improvement (early stopping)
    lr_wait: int = 0  # epochs without improvement since the last lr reduction (plateau)
    lr: float = 1e-3
    seed: int = 42
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    def to_json(self) -> str:
        data = asdict(self)
        data["best_val_loss"] = None if math.isinf(self.best_val_loss) else self.best_val_loss
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ResumeState:
        data = json.loads(text)
        if data.get("best_val_loss") is None:
            data["best_val_loss"] = math.inf
        return cls(**data)


def update_on_epoch(state: ResumeState, val_loss: float, patience: int, lr_patience: int,
                    lr_factor: float, min_lr: float, min_delta: float = 0.0) -> tuple[bool, bool]:
    """Advance early-stopping and plateau counters after one epoch.

    Returns (improved, stop). Mutates `state` (best_val_loss, best_epoch, es_wait, lr_wait, lr,
    stopped_early). `state.epoch` must already count the finished epoch.
    """
    improved = bool(np.isfinite(val_loss)) and val_loss < state.best_val_loss - min_delta
    if improved:
        state.best_val_loss = float(val_loss)
        state.best_epoch = state.epoch
        state.es_wait = 0
        state.lr_wait = 0
    else:
        state.es_wait += 1
        state.lr_wait += 1
        if state.lr_wait >= lr_patience and state.lr > min_lr:
            new_lr = max(state.lr * lr_factor, min_lr)
            log.info("val_loss has not improved for %d epochs: learning rate %.3g -> %.3g",
                     state.lr_wait, state.lr, new_lr)
            state.lr = new_lr
            state.lr_wait = 0
    stop = state.es_wait >= patience
    state.stopped_early = stop
    return improved, stop


def _arrays(prefix: str, variables: list[Any]) -> dict[str, np.ndarray]:
    return {f"{prefix}{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(variables)}


def save_resume(weights_dir: Path, state: ResumeState, model_vars: list[Any], opt_vars: list[Any]) -> Path:
    """Write state + model and optimizer variables to `weights_dir/RESUME_FILE` in one atomic write."""
    arrays = {_STATE_KEY: np.array(state.to_json())}
    arrays.update(_arrays("model_", model_vars))
    arrays.update(_arrays("opt_", opt_vars))
    arrays["model_paths"] = np.array([str(getattr(v, "path", i)) for i, v in enumerate(model_vars)] or [""])
    arrays["opt_paths"] = np.array([str(getattr(v, "path", i)) for i, v in enumerate(opt_vars)] or [""])
    path = Path(weights_dir) / RESUME_FILE
    save_npz(path, **arrays)
    return path


def load_resume_state(weights_dir: Path) -> ResumeState | None:
    """The counters saved by `save_resume`, or None when the run has no finished epoch yet."""
    path = Path(weights_dir) / RESUME_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return ResumeState.from_json(str(npz[_STATE_KEY]))
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: unreadable resume state ({exc})") from exc


def _assign(path: Path, npz: Any, prefix: str, variables: list[Any]) -> None:
    keys = sorted(k for k in npz.files if k.startswith(prefix) and k[len(prefix):].isdigit())
    if len(keys) != len(variables):
        raise ValueError(f"{path}: holds {len(keys)} {prefix.rstrip('_')} variables, the rebuilt model has "
                         f"{len(variables)} (config changed since the run started?)")
    for key, var in zip(keys, variables, strict=True):
        value = npz[key]
        if tuple(value.shape) != tuple(var.shape):
            raise ValueError(f"{path}: {key} has shape {value.shape}, variable {getattr(var, 'path', '?')} "
                             f"expects {tuple(var.shape)}")
        var.assign(value)


def restore_variables(weights_dir: Path, model_vars: list[Any], opt_vars: list[Any]) -> None:
    """Assign the saved model and optimizer variables (same order as when saved)."""
    path = Path(weights_dir) / RESUME_FILE
    with np.load(path, allow_pickle=False) as npz:
        _assign(path, npz, "model_", model_vars)
        _assign(path, npz, "opt_", opt_vars)
