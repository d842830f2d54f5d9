"""Training across machines: `tf.distribute.MultiWorkerMirroredStrategy`, configured from `TF_CONFIG`.

Every worker runs the same `train` command with its own `TF_CONFIG`. The strategy connects them
(gRPC, collective all-reduce of the gradients); each worker reads only its replicas' slices of every
global batch (`medcap.model.pipeline.ReplicaSlice`), so the replicas together step through exactly
the batches one process would, at the same global batch size. Only the chief writes the run folder
(status, history, weights, resume state); a resumed run starts from the chief's saved state, which
the chief broadcasts to every worker before the first step.

The epoch loop here is our own (`strategy.run`, a GradientTape and the model's own optimizer), not
Keras `fit`: Keras 3.15's `fit` under this strategy fails reducing its scalar metrics across workers
(keras-team/keras#20585). Loss and accuracy are those `fit` reports: a step's loss is the mean
cross-entropy over the global batch plus the L2 penalty; an epoch's figure is their pair-weighted mean.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from medcap.base.cluster import TF_CONFIG_VAR, ClusterTask, read_tf_config
from medcap.model.pipeline import ReplicaSlice

log = logging.getLogger(__name__)

TIMEOUT_VAR = "MEDCAP_COLLECTIVE_TIMEOUT_S"  # seconds a collective waits for a lost worker (default below)
DEFAULT_TIMEOUT_S = 600.0
_EXACT = 2.0**53  # integers up to this travel exactly through a float64 broadcast


@dataclass
class Cluster:
    """This process's task and the strategy that joins it to the others."""

    task: ClusterTask
    strategy: tf.distribute.Strategy

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)


def start_cluster(environ: dict[str, str] | None = None) -> Cluster:
    """Create the strategy from `TF_CONFIG` (first thing in the process: before any other TensorFlow op).

    Blocks until every task of the cluster has started. A lost worker makes the others fail after
    `MEDCAP_COLLECTIVE_TIMEOUT_S` seconds (default 600) instead of waiting for ever.
    """
    env = os.environ if environ is None else environ
    task = read_tf_config(env)
    if task is None:
        raise ValueError(f"strategy multi_worker: the {TF_CONFIG_VAR} environment variable is not set; every "
                         f"worker needs e.g. {TF_CONFIG_VAR}='{{\"cluster\": {{\"worker\": [\"host1:12345\", "
                         f"\"host2:12345\"]}}, \"task\": {{\"type\": \"worker\", \"index\": 0}}}}'")
    try:
        timeout = float(env.get(TIMEOUT_VAR) or DEFAULT_TIMEOUT_S)
    except ValueError as exc:
        raise ValueError(f"{TIMEOUT_VAR}: expected seconds, got {env.get(TIMEOUT_VAR)!r}") from exc
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    log.info("multi-worker: %s (rank %d of %d tasks, %d replicas in sync)%s", task.name, task.rank, task.size,
             strategy.num_replicas_in_sync, "; the chief" if task.is_chief else "")
    return Cluster(task, strategy)


def replica_slice(ctx: tf.distribute.InputContext) -> ReplicaSlice:
    """The global-batch slices one input pipeline feeds: its local replicas' (replicas are numbered by task)."""
    local = ctx.num_replicas_in_sync // ctx.num_input_pipelines
    return ReplicaSlice(first=ctx.input_pipeline_id * local, local=local, total=ctx.num_replicas_in_sync)


