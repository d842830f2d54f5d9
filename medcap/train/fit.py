"""The epoch loop of a run: build the model, continue from the saved state when it may, then per epoch
train, score, keep the best weights, save the resume state and the history, and stop early.

The chief (or the only process) writes the run's files; the epochs themselves are `medcap.train.epochs`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from medcap.base.io import save_weights
from medcap.config import RunConfig
from medcap.runs.folder import RunDir
from medcap.runs.index import write_status
from medcap.train.callbacks import StatusCallback, progress_fraction
from medcap.train.epochs import KerasEpochs, MultiWorkerEpochs
from medcap.train.prep import RunData
from medcap.train.run_files import finite, write_history
from medcap.train.state import ResumeState, load_resume_state, restore_variables, save_resume, update_on_epoch

log = logging.getLogger(__name__)


def restart_reason(run_dir: Path) -> str | None:
    """Why a resume of `run_dir` must start again at epoch 1 (None when it can continue where it stopped)."""
    run = RunDir(run_dir)
    if not run.resume_state.is_file():
        return f"no saved training state ({run.resume_state} is missing: weights deleted, or no epoch finished yet)"
    if not run.best_weights.is_file():
        return f"its best weights ({run.best_weights}) are missing, so its saved state is not used"
    return None


def fit_run(run_dir: Path, cfg: RunConfig, data: RunData, resume: bool, cluster: Any = None) -> ResumeState:
    """Train the run's epochs (from the saved state on a resume that may continue); the final state."""
    from medcap.model import build_model, compile_model

    weights = RunDir(run_dir).weights_dir
    writes = cluster is None or cluster.task.is_chief  # only the chief writes checkpoints
    restart = restart_reason(run_dir) if resume else None
    if restart:
        log.warning("resume of %s restarts from epoch 1: %s", run_dir.name, restart)
        write_status(run_dir, "running", pid=os.getpid(), message=f"restarting from epoch 1: {restart}",
                     restarted=restart)
    elif resume:
        write_status(run_dir, "running", pid=os.getpid(), restarted=None)
    weights.mkdir(exist_ok=True)
    saved = load_resume_state(weights) if resume and not restart else None
    keras.utils.set_random_seed(cfg.seed)
    strategy = _strategy(cfg, cluster)
    log.info("devices: %s; strategy %s (%d replicas)", [d.name for d in tf.config.list_logical_devices()],
             "MultiWorkerMirroredStrategy" if cluster else type(strategy).__name__, strategy.num_replicas_in_sync)
    with strategy.scope():
        with _precision(cfg.mixed_precision):
            model = build_model(cfg, vocab_size=len(data.vocab), global_dim=int(data.store.global_dim),
                                feature_scale=data.feature_scale)
        compile_model(model, cfg)
        model.optimizer.build(model.trainable_variables)
        state = saved or ResumeState(lr=cfg.learning_rate, seed=cfg.seed)
        if saved is not None:
            restore_variables(weights, model.variables, model.optimizer.variables)
            log.info("resumed after epoch %d (best val_loss %.4f at epoch %d, lr %.3g)",
                     saved.epoch, saved.best_val_loss, saved.best_epoch, saved.lr)
    has_val = len(data.image_ids["val"]) > 0
    epochs = MultiWorkerEpochs(cluster, model, data, cfg, has_val, run_dir) if cluster else \
        KerasEpochs(model, data, cfg, has_val, run_dir)
    if cluster is not None:  # every worker starts from the chief's variables and counters
        state = epochs.agree_start(state)
    write_history(run_dir, state.history)
    if not has_val:
        log.warning("validation split is empty: early stopping and lr schedule follow the training loss")
    steps = epochs.steps
    for epoch in range(state.epoch, cfg.epochs):
        if state.stopped_early:
            break
        start = time.monotonic()
        model.optimizer.learning_rate.assign(state.lr)
        write_status(run_dir, "running", epoch=epoch + 1, epochs=cfg.epochs, step=0, steps=steps,
                     progress=progress_fraction(epoch, 0, steps, cfg.epochs), pid=os.getpid(),
                     message=f"epoch {epoch + 1}/{cfg.epochs}")
        logs = epochs.run(epoch, StatusCallback(run_dir, epoch, cfg.epochs, steps))
        train_m = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val_m = {k[len("val_"):]: v for k, v in logs.items() if k.startswith("val_")}
        val_cider = _val_cider(model, data) if has_val and cfg.select_by == "val_cider" and writes else math.nan
        row = {
            "epoch": epoch + 1,
            "loss": train_m.get("loss", math.nan),
            "accuracy": _accuracy(train_m),
            "val_loss": float(val_m.get("loss", math.nan)),
            "val_accuracy": _accuracy(val_m),
            "val_cider": val_cider,
            "lr": float(state.lr),
            "seconds": round(time.monotonic() - start, 3),
        }
        state.epoch = epoch + 1
        state.history.append(row)
        # the kept epoch: lowest validation loss, or (select_by="val_cider") the captions that score best
        monitor = (-val_cider if cfg.select_by == "val_cider" else row["val_loss"]) if has_val else row["loss"]
        if cluster is not None:  # the chief's figure decides on every worker
            monitor = float(epochs.dist.agree([monitor])[0])
        improved, stop = update_on_epoch(state, monitor, cfg.patience, cfg.lr_patience, cfg.lr_factor, cfg.min_lr)
        log.info("epoch %d/%d: loss %.4f acc %.4f val_loss %.4f val_acc %.4f lr %.3g (%.1fs)%s",
                 row["epoch"], cfg.epochs, row["loss"], row["accuracy"], row["val_loss"], row["val_accuracy"],
                 row["lr"], row["seconds"], " *best*" if improved else "")
        if writes:
            if improved:
                save_weights(model, RunDir(run_dir).best_weights)
            save_resume(weights, state, model.variables, model.optimizer.variables)
            write_history(run_dir, state.history)
            save_weights(model, RunDir(run_dir).last_weights)
            epochs.after_epoch(epoch, logs)
        write_status(run_dir, "running", epoch=state.epoch, epochs=cfg.epochs, step=steps, steps=steps,
                     progress=progress_fraction(state.epoch, 0, steps, cfg.epochs), pid=os.getpid(),
                     best_val_loss=finite(state.best_val_loss), best_epoch=state.best_epoch,
                     message=f"epoch {state.epoch}/{cfg.epochs} done; val_loss {row['val_loss']:.4f}")
        if stop:
            log.info("early stopping after epoch %d (no improvement for %d epochs)", state.epoch, cfg.patience)
            break
    if writes and not RunDir(run_dir).best_weights.is_file():
        save_weights(model, RunDir(run_dir).best_weights)
    return state


