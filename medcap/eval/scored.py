"""Which weights an evaluation scores: recorded in its metrics.json (`weights`), with a warning when the run
is still being trained (its best weights so far are scored, and may be replaced a minute later)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from medcap.base.locks import lock_holder
from medcap.runs.folder import RunDir, effective_state
from medcap.runs.index import resolve_run

log = logging.getLogger(__name__)


def scored_weights(run_dir: str | Path) -> dict[str, Any]:
    """What an evaluation of `run_dir` is about to score, read before the weights are loaded.

    `file` (relative to the run), `epoch` (the epoch whose weights `best.weights.h5` holds, from status.json's
    `best_epoch`; None when not recorded), `epochs_run`, `run_state` and `run_training` (a live process holds
    the run's lock). Logs a warning when the run is being trained.
    """
    run = RunDir(resolve_run(run_dir))  # a folder or a run id
    status = run.read_status()
    best, done = status.get("best_epoch"), status.get("epoch")
    holder = lock_holder(run.path)
    info = {"file": f"{RunDir.WEIGHTS}/{RunDir.BEST}", "epoch": best if isinstance(best, int) else None,
            "epochs_run": done if isinstance(done, int) else None, "run_state": effective_state(status),
            "run_training": holder is not None}
    if holder is not None:
        log.warning("%s is being trained right now (pid %s): scoring its best weights so far (epoch %s, after %s "
                    "of %s epochs); they may change before training ends. Evaluate again once it has finished.",
                    run.run_id, holder or "?", info["epoch"] or "?", info["epochs_run"] or "?",
                    status.get("epochs", "?"))
    return info
