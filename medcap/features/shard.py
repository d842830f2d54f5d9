"""Which part of a dataset one worker extracts: `I/N` shards, from a flag or from `TF_CONFIG`.

A shard is a contiguous block of the store's row order (image ids sorted), so shards are
disjoint, deterministic, and their concatenation in shard order is the unsharded row order.
No TensorFlow here; `TF_CONFIG` is read by `medcap.base.cluster`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from medcap.base.cluster import TF_CONFIG_VAR, read_tf_config

TF_CONFIG_WORDS = ("tf-config", "tf_config", "TF_CONFIG")


def shard_bounds(n_rows: int, index: int, count: int) -> tuple[int, int]:
    """Rows [lo, hi) of shard `index` of `count` over `n_rows` rows (sizes differ by at most one)."""
    check_shard(index, count)
    return index * n_rows // count, (index + 1) * n_rows // count


def check_shard(index: int, count: int) -> None:
    """ValueError unless 0 <= index < count."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need 0 <= I < N (shards are numbered from 0)")


def parse_shard(text: str, environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """`"I/N"` -> (I, N); `"tf-config"` -> the worker's shard from the `TF_CONFIG` environment variable."""
    if text.strip() in TF_CONFIG_WORDS:
        return shard_from_tf_config(os.environ if environ is None else environ)
    index, sep, count = text.strip().partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise ValueError(f"--shard {text!r}: expected I/N (e.g. 0/4) or tf-config")
    out = int(index), int(count)
    check_shard(*out)
    return out


def shard_from_tf_config(environ: Mapping[str, str]) -> tuple[int, int]:
    """(I, N) from `TF_CONFIG` = {"cluster": {"worker": [...]}, "task": {"type": "worker", "index": i}}.

    A `chief` (MultiWorkerMirroredStrategy style) counts as shard 0 and workers follow it.
    """
    task = read_tf_config(environ)
    if task is None:
        raise ValueError(f"--shard tf-config: the {TF_CONFIG_VAR} environment variable is not set")
    check_shard(task.rank, task.size)
    return task.rank, task.size
