"""One epoch of training, two ways: Keras `fit` on one machine, or `strategy.run` across workers.

`KerasEpochs` and `MultiWorkerEpochs` share one interface for the epoch loop (`medcap.train.fit`):
`.steps`, `run(epoch, status) -> logs`, `after_epoch(epoch, logs)`; the multi-worker one also makes every
worker start from the chief's state (`agree_start`). `pairs` is a split's lazy (prefix, next word) dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow as tf

from medcap.config import RunConfig
from medcap.runs.folder import RunDir
from medcap.train.callbacks import StatusCallback, tensorboard_callback
from medcap.train.prep import RunData
from medcap.train.state import ResumeState


class KerasEpochs:
    """One Keras `fit` call per epoch (validation inside it), on one machine."""

    def __init__(self, model: Any, data: RunData, cfg: RunConfig, has_val: bool, run_dir: Path) -> None:
        self.model, self.data, self.cfg = model, data, cfg
        self.steps = data.steps("train", cfg.batch_size)
        self.val_ds = pairs(data, "val", cfg, shuffle=False, epoch=0) if has_val else None
        self.tensorboard = tensorboard_callback(RunDir(run_dir).tensorboard)

    def run(self, epoch: int, status: StatusCallback) -> dict[str, float]:
        train_ds = pairs(self.data, "train", self.cfg, shuffle=True, epoch=epoch)
        # one epoch per fit() call; initial_epoch numbers it for TensorBoard, validation runs inside fit
        history = self.model.fit(train_ds, validation_data=self.val_ds, initial_epoch=epoch, epochs=epoch + 1,
                                 verbose=0, shuffle=False, callbacks=[status, *self.tensorboard]).history
        return {k: float(v[-1]) for k, v in history.items()}

    def after_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        """Nothing to add: Keras' TensorBoard callback wrote the epoch."""


class MultiWorkerEpochs:
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
        return self.dist.dataset(lambda part: pairs(self.data, split, self.cfg, shuffle=train,
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


def pairs(data: RunData, split: str, cfg: RunConfig, shuffle: bool, epoch: int, replicas: Any = None
           ) -> tf.data.Dataset:
    """The lazy (prefix, next word) dataset of one split (raw store features: the model scales them);
    shuffled in an epoch-seeded order; `replicas`: one worker's slices of each global batch."""
    from medcap.model import store_pairs_dataset
    from medcap.model.pipeline import WHOLE

    return store_pairs_dataset(data.store, data.rows[split], data.token_ids[split], batch_size=cfg.batch_size,
                               shuffle=shuffle, seed=cfg.seed, max_len=cfg.max_words + 1,
                               augment=cfg.augment > 0 and split == "train", epoch=epoch, num_epochs=1,
                               replicas=replicas or WHOLE)
