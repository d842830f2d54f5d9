"""Table shaping for the dashboard's run pages: the runs overview, run labels, cache keys.

No Streamlit and no TensorFlow here (both stay out of page-load imports). A broken or half-written
run folder becomes a row with a message, never an exception. Run folders are only ever resolved
from `list_runs`; user text never becomes a path. Evaluation outputs are read by
`medcap.eval.artifacts`, background processes live in `medcap.app.jobs`.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medcap.base import paths
from medcap.data import leakage_report, make_split, prepare_captions, tokenize
from medcap.eval.artifacts import as_float, ci_text, num_text, read_metrics, read_predictions
from medcap.eval.metrics import METRIC_NAMES, PER_IMAGE_METRICS
from medcap.runs.folder import EvalDir, RunDir
from medcap.runs.index import RunInfo, list_runs

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
    """A run's name (config.json `run.name`; its preset when it has none); `<name> (example)` for the bundle's."""
    name = str((info.config.get("run") or {}).get("name") or "").strip() or info.preset
    return f"{name} (example)" if info.example else name


def run_labels(infos: Sequence[RunInfo]) -> dict[str, str]:
    """run id -> `run_label`, unique: a name several listed runs share gets the run id in brackets."""
    labels = {i.run_id: run_label(i) for i in infos}
    counts = Counter(labels.values())
    return {rid: f"{label} [{rid}]" if counts[label] > 1 else label for rid, label in labels.items()}


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
                "name": run_label(info),
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
                "message": "; ".join(dict.fromkeys(n for n in (*info.problems, problem, str(
                    status.get("error") or status.get("message") or "")) if n)),  # unreadable files first
                "updated": str(status.get("updated", "")),
            }
        )
    columns = ["name", "run", "source", "state", "preset", "dataset", "epoch", "progress", "BLEU-1", "BLEU-1 95% CI"]
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


def paired_runs(a: RunInfo, b: RunInfo) -> dict[str, Any]:
    """The paired difference B - A of two runs' latest evaluations, on the images both scored (in-process, from
    their predictions.csv: `medcap.eval.paired`, the function `python -m medcap compare` also calls)."""
    from medcap.eval.paired import paired_from_predictions

    names = latest_eval(a), latest_eval(b)
    if not names[0] or not names[1]:
        raise ValueError("both runs need an evaluation")
    result = paired_from_predictions(read_predictions(a.path, names[0]), read_predictions(b.path, names[1]))
    return {**result, "run_a": a.run_id, "run_b": b.run_id, "eval_a": names[0], "eval_b": names[1]}


def paired_difference_table(result: dict[str, Any]) -> pd.DataFrame:
    """The paired comparison of `python -m medcap compare --json` as rows: metric, A, B, B - A, CI, share.

    Reads `result["metrics"]` ({metric: {a, b, diff, ci95, share_b_gt_a}}); empty when absent. The difference
    and its CI are signed text with 4 decimals, in scientific notation when those would print 0.
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
                "B − A": num_text(item.get("diff"), 4, signed=True),
                "95% CI of B − A": ci_text(item.get("ci95"), 4, signed=True),
                "share of resamples B > A": as_float(item.get("share_b_gt_a")),
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# run vs run, per image

# Columns that are text or numbers of one system, never a metadata column to filter on.
_NOT_METADATA = {"image_id", "image_path", "references", "reference", "prediction", "caption", "tokens",
                 "nn_caption", "boxes", "ref_len", "pred_len", "caption_words"}


def missing_notes(df: pd.DataFrame, label: str, wanted: Sequence[str] = ("cider", "group")) -> list[str]:
    """One note per wanted column the predictions lack (an older evaluation), naming the run."""
    what = {"cider": "per-image CIDEr", "group": "the case group", "modality": "the modality"}
    return [f"`{label}`: its predictions.csv has no `{c}` column ({what.get(c, c)}; evaluated by an older "
            f"medcap?), so it is not shown." for c in wanted if c not in df.columns]


