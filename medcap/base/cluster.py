"""Where this process sits in a cluster described by the standard `TF_CONFIG` environment variable.

`TF_CONFIG` = {"cluster": {"chief": [...], "worker": ["host:port", ...]}, "task": {"type": "worker",
"index": i}}. Tasks are ranked chief first, then workers in order; the rank is the worker's shard of a
sharded feature extraction and its input pipeline in multi-worker training. The chief (or worker 0 when
the cluster has no chief) is the one task that writes a run's files. No TensorFlow here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

TF_CONFIG_VAR = "TF_CONFIG"


@dataclass(frozen=True)
class ClusterTask:
    """One task of a chief/worker cluster."""

    task_type: str  # "chief" or "worker"
    index: int  # within its type
    n_chiefs: int
    n_workers: int

    @property
    def rank(self) -> int:
        """0-based position among all tasks, chief first (the shard / input pipeline index)."""
        return self.index if self.task_type == "chief" else self.n_chiefs + self.index

    @property
    def size(self) -> int:
        """Number of tasks that take part (chiefs and workers)."""
        return self.n_chiefs + self.n_workers

    @property
    def is_chief(self) -> bool:
        """The task that writes checkpoints and run files: the chief, or worker 0 without a chief."""
        return self.task_type == "chief" or (self.n_chiefs == 0 and self.index == 0)

    @property
    def name(self) -> str:
        return f"{self.task_type}-{self.index}"


def read_tf_config(environ: Mapping[str, str] | None = None) -> ClusterTask | None:
    """This process's task from `TF_CONFIG` (None when the variable is unset or empty).

    Raises ValueError naming the problem when it is set but malformed, or names a task outside the cluster.
    """
    raw = (os.environ if environ is None else environ).get(TF_CONFIG_VAR)
    if not raw or not raw.strip():
        return None
    try:
        conf = json.loads(raw)
        cluster, task = conf["cluster"], conf["task"]
        chiefs = list(cluster.get("chief", []))
        workers = list(cluster.get("worker", []))
        kind, index = str(task["type"]), int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{TF_CONFIG_VAR}: expected {{\"cluster\": {{\"worker\": [...]}}, \"task\": "
                         f"{{\"type\": \"worker\", \"index\": i}}}} ({type(exc).__name__}: {exc})") from exc
    if kind not in ("chief", "worker") or not 0 <= index < len(chiefs if kind == "chief" else workers):
        raise ValueError(f"{TF_CONFIG_VAR}: task {kind!r} #{index} is not a chief or worker of the cluster "
                         f"({len(chiefs)} chief, {len(workers)} workers)")
    return ClusterTask(kind, index, len(chiefs), len(workers))