def _strategy(cfg: RunConfig, cluster: Any) -> tf.distribute.Strategy:
    if cluster is not None:
        return cluster.strategy
    return tf.distribute.MirroredStrategy() if cfg.strategy == "mirrored" else tf.distribute.get_strategy()


def _val_cider(model: Any, data: RunData, max_images: int = 500) -> float:
    """CIDEr of plain greedy captions of (up to `max_images`) validation images against their captions.

    References are the vocabulary-encoded captions (out-of-vocabulary words dropped): a selection signal
    for choosing the epoch, not a reported figure.
    """
    from medcap.eval.metrics import cider
    from medcap.model import DecodeOptions, greedy_search

    ids = data.image_ids["val"][:max_images]
    if not ids:
        return math.nan
    _, g, r = data.store.gather(ids)  # (N, D), (N, 7, 7, C): every val id has features (RunData keeps those)
    caps = greedy_search(model, g, r, data.vocab, DecodeOptions(max_words=data.max_len - 1))
    refs = [[data.vocab.decode(tokens)] for tokens in data.token_ids["val"][:max_images]]
    return float(cider(refs, [list(c.words) for c in caps]).value)


def _accuracy(metrics: dict[str, Any]) -> float:
    for key in ("accuracy", "probs_accuracy", "sparse_categorical_accuracy", "probs_sparse_categorical_accuracy"):
        if key in metrics:
            return float(metrics[key])
    found = [v for k, v in metrics.items() if k.endswith("accuracy")]
    return float(found[0]) if found else math.nan


@contextlib.contextmanager
def _precision(mixed: bool) -> Iterator[None]:
    """Build layers under mixed_float16 when asked; the global policy is restored afterwards."""
    if not mixed:
        yield
        return
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
