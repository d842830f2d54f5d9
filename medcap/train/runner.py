"""Train a run epoch by epoch, resumable after a kill: `train_run(cfg)` and `resume_run(run_dir)`.

This module is the run's lifecycle: the folder lock, status (queued, running, finished, failed,
cancelled), the run's log, SIGTERM, non-chief workers' scratch folders, data preparation. The epoch loop
is `medcap.train.fit`, the epochs themselves `medcap.train.epochs`, config.json/history.csv
`medcap.train.run_files`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medcap.base.io import write_json
from medcap.base.locks import RunLock
from medcap.config import RunConfig
from medcap.inference.opened import run_config
from medcap.runs.folder import RunDir
from medcap.runs.index import new_run_dir, read_config, read_status, write_status
from medcap.train.facts_fit import fit_facts
from medcap.train.fit import fit_run
from medcap.train.prep import prepare_data
from medcap.train.run_files import config_json, finite

log = logging.getLogger(__name__)


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
        write_json(RunDir(run_dir).config, config_json(cfg, None, None))
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
    cfg = run_config(run_dir)  # ValueError naming config.json when it is missing or malformed
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
                write_json(RunDir(run_dir).config, config_json(cfg, data, len(data.vocab)))
            state = fit_run(run_dir, cfg, data, resume, cluster)
            if cfg.facts and (cluster is None or cluster.task.is_chief):
                write_status(run_dir, "running", pid=os.getpid(), message="fitting the fact predictors")
                fit_facts(run_dir, data, seed=cfg.seed)
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
                 best_val_loss=finite(state.best_val_loss), best_epoch=state.best_epoch,
                 message=f"finished after {reason}; best val_loss {state.best_val_loss:.4f} "
                         f"at epoch {state.best_epoch}"
                         + (f" (restarted from epoch 1: {restarted})" if restarted else ""))
    return run_dir


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
