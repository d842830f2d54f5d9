"""Train a run epoch by epoch, resumable after a kill: `train_run(cfg)` and `resume_run(run_dir)`."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import math
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import medcap
from medcap.base.io import save_weights, write_json, write_text
from medcap.base.locks import RunLock
from medcap.config import RunConfig
from medcap.runs.folder import RunDir
from medcap.runs.index import new_run_dir, read_config, read_status, write_status
from medcap.train.callbacks import StatusCallback, progress_fraction, tensorboard_callback
from medcap.train.prep import RunData, feature_store_summary, prepare_data
from medcap.train.state import (
    ResumeState,
    load_resume_state,
    restore_variables,
    save_resume,
    update_on_epoch,
)

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "val_cider", "lr", "seconds")


class RunCancelled(Exception):  # noqa: N818 (a state, not an error)
    """Raised inside the training loop when the process receives SIGTERM."""


def train_run(cfg: RunConfig, run_dir: Path | None = None) -> Path | None:
    """Train a new run (or fill the given empty folder) and return its folder.

    The whole run holds the folder's `RunLock` (LockedError when another live process trains it).
    With strategy "multi_worker" every worker of `TF_CONFIG` calls this; only the chief writes
    `run_dir` and gets it back, the other workers return None.
    """
    cfg.validate()  # a config edited after it was made
    cluster = _cluster(cfg)  # before any other TensorFlow op
    if cluster is not None and not cluster.task.is_chief:
        return _run_worker(cfg, cluster)
    run_dir = Path(run_dir) if run_dir else new_run_dir(cfg.name, cfg.preset)
    run_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(run_dir):
        write_status(run_dir, "queued", epoch=0, epochs=cfg.epochs, step=0, steps=0, progress=0.0,
                     message="queued", error=None, pid=os.getpid())
        write_json(RunDir(run_dir).config, _config_json(cfg, None, None))
        return _execute(run_dir, cfg, resume=False, cluster=cluster)


def resume_run(run_dir: Path) -> Path | None:
    """Continue an interrupted run from its last finished epoch (same data order, optimizer state).

    The whole resume holds the folder's `RunLock`: a second resume of a run being trained raises
    LockedError ("<run> is already being trained by pid N") and touches nothing. A finished run whose
    best weights are gone is trained again from epoch 1 (said in the log and the status message).
    A multi-worker run is resumed by every worker (the folder on a shared file system); the chief
    continues it, the others take the chief's state and return None.
    """
    run_dir = Path(run_dir)
    cfg = _run_config(run_dir)
    cluster = _cluster(cfg)
    if cluster is not None and not cluster.task.is_chief:
        return _run_worker(cfg, cluster)
    with RunLock(run_dir):
        config = read_config(run_dir)
        if read_status(run_dir).get("state") == "finished":
            if RunDir(run_dir).best_weights.is_file() and cluster is None:
                log.info("%s already finished; nothing to resume", run_dir)
                return run_dir
            # multi-worker: go through the start so the other workers learn from the chief that it is done
            if not RunDir(run_dir).best_weights.is_file():
                log.warning("%s finished but its best weights (%s) are missing: training it again", run_dir,
                            RunDir(run_dir).best_weights)
        return _execute(run_dir, cfg, resume=True, expected_fingerprint=config.get("dataset_fingerprint"),
                        cluster=cluster)


def _run_config(run_dir: Path) -> RunConfig:
    config = read_config(run_dir)
    if "run" not in config:
        raise ValueError(f"{RunDir(run_dir).config}: missing or malformed; cannot resume")
    return RunConfig.from_dict(config["run"], source=str(RunDir(run_dir).config))


def _cluster(cfg: RunConfig) -> Any:
    """The multi-worker cluster of a `strategy="multi_worker"` run (None otherwise)."""
    if cfg.strategy != "multi_worker":
        return None
    from medcap.train.multi_worker import start_cluster

    return start_cluster()


def _run_worker(cfg: RunConfig, cluster: Any) -> None:
    """A non-chief worker: the same training steps; its own files (log, status, split, vocabulary) go to a
    scratch folder in the temp dir, named by task and settings, cleared when it starts and removed at the end
    (a killed worker's leftovers are cleared by its restart)."""
    key = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
    scratch = Path(tempfile.gettempdir()) / f"medcap-{cluster.task.name}-{key}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        _execute(scratch, cfg, resume=False, cluster=cluster)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("%s done; the chief wrote the run", cluster.task.name)


def restart_reason(run_dir: Path) -> str | None:
    """Why a resume of `run_dir` must start again at epoch 1 (None when it can continue where it stopped)."""
    run = RunDir(run_dir)
    if not run.resume_state.is_file():
        return f"no saved training state ({run.resume_state} is missing: weights deleted, or no epoch finished yet)"
    if not run.best_weights.is_file():
        return f"its best weights ({run.best_weights}) are missing, so its saved state is not used"
    return None


def _execute(run_dir: Path, cfg: RunConfig, resume: bool, expected_fingerprint: str | None = None,
             cluster: Any = None) -> Path:
    with _run_log(run_dir), _sigterm_cancels():
        try:
            write_status(run_dir, "running", pid=os.getpid(), error=None,
                         message="resuming: preparing data" if resume else "preparing data and features")
            data = prepare_data(cfg, run_dir, resume=resume)
            if resume and expected_fingerprint and expected_fingerprint != data.fingerprint:
                raise ValueError(f"{cfg.dataset}: dataset changed since the run started (fingerprint "
                                 f"{data.fingerprint} != {expected_fingerprint}); cannot resume")
            if resume:
                data.feature_scale = read_config(run_dir).get("feature_scale") or {"global": 1.0, "grid": 1.0}
            else:
                data.compute_feature_scale(seed=cfg.seed)
                write_json(RunDir(run_dir).config, _config_json(cfg, data, len(data.vocab)))
            state = _fit(run_dir, cfg, data, resume, cluster)
        except RunCancelled:
            log.warning("run cancelled (SIGTERM)")
            write_status(run_dir, "cancelled", message="cancelled by SIGTERM", pid=os.getpid())
            raise
        except BaseException as exc:
            log.exception("run failed")
            write_status(run_dir, "failed", error=f"{type(exc).__name__}: {exc}",
                         message="failed", pid=os.getpid())
            raise
    reason = "early stopping" if state.stopped_early else f"{state.epoch} epochs"
    restarted = read_status(run_dir).get("restarted") if resume else None
    write_status(run_dir, "finished", epoch=state.epoch, progress=1.0, pid=os.getpid(),
                 best_val_loss=_finite(state.best_val_loss), best_epoch=state.best_epoch,
                 message=f"finished after {reason}; best val_loss {state.best_val_loss:.4f} "
                         f"at epoch {state.best_epoch}"
                         + (f" (restarted from epoch 1: {restarted})" if restarted else ""))
    return run_dir


def _fit(run_dir: Path, cfg: RunConfig, data: RunData, resume: bool, cluster: Any = None) -> ResumeState:
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
    epochs = _MultiWorkerEpochs(cluster, model, data, cfg, has_val, run_dir) if cluster else \
        _KerasEpochs(model, data, cfg, has_val, run_dir)
    if cluster is not None:  # every worker starts from the chief's variables and counters
        state = epochs.agree_start(state)
    _write_history(run_dir, state.history)
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
            _write_history(run_dir, state.history)
            save_weights(model, RunDir(run_dir).last_weights)
            epochs.after_epoch(epoch, logs)
        write_status(run_dir, "running", epoch=state.epoch, epochs=cfg.epochs, step=steps, steps=steps,
                     progress=progress_fraction(state.epoch, 0, steps, cfg.epochs), pid=os.getpid(),
                     best_val_loss=_finite(state.best_val_loss), best_epoch=state.best_epoch,
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


class _KerasEpochs:
    """One Keras `fit` call per epoch (validation inside it), on one machine."""

    def __init__(self, model: Any, data: RunData, cfg: RunConfig, has_val: bool, run_dir: Path) -> None:
        self.model, self.data, self.cfg = model, data, cfg
        self.steps = data.steps("train", cfg.batch_size)
        self.val_ds = _pairs(data, "val", cfg, shuffle=False, epoch=0) if has_val else None
        self.tensorboard = tensorboard_callback(RunDir(run_dir).tensorboard)

    def run(self, epoch: int, status: StatusCallback) -> dict[str, float]:
        train_ds = _pairs(self.data, "train", self.cfg, shuffle=True, epoch=epoch)
        # one epoch per fit() call; initial_epoch numbers it for TensorBoard, validation runs inside fit
        history = self.model.fit(train_ds, validation_data=self.val_ds, initial_epoch=epoch, epochs=epoch + 1,
                                 verbose=0, shuffle=False, callbacks=[status, *self.tensorboard]).history
        return {k: float(v[-1]) for k, v in history.items()}

    def after_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        """Nothing to add: Keras' TensorBoard callback wrote the epoch."""


class _MultiWorkerEpochs:
    """The same epochs under MultiWorkerMirroredStrategy (`medcap.train.multi_worker`)."""

    def __init__(self, cluster: Any, model: Any, data: RunData, cfg: RunConfig, has_val: bool,
                 run_dir: Path) -> None:
        from medcap.model.pipeline import global_batches
        from medcap.train.multi_worker import DistributedEpochs, data_digest

        self.cluster, self.data, self.cfg, self.has_val = cluster, data, cfg, has_val
        self.dist = DistributedEpochs(cluster, model)
        self.model = model
        n = cluster.replicas
        self.steps = global_batches(data.n_pairs("train"), cfg.batch_size, n)
        self.val_steps = global_batches(data.n_pairs("val"), cfg.batch_size, n) if has_val else 0
        self.digest = data_digest(data.fingerprint, data.vocab.words,
                                  data.feature_scale, {k: data.n_pairs(k) for k in data.token_ids})
        self.run_dir = run_dir

    def agree_start(self, state: ResumeState) -> ResumeState:
        """Check that every worker prepared the chief's data, then take the chief's variables and counters."""
        self.dist.check_same_data(self.digest)
        self.dist.broadcast_variables([*self.model.variables, *self.model.optimizer.variables])
        counters = self.dist.agree([state.epoch, state.best_val_loss, state.best_epoch, state.es_wait,
                                    state.lr_wait, state.lr, float(state.stopped_early)])
        if self.cluster.task.is_chief:
            return state
        epoch, best, best_epoch, es_wait, lr_wait, lr, stopped = counters.tolist()
        return ResumeState(epoch=int(epoch), best_val_loss=best, best_epoch=int(best_epoch), es_wait=int(es_wait),
                           lr_wait=int(lr_wait), lr=lr, seed=state.seed, stopped_early=bool(stopped))

    def _dataset(self, split: str, epoch: int) -> Any:
        train = split == "train"
        return self.dist.dataset(lambda part: _pairs(self.data, split, self.cfg, shuffle=train,
                                                     epoch=epoch if train else 0, replicas=part))

    def run(self, epoch: int, status: StatusCallback) -> dict[str, float]:
        def on_step(step: int, loss: float) -> None:
            if self.cluster.task.is_chief:
                status.on_train_batch_end(step, {"loss": loss})

        logs = self.dist.run_epoch(self._dataset("train", epoch), self.steps, training=True, on_step=on_step)
        if self.has_val:
            val = self.dist.run_epoch(self._dataset("val", 0), self.val_steps, training=False)
            logs.update({f"val_{k}": v for k, v in val.items()})
        return logs

    def after_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        from medcap.train.multi_worker import write_epoch_scalars

        write_epoch_scalars(RunDir(self.run_dir).tensorboard, epoch, logs)


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


def _pairs(data: RunData, split: str, cfg: RunConfig, shuffle: bool, epoch: int, replicas: Any = None
           ) -> tf.data.Dataset:
    """The lazy (prefix, next word) dataset of one split (raw store features: the model scales them);
    shuffled in an epoch-seeded order; `replicas`: one worker's slices of each global batch."""
    from medcap.model import store_pairs_dataset
    from medcap.model.pipeline import WHOLE

    return store_pairs_dataset(data.store, data.rows[split], data.token_ids[split], batch_size=cfg.batch_size,
                               shuffle=shuffle, seed=cfg.seed, max_len=cfg.max_words + 1,
                               augment=cfg.augment > 0 and split == "train", epoch=epoch, num_epochs=1,
                               replicas=replicas or WHOLE)


def _accuracy(metrics: dict[str, Any]) -> float:
    for key in ("accuracy", "probs_accuracy", "sparse_categorical_accuracy", "probs_sparse_categorical_accuracy"):
        if key in metrics:
            return float(metrics[key])
    found = [v for k, v in metrics.items() if k.endswith("accuracy")]
    return float(found[0]) if found else math.nan


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _write_history(run_dir: Path, rows: list[dict[str, float]]) -> None:
    lines = [",".join(HISTORY_COLUMNS)]
    for row in rows:
        lines.append(",".join(_fmt(row.get(c, math.nan)) for c in HISTORY_COLUMNS))
    write_text(RunDir(run_dir).history, "\n".join(lines) + "\n")


def _fmt(x: Any) -> str:
    if isinstance(x, int | np.integer):
        return str(int(x))
    return repr(float(x))


def _config_json(cfg: RunConfig, data: RunData | None, vocab_size: int | None) -> dict[str, Any]:
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


@contextlib.contextmanager
def _run_log(run_dir: Path) -> Iterator[None]:
    """Copy medcap's log records into the run's log (`RunDir.log`) while the run executes."""
    handler = logging.FileHandler(RunDir(run_dir).log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("medcap")
    previous = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
        handler.close()


@contextlib.contextmanager
def _sigterm_cancels() -> Iterator[None]:
    """Turn SIGTERM into RunCancelled in the main thread (elsewhere signals cannot be handled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _handler(signum: int, frame: Any) -> None:
        raise RunCancelled(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
