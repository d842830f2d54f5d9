"""Keras callbacks of a run: live progress in status.json (throttled) and TensorBoard logs."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import keras

from medcap.runs.index import write_status

log = logging.getLogger(__name__)


class Throttle:
    """True at most once per `interval` seconds (the first call is always True)."""

    def __init__(self, interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: float | None = None

    def ready(self) -> bool:
        now = self.clock()
        if self._last is None or now - self._last >= self.interval:
            self._last = now
            return True
        return False


def progress_fraction(epoch_index: int, step: int, steps: int, epochs: int) -> float:
    """Overall progress in [0, 1]: `epoch_index` finished epochs plus `step` of `steps` in the current one."""
    if epochs <= 0:
        return 0.0
    inner = min(step / steps, 1.0) if steps > 0 else 0.0
    return float(min(max((epoch_index + inner) / epochs, 0.0), 1.0))


class StatusCallback(keras.callbacks.Callback):
    """Writes state 'running' with epoch/step/progress to status.json, at most once per `interval` s."""

    def __init__(self, run_dir: Path, epoch_index: int, epochs: int, steps: int, interval: float = 1.0) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.epoch_index = epoch_index  # finished epochs before this fit() call
        self.epochs = epochs
        self.steps = steps
        self.throttle = Throttle(interval)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if not self.throttle.ready():
            return
        step = batch + 1
        loss = (logs or {}).get("loss")
        write_status(
            self.run_dir, "running",
            epoch=self.epoch_index + 1, epochs=self.epochs, step=step, steps=self.steps,
            progress=progress_fraction(self.epoch_index, step, self.steps, self.epochs),
            message=f"epoch {self.epoch_index + 1}/{self.epochs} step {step}/{self.steps}"
            + (f" loss {float(loss):.4f}" if loss is not None else ""),
            pid=os.getpid(),
        )


def tensorboard_available() -> bool:
    """Whether the `tensorboard` package (which tf.summary writes through) is installed."""
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def tensorboard_callback(log_dir: Path) -> list[keras.callbacks.Callback]:
    """Keras' own TensorBoard callback, kept cheap: epoch scalars only (no graph, histograms or profiling).

    `tensorboard --logdir <run>/tensorboard` shows loss and accuracy per epoch (train and validation).
    An empty list (and a warning) when the `tensorboard` package is missing: training never fails for it.
    """
    if not tensorboard_available():
        log.warning("tensorboard is not installed: no TensorBoard logs for this run (pip install tensorboard)")
        return []
    return [keras.callbacks.TensorBoard(
        log_dir=str(log_dir), histogram_freq=0, write_graph=False, write_images=False,
        update_freq="epoch", profile_batch=0,
    )]
