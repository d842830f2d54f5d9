"""Table shaping for the dashboard's run pages: the runs overview, run labels, cache keys.

No Streamlit and no TensorFlow here (both stay out of page-load imports). A broken or half-written
run folder becomes a row with a message, never an exception. Run folders are only ever resolved
from `list_runs`; user text never becomes a path. Evaluation outputs are read by
`medcap.eval.artifacts`, background processes live in `medcap.jobs`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medcap import paths
from medcap.eval.artifacts import METRIC_NAMES, as_float, ci_text, read_metrics
from medcap.rundir import EvalDir, RunDir
from medcap.runs import RunInfo, list_runs

# ----------------------------------------------------------------------------------------------
# cache keys


def file_signature(path: str | os.PathLike[str]) -> float:
    """Modification time of a file (0 when absent): the cache key of anything read from it."""
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return 0.0


def runs_signature(root: Path | None = None) -> tuple[tuple[str, float, float, float, float], ...]:
    """A cheap fingerprint of every run folder (names and mtimes): changes when any run changes."""
    root = root or paths.runs_dir()
    try:
        entries = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return ()
    sig = []
    for path in entries:
        run = RunDir(path)
        evals = 0.0
        if run.eval_root.is_dir():
            evals = max((file_signature(EvalDir(p).metrics) for p in run.eval_root.iterdir()), default=0.0)
        sig.append(
            (
                run.run_id,
                file_signature(run.status),
                file_signature(run.config),
                file_signature(run.history),
                evals,
            )
        )
    return tuple(sig)


# ----------------------------------------------------------------------------------------------
# runs


def find_run(run_id: str, root: Path | None = None) -> RunInfo | None:
    """The listed run with exactly this id (None otherwise): ids never become paths directly."""
    return next((info for info in list_runs(root) if info.run_id == run_id), None)


def run_label(info: RunInfo) -> str:
    """Short human label: `<preset> [<last 6 characters of the run id>]` (the id's random suffix).

    Example runs of the bundle read `<preset> [example]`.
    """
    return f"{info.preset} [{'example' if info.example else info.run_id[-6:]}]"


def latest_eval(info: RunInfo) -> str | None:
    """The evaluation of a run whose metrics file is newest (None when it has none)."""
    if not info.evals:
        return None
    return max(info.evals, key=lambda name: file_signature(info.dir.eval_dir(name).metrics))


def runs_table(root: Path | None = None) -> pd.DataFrame:
    """One row per run folder: status, preset, dataset, progress and headline BLEU-1 with its CI."""
    rows = []
    for info in list_runs(root):
        status = info.status
        bleu, ci, problem = math.nan, "", ""
        name = latest_eval(info)
        if name:
            try:
                metric = read_metrics(info.path, name).get("model", {}).get("bleu1", {})
                bleu, ci = as_float(metric.get("value")), ci_text(metric.get("ci95"))
            except ValueError as exc:
                problem = str(exc)
        if info.state == "unknown":
            problem = str(status.get("problem", "")) or problem
        elif not info.config:
            problem = problem or f"{RunDir.CONFIG} missing or unreadable"
        epoch, epochs = status.get("epoch"), status.get("epochs")
        rows.append(
            {
                "run": info.run_id,
                "source": "example (read-only)" if info.example else "yours",
                "state": info.state,
                "preset": info.preset,
                "dataset": info.dataset,
                "epoch": f"{epoch}/{epochs}" if epoch is not None and epochs else "",
                "progress": min(max(as_float(status.get("progress")), 0.0), 1.0)
                if status.get("progress") is not None
                else math.nan,
                "BLEU-1": bleu,
                "BLEU-1 95% CI": ci,
                "evaluation": name or "",
                "message": str(status.get("error") or status.get("message") or problem or ""),
                "updated": str(status.get("updated", "")),
            }
        )
    columns = ["run", "source", "state", "preset", "dataset", "epoch", "progress", "BLEU-1", "BLEU-1 95% CI"]
    columns.append("evaluation")
    return pd.DataFrame(rows, columns=[*columns, "message", "updated"])


def default_compare(infos: Sequence[RunInfo]) -> list[str]:
    """Default comparison: the newest evaluated Model-80 and Model-70 runs (else the two newest evaluated)."""
    evaluated = [i for i in infos if i.evals]
    chosen = []
    for preset in ("model-80", "model-70"):
        hit = next((i for i in evaluated if i.preset == preset), None)
        if hit:
            chosen.append(hit.run_id)
    if len(chosen) < 2:
        chosen += [i.run_id for i in evaluated if i.run_id not in chosen][: 2 - len(chosen)]
    return chosen


# ----------------------------------------------------------------------------------------------
# evaluation tables


def filter_predictions(
    df: pd.DataFrame,
    modality: Sequence[str] | None = None,
    length: tuple[int, int] | None = None,
    sort_by: str = "bleu1",
    ascending: bool = True,
) -> pd.DataFrame:
    """Filter by modality and reference length (words), then sort (worst first by default)."""
    out = df
    if modality and "modality" in out.columns:
        out = out[out["modality"].astype(str).isin(list(modality))]
    if length is not None and "ref_len" in out.columns:
        out = out[out["ref_len"].between(length[0], length[1])]
    if sort_by in out.columns:
        out = out.sort_values(sort_by, ascending=ascending, kind="stable")
    return out


def paired_difference_table(result: dict[str, Any]) -> pd.DataFrame:
    """The paired comparison of `python -m medcap compare --json` as rows: metric, A, B, B - A, CI, share.

    Reads `result["metrics"]` ({metric: {a, b, diff, ci95, share_b_gt_a}}); empty when absent.
    """
    rows = []
    for key, item in (result.get("metrics") or {}).items():
        if not isinstance(item, dict):
            continue
        rows.append(
            {
                "metric": METRIC_NAMES.get(key, key),
                "A": as_float(item.get("a")),
                "B": as_float(item.get("b")),
                "B − A": as_float(item.get("diff")),
                "95% CI of B − A": ci_text(item.get("ci95")),
                "share of resamples B > A": as_float(item.get("share_b_gt_a")),
            }
        )
    return pd.DataFrame(rows)