def pair_predictions(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Two evaluations' predictions on the images both have, one row per image.

    Columns: image_id, image_path, reference, prediction_a, prediction_b; for every score in
    `PER_IMAGE_METRICS` that both have: `<score>_a`, `<score>_b` and `<score>_diff` (A − B, > 0 where A is
    better); then the metadata of A (group, modality, ref_len, ...). ValueError when no image is shared.
    """
    shared = [s for s in PER_IMAGE_METRICS if s in a.columns and s in b.columns]
    meta = [c for c in a.columns if c not in _NOT_METADATA and c not in PER_IMAGE_METRICS
            and not c.startswith(("bleu", "nn_", "rouge"))]
    left = a[["image_id", "image_path", "reference", "prediction", *shared,
              *[c for c in ("ref_len",) if c in a.columns], *meta]].copy()
    right = b[["image_id", "prediction", *shared]].copy()
    left["image_id"] = left["image_id"].astype(str)
    right["image_id"] = right["image_id"].astype(str)
    right = right.drop_duplicates("image_id")
    merged = left.drop_duplicates("image_id").merge(right, on="image_id", suffixes=("_a", "_b"), how="inner")
    if merged.empty:
        raise ValueError("the two evaluations share no image id: evaluate both runs on the same images")
    out = merged[["image_id", "image_path", "reference", "prediction_a", "prediction_b"]].copy()
    for score in shared:
        out[f"{score}_a"] = merged[f"{score}_a"].astype(float)
        out[f"{score}_b"] = merged[f"{score}_b"].astype(float)
        out[f"{score}_diff"] = out[f"{score}_a"] - out[f"{score}_b"]
    for col in [*[c for c in ("ref_len",) if c in merged.columns], *meta]:
        out[col] = merged[col]
    return out


def metadata_columns(df: pd.DataFrame, max_values: int = 100) -> list[str]:
    """Columns worth a multiselect filter: `group` always (when present), others with 2..max_values values."""
    out = []
    for col in df.columns:
        if col in _NOT_METADATA or col.startswith(("prediction", "bleu", "nn_", "rouge", "cider")):
            continue
        if pd.api.types.is_float_dtype(df[col]):
            continue
        n = df[col].astype(str).nunique()
        if col == "group" or 2 <= n <= max_values:
            out.append(col)
    return out


def filter_rows(
    df: pd.DataFrame,
    values: dict[str, Sequence[str]] | None = None,
    length: tuple[int, int] | None = None,
    length_column: str = "ref_len",
    words: str = "",
    text_columns: Sequence[str] = ("reference",),
) -> pd.DataFrame:
    """Rows whose metadata is among the chosen `values` (empty choice: any), whose `length_column` lies in
    `length` (inclusive), and whose text in any of `text_columns` contains every word of `words`
    (medcap's tokenizer, so case and punctuation do not matter)."""
    out = df
    for col, chosen in (values or {}).items():
        if chosen and col in out.columns:
            out = out[out[col].astype(str).isin([str(v) for v in chosen])]
    if length is not None and length_column in out.columns:
        out = out[out[length_column].between(length[0], length[1])]
    wanted = set(tokenize(words or ""))
    cols = [c for c in text_columns if c in out.columns]
    if wanted and cols:
        def has_all(row: pd.Series) -> bool:
            return any(wanted <= set(tokenize(str(row[c]))) for c in cols)

        out = out[out.apply(has_all, axis=1)] if len(out) else out
    return out


# ----------------------------------------------------------------------------------------------
# datasets: gallery and leakage


def gallery_table(table: pd.DataFrame, max_words: int = 20, protocol: str = "model-80", split_by: str = "group",
                  seed: int = 42) -> pd.DataFrame:
    """One row per image of a loaded dataset: image_id, image_path, caption, group, split, caption_words and
    its metadata columns. `split` is the split these settings make ('not kept' when the caption is
    dropped by the caption rules); the loader's own split column is kept as `official_split`."""
    out = table.copy()
    out["image_id"] = out["image_id"].astype(str)
    if "split" in out.columns:
        out = out.rename(columns={"split": "official_split"})
    out["caption_words"] = [len(tokenize(str(c))) for c in out["caption"].tolist()]
    kept, _ = prepare_captions(table, max_words=max_words)
    where: dict[str, str] = {}
    if not kept.empty:
        split = make_split(kept, protocol=protocol, split_by=split_by, seed=seed)
        where = {str(i): name for name, ids in split.items() for i in ids}
    out["split"] = out["image_id"].map(where).fillna("not kept")
    first = ["image_id", "image_path", "caption", "group", "split", "caption_words"]
    return out[[*first, *[c for c in out.columns if c not in first]]]


LEAKAGE_CHECKS = {
    "groups_shared_train_test": "groups in train and test",
    "groups_shared_train_val": "groups in train and val",
    "groups_shared_val_test": "groups in val and test",
    "test_captions_in_train_fraction": "test captions also in train (fraction)",
    "val_captions_in_train_fraction": "val captions also in train (fraction)",
}


def leakage_by_split_mode(table: pd.DataFrame, max_words: int = 20, protocol: str = "model-80",
                          seed: int = 42) -> pd.DataFrame:
    """The leakage report for an image-level and a group-level split of the same dataset.

    Long table: split_by ('image' / 'group'), check (key), label, value. The `official` protocol has one
    split whatever `split_by` says, so model-80 is used for this comparison then.
    """
    kept, _ = prepare_captions(table, max_words=max_words)
    if kept.empty:
        raise ValueError("no caption is left after the caption rules: nothing to split")
    proto = "model-80" if protocol == "official" else protocol
    rows = []
    for mode in ("image", "group"):
        report = leakage_report(kept, make_split(kept, protocol=proto, split_by=mode, seed=seed))
        for key, label in LEAKAGE_CHECKS.items():
            rows.append({"split_by": mode, "check": key, "label": label, "value": float(report.get(key, 0))})
    return pd.DataFrame(rows, columns=["split_by", "check", "label", "value"])