def data_digest(fingerprint: str, words: Sequence[str], feature_scale: dict[str, float] | None,
                pairs: dict[str, int]) -> str:
    """What every worker must agree on before training: dataset, vocabulary, feature scale, pair counts."""
    blob = json.dumps({"fingerprint": fingerprint, "words": list(words), "scale": feature_scale,
                       "pairs": pairs}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class DistributedEpochs:
    """Broadcasts from the chief, and train / evaluate epochs over per-worker sharded datasets."""

    def __init__(self, cluster: Cluster, model: keras.Model) -> None:
        self.cluster = cluster
        self.strategy = cluster.strategy
        self.model = model
        self._train_step = self._make_step(training=True)
        self._eval_step = self._make_step(training=False)

    # ---------------------------------------------------------------- agreement

    def agree(self, values: Sequence[float]) -> np.ndarray:
        """The chief's float64 values, on every worker (an all-reduce where only replica 0 contributes)."""
        x = tf.constant(np.asarray(values, dtype=np.float64))  # (K,)

        @tf.function
        def run() -> Any:
            def fn() -> tf.Tensor:
                ctx = tf.distribute.get_replica_context()
                mine = tf.cast(tf.equal(ctx.replica_id_in_sync_group, 0), tf.float64)
                return ctx.all_reduce("sum", x * mine)

            return self.strategy.run(fn)

        return self.strategy.experimental_local_results(run())[0].numpy()

    def check_same_data(self, digest: str) -> None:
        """ValueError on every worker when any worker's data differ from the chief's (no silent mismatch)."""
        mine = float(int(digest[:12], 16))  # 48 bits: exact in float64
        chief = float(self.agree([mine])[0])
        differs = float(chief != mine)
        n_differ = self._sum(differs)
        if n_differ:
            raise ValueError(f"{int(n_differ)} worker(s) prepared different data from the chief (dataset "
                             "fingerprint, vocabulary, feature scale or pair counts differ): every worker must "
                             "read the same dataset and feature store with the same config")

    def broadcast_variables(self, variables: Sequence[Any]) -> None:
        """Give every worker the chief's values of `variables` (model and optimizer, after a resume)."""
        variables = list(variables)
        for v in variables:
            if v.dtype in ("int64", "uint64") and abs(int(np.max(np.abs(v.numpy()), initial=0))) >= _EXACT:
                raise ValueError(f"{v.path}: integer values beyond 2**53 cannot be broadcast exactly")

        @tf.function
        def run() -> Any:
            def fn() -> list[tf.Tensor]:
                ctx = tf.distribute.get_replica_context()
                mine = tf.cast(tf.equal(ctx.replica_id_in_sync_group, 0), tf.float64)
                vals = [tf.cast(tf.convert_to_tensor(v.value), tf.float64) * mine for v in variables]
                return ctx.all_reduce("sum", vals)

            return self.strategy.run(fn)

        for v, value in zip(variables, run(), strict=True):
            v.assign(tf.cast(self.strategy.experimental_local_results(value)[0], v.dtype))

    def _sum(self, value: float) -> float:
        x = tf.constant(value, tf.float64)

        @tf.function
        def run() -> Any:
            return self.strategy.run(lambda: tf.distribute.get_replica_context().all_reduce("sum", x))

        return float(self.strategy.experimental_local_results(run())[0].numpy())

    # ---------------------------------------------------------------- epochs

    def dataset(self, make: Callable[[ReplicaSlice], tf.data.Dataset]) -> Any:
        """A distributed dataset: `make(slice)` builds each worker's pipeline of per-replica batches."""
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF  # sharded above

        def per_worker(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
            return make(replica_slice(ctx)).with_options(options)

        return self.strategy.distribute_datasets_from_function(per_worker)

    def run_epoch(self, dataset: Any, steps: int, training: bool,
                  on_step: Callable[[int, float], None] | None = None) -> dict[str, float]:
        """One pass over `steps` global batches: {"loss", "accuracy"} as Keras `fit` / `evaluate` report them."""
        step_fn = self._train_step if training else self._eval_step
        it = iter(dataset)
        loss_sum = correct = count = 0.0
        for step in range(steps):
            s_loss, s_correct, s_count = (float(t) for t in step_fn(it))
            loss_sum, correct, count = loss_sum + s_loss, correct + s_correct, count + s_count
            if on_step is not None:
                on_step(step, loss_sum / max(count, 1.0))
        if count == 0:
            return {"loss": math.nan, "accuracy": math.nan}
        return {"loss": loss_sum / count, "accuracy": correct / count}

    def _make_step(self, training: bool) -> Callable[[Any], tuple[tf.Tensor, tf.Tensor, tf.Tensor]]:
        model, strategy = self.model, self.strategy
        n_replicas = float(strategy.num_replicas_in_sync)

        def replica_step(x: dict[str, tf.Tensor], y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            ctx = tf.distribute.get_replica_context()
            b = tf.cast(tf.shape(y)[0], tf.float32)  # this replica's pairs
            n = ctx.all_reduce("sum", b)  # the global batch
            with tf.GradientTape() as tape:
                probs = model(x, training=training)["probs"]  # (b, V)
                ce = keras.losses.sparse_categorical_crossentropy(y, probs)  # (b,)
                reg = tf.add_n([tf.cast(r, tf.float32) for r in model.losses]) if model.losses else tf.constant(0.0)
                # summed over replicas by the optimizer: mean cross-entropy of the global batch + the penalty
                loss = tf.reduce_sum(ce) / n + reg / n_replicas
                scaled = model.optimizer.scale_loss(loss) if training else loss
            if training:
                grads = tape.gradient(scaled, model.trainable_variables)
                model.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            hits = tf.cast(tf.equal(tf.argmax(probs, axis=-1, output_type=tf.int32), tf.cast(y, tf.int32)), tf.float32)
            return tf.reduce_sum(ce) + reg * b, tf.reduce_sum(hits), b  # what `fit`'s loss/accuracy average

        @tf.function(reduce_retracing=True)
        def step(it: Any) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            x, y = next(it)
            out = strategy.run(replica_step, args=(x, y))
            return tuple(strategy.reduce("SUM", v, axis=None) for v in out)

        return step


def write_epoch_scalars(log_dir: Any, epoch: int, logs: dict[str, float]) -> None:
    """TensorBoard epoch scalars as Keras' callback names them (`epoch_loss` under train/ and validation/)."""
    from medcap.train.callbacks import tensorboard_available

    if not tensorboard_available():
        return
    for sub, prefix in (("train", ""), ("validation", "val_")):
        values = {k[len(prefix):]: v for k, v in logs.items()
                  if (k.startswith("val_") if prefix else not k.startswith("val_")) and math.isfinite(v)}
        if not values:
            continue
        writer = tf.summary.create_file_writer(os.path.join(str(log_dir), sub))
        with writer.as_default():
            for k, v in values.items():
                tf.summary.scalar(f"epoch_{k}", v, step=epoch)
        writer.close()
