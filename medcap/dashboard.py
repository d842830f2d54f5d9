"""Data access for the dashboard pages: run tables, evaluation tables, background processes.

No Streamlit and no TensorFlow here (both stay out of page-load imports). Every reader turns a
broken or half-written file into a clear `ValueError` naming the file, or into an empty result, so
that one bad run folder never breaks a page. Run folders are only ever resolved from `list_runs`;
user text never becomes a path.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import medcap
from medcap import paths
from medcap.io import read_json, safe_name
from medcap.runs import RunInfo, effective_state, list_runs, pid_alive, read_status

log = logging.getLogger(__name__)

# Metrics shown in tables, in order, with display names.
METRIC_NAMES = {
    "bleu1": "BLEU-1",
    "bleu2": "BLEU-2",
    "bleu3": "BLEU-3",
    "bleu4": "BLEU-4",
    "rouge_l": "ROUGE-L",
    "cider": "CIDEr",
    "meteor": "METEOR",
}
NEXT_WORD_NAMES = {
    "accuracy": "Accuracy",
    "precision_macro": "Precision (macro)",
    "recall_macro": "Recall (macro)",
    "f1_macro": "F1 (macro)",
    "precision_weighted": "Precision (weighted)",
    "recall_weighted": "Recall (weighted)",
    "f1_weighted": "F1 (weighted)",
}
PREDICTION_COLUMNS = ("image_id", "image_path", "references", "prediction", "bleu1")
ACTIVE_STATES = ("running", "queued")


def project_root() -> Path:
    """The folder holding the `medcap` package (the working directory of launched processes)."""
    return Path(medcap.__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------------
# cache keys


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def file_signature(path: str | os.PathLike[str]) -> float:
    """Modification time of a file (0 when absent): the cache key of anything read from it."""
    return _mtime(Path(path))


def runs_signature(root: Path | None = None) -> tuple[tuple[str, float, float, float, float], ...]:
    """A cheap fingerprint of every run folder (names and mtimes): changes when any run changes."""
    root = root or paths.runs_dir()
    sig = []
    try:
        entries = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return ()
    for run in entries:
        eval_root = run / "eval"
        evals = 0.0
        if eval_root.is_dir():
            evals = max((_mtime(p / "metrics.json") for p in eval_root.iterdir()), default=0.0)
        sig.append(
            (run.name, _mtime(run / "status.json"), _mtime(run / "config.json"), _mtime(run / "history.csv"), evals)
        )
    return tuple(sig)


# ----------------------------------------------------------------------------------------------
# runs


def find_run(run_id: str, root: Path | None = None) -> RunInfo | None:
    """The listed run with exactly this id (None otherwise): ids never become paths directly."""
    return next((info for info in list_runs(root) if info.run_id == run_id), None)


def run_label(info: RunInfo) -> str:
    """Short human label: `<preset> [<last 6 characters of the run id>]` (the id's random suffix)."""
    return f"{info.preset} [{info.run_id[-6:]}]"


def latest_eval(info: RunInfo) -> str | None:
    """The evaluation of a run whose metrics.json is newest (None when it has none)."""
    if not info.evals:
        return None
    return max(info.evals, key=lambda name: _mtime(info.path / "eval" / name / "metrics.json"))


def _ci_text(ci: Any) -> str:
    try:
        lo, hi = (float(v) for v in ci)
    except (TypeError, ValueError):
        return ""
    return f"[{lo:.3f}, {hi:.3f}]"


def _number(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


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
                bleu, ci = _number(metric.get("value")), _ci_text(metric.get("ci95"))
            except ValueError as exc:
                problem = str(exc)
        if info.state == "unknown":
            problem = str(status.get("problem", "")) or problem
        elif not info.config:
            problem = problem or "config.json missing or unreadable"
        epoch, epochs = status.get("epoch"), status.get("epochs")
        rows.append(
            {
                "run": info.run_id,
                "state": info.state,
                "preset": info.preset,
                "dataset": info.dataset,
                "epoch": f"{epoch}/{epochs}" if epoch is not None and epochs else "",
                "progress": min(max(_number(status.get("progress")), 0.0), 1.0)
                if status.get("progress") is not None
                else math.nan,
                "BLEU-1": bleu,
                "BLEU-1 95% CI": ci,
                "evaluation": name or "",
                "message": str(status.get("error") or status.get("message") or problem or ""),
                "updated": str(status.get("updated", "")),
            }
        )
    columns = ["run", "state", "preset", "dataset", "epoch", "progress", "BLEU-1", "BLEU-1 95% CI", "evaluation"]
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
# evaluation outputs


def read_metrics(run_dir: Path, eval_name: str) -> dict[str, Any]:
    """eval/<name>/metrics.json as a dict; ValueError naming the file when missing or malformed."""
    path = Path(run_dir) / "eval" / safe_name(eval_name, max_len=200) / "metrics.json"
    try:
        data = read_json(path)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("model", {}), dict):
        raise ValueError(f"{path}: not a metrics object (older medcap version?)")
    return data


def metrics_table(metrics_by_label: dict[str, dict[str, Any]], include_baselines: bool = True) -> pd.DataFrame:
    """Long table (series, metric, value, lo, hi) of caption metrics for several evaluations.

    Series are the runs' labels, plus `<label> · <baseline>` for the baselines when asked.
    """
    rows = []
    for label, metrics in metrics_by_label.items():
        blocks = [(label, metrics.get("model", {}))]
        if include_baselines:
            for base, values in (metrics.get("baselines") or {}).items():
                short = {"most_frequent": "most-frequent", "nearest_neighbour": "1-NN"}.get(base, base)
                blocks.append((f"{label} · {short} baseline", values))
        for series, values in blocks:
            if not isinstance(values, dict):
                continue
            for key, display in METRIC_NAMES.items():
                item = values.get(key)
                if isinstance(item, dict):
                    value = _number(item.get("value"))
                    ci = item.get("ci95") or [math.nan, math.nan]
                elif item is not None:
                    value, ci = _number(item), [math.nan, math.nan]
                else:
                    continue
                lo, hi = (_number(v) for v in [*list(ci), math.nan, math.nan][:2])
                rows.append({"series": series, "metric": display, "value": value, "lo": lo, "hi": hi})
    return pd.DataFrame(rows, columns=["series", "metric", "value", "lo", "hi"])


def side_by_side(long: pd.DataFrame) -> pd.DataFrame:
    """Pivot a metrics_table into metric rows x series columns of "value [lo, hi]" text."""
    if long.empty:
        return pd.DataFrame()

    def cell(row: pd.Series) -> str:
        if math.isnan(row["value"]):
            return "n/a"
        ci = "" if math.isnan(row["lo"]) else f" [{row['lo']:.3f}, {row['hi']:.3f}]"
        return f"{row['value']:.3f}{ci}"

    text = long.assign(text=long.apply(cell, axis=1))
    order = [m for m in METRIC_NAMES.values() if m in set(text["metric"])]
    table = text.pivot(index="metric", columns="series", values="text").reindex(order)
    return table[list(dict.fromkeys(long["series"]))].fillna("—")


def next_word_table(metrics_by_label: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Next-word classification metrics (paper Table 2 style): rows metrics, columns runs."""
    data = {}
    for label, metrics in metrics_by_label.items():
        nw = metrics.get("next_word") or {}
        data[label] = {display: _number(nw.get(key)) for key, display in NEXT_WORD_NAMES.items() if key in nw}
    return pd.DataFrame(data)


def read_predictions(run_dir: Path, eval_name: str) -> pd.DataFrame:
    """predictions.csv with `references` parsed into a readable `reference` column.

    ValueError naming the file when it is missing, unreadable or lacks the documented columns.
    """
    path = Path(run_dir) / "eval" / safe_name(eval_name, max_len=200) / "predictions.csv"
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"image_id": str})
    except FileNotFoundError as exc:
        raise ValueError(f"{path}: missing") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: unreadable ({exc.__class__.__name__})") from exc
    missing = [c for c in PREDICTION_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: lacks columns {missing} (older medcap version?)")

    def refs(text: Any) -> str:
        try:
            items = json.loads(text)
        except (TypeError, ValueError):
            return str(text)
        if isinstance(items, list):
            return " | ".join(" ".join(r) if isinstance(r, list) else str(r) for r in items)
        return str(items)

    df["reference"] = df["references"].map(refs)
    df["prediction"] = df["prediction"].fillna("").astype(str)
    for col in df.columns:
        if col.startswith(("bleu", "nn_bleu")) or col in ("rouge_l", "ref_len", "pred_len"):
            df[col] = pd.to_numeric(df[col], errors="coerce")
    if "ref_len" not in df.columns:
        df["ref_len"] = df["reference"].str.split("|").str[0].str.split().str.len()
    return df


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


def read_attention(run_dir: Path, eval_name: str, image_id: str) -> np.ndarray | None:
    """The (n_words, 7, 7) attention of one test image from attention.npz (None when absent)."""
    path = Path(run_dir) / "eval" / safe_name(eval_name, max_len=200) / "attention.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if image_id not in npz.files:
                return None
            att = np.asarray(npz[image_id], dtype=np.float32)  # (n_words, 7, 7)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from exc
    if att.ndim != 3:
        raise ValueError(f"{path}: attention of {image_id} has shape {att.shape}, expected (n_words, h, w)")
    return att


def attention_ids(run_dir: Path, eval_name: str) -> list[str]:
    """Image ids that have an attention map in an evaluation."""
    path = Path(run_dir) / "eval" / safe_name(eval_name, max_len=200) / "attention.npz"
    if not path.is_file():
        return []
    try:
        with np.load(path, allow_pickle=False) as npz:
            return list(npz.files)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from exc


def true_boxes(row: pd.Series | dict[str, Any]) -> list[dict[str, Any]]:
    """Finding boxes of a synthetic image (from a `boxes` JSON column), [] otherwise."""
    text = row.get("boxes") if hasattr(row, "get") else None
    if not isinstance(text, str) or not text:
        return []
    try:
        boxes = json.loads(text)
    except ValueError:
        return []
    return [b for b in boxes if isinstance(b, dict) and "box" in b] if isinstance(boxes, list) else []


# ----------------------------------------------------------------------------------------------
# the paper's figures


def paper_tables() -> dict[str, pd.DataFrame]:
    """The paper's Tables 2-4 (medcap.eval.paper) as DataFrames keyed 'table2', 'table3', 'table4'."""
    from medcap.eval import paper

    return {name: pd.DataFrame(rows) for name, rows in paper.tables().items()}


def paper_notes() -> dict[str, str]:
    """The notes that go with the paper's tables."""
    from medcap.eval import paper

    return dict(paper.NOTES)


def paper_comparison(metrics_by_label: dict[str, dict[str, Any]], presets: dict[str, str]) -> pd.DataFrame:
    """Our figure beside the paper's for every paper column (rows: run label x column).

    `presets` maps each label to its run's preset; presets the paper does not report get no rows.
    """
    from medcap.eval import paper

    rows = []
    for label, metrics in metrics_by_label.items():
        reported = paper.paper_figures(presets.get(label, ""))
        for column, (section, key) in paper.METRIC_KEYS.items():
            if column not in reported:
                continue
            item = (metrics.get(section) or {}).get(key)
            ours = _number(item.get("value") if isinstance(item, dict) else item)
            rows.append(
                {
                    "run": label,
                    "figure": column,
                    "medcap": ours,
                    "paper": float(reported[column]),
                    "difference": ours - float(reported[column]),
                }
            )
    return pd.DataFrame(rows, columns=["run", "figure", "medcap", "paper", "difference"])


# ----------------------------------------------------------------------------------------------
# background processes


@dataclass
class Launch:
    """A process started in the background."""

    pid: int
    log_path: Path
    command: list[str]


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")


def spawn(args: Sequence[str], log_path: Path) -> Launch:
    """Start `python -m medcap <args>` detached (own session), stdout+stderr appended to `log_path`.

    The child keeps running when the page reloads or the browser closes. A daemon thread reaps it
    when it ends, so a finished child never lingers as a zombie that looks alive.
    """
    root = project_root()
    env = dict(os.environ)
    env["MEDCAP_ARTIFACTS"] = str(paths.artifacts_dir().resolve())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", "medcap", *args]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:  # a growing log cannot be written atomically
        proc = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
    log.info("started pid %d: %s (log %s)", proc.pid, " ".join(args), log_path)
    return Launch(pid=proc.pid, log_path=log_path, command=command)


def launches_dir() -> Path:
    """Where the logs of runs launched from the dashboard go until the run folder exists."""
    path = paths.artifacts_dir() / "launches"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cli_options(command: str) -> set[str]:
    """The option strings (`--epochs`, ...) that `python -m medcap <command>` accepts ({} if absent)."""
    import argparse

    from medcap.cli import build_parser

    parser = build_parser()
    for action in parser._actions:  # argparse has no public accessor for sub-parsers
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return {opt for a in action.choices[command]._actions for opt in a.option_strings}
    return set()


def train_args(
    preset: str, dataset: str, epochs: int, seed: int, name: str = "", options: dict[str, Any] | None = None
) -> list[str]:
    """CLI arguments of `python -m medcap train` for a form's values; `options` maps flags to values."""
    args = ["train", "--preset", preset, "--dataset", dataset, "--epochs", str(int(epochs)), "--seed", str(int(seed))]
    if name:
        args += ["--name", safe_name(name, max_len=40)]
    for flag, value in (options or {}).items():
        if value is None or value is False:
            continue
        if not flag.startswith("--"):
            raise ValueError(f"not a flag: {flag!r}")
        args += [flag] if value is True else [flag, str(value)]
    return args


def launch_train(
    preset: str, dataset: str, epochs: int, seed: int, name: str = "", options: dict[str, Any] | None = None
) -> Launch:
    """Start a training run in the background; its log goes to artifacts/launches/<stamp>-<name>.log."""
    args = train_args(preset, dataset, epochs, seed, name, options)
    label = safe_name(name or preset, max_len=40)
    return spawn(args, launches_dir() / f"{_stamp()}-{label}.log")


def launch_resume(info: RunInfo) -> Launch:
    """Resume an interrupted/cancelled/failed run in the background (log appended to its train.log)."""
    if info.state in ACTIVE_STATES:
        raise ValueError(f"run {info.run_id} is still {info.state}")
    return spawn(["train", "--resume", str(info.path.resolve())], info.path / "train.log")


def launch_evaluate(info: RunInfo) -> Launch:
    """Evaluate a finished run in the background (log in the run folder)."""
    return spawn(["evaluate", str(info.path.resolve())], info.path / "evaluate.log")


def _is_medcap_process(pid: int) -> bool:
    cmdline = Path(f"/proc/{int(pid)}/cmdline")
    if not cmdline.parent.parent.is_dir() or not cmdline.exists():
        return pid_alive(pid)
    try:
        return b"medcap" in cmdline.read_bytes()
    except OSError:
        return False


def terminate(status: dict[str, Any], what: str) -> int:
    """SIGTERM the process recorded in a status dict; ValueError when it is not running."""
    state = effective_state(status)
    pid = status.get("pid")
    if state not in ACTIVE_STATES or not pid:
        raise ValueError(f"{what} is not running (state {state})")
    if not _is_medcap_process(int(pid)):
        raise ValueError(f"{what}: process {pid} is not a medcap process; not signalled")
    os.kill(int(pid), signal.SIGTERM)
    log.info("sent SIGTERM to %s (pid %s)", what, pid)
    return int(pid)


def cancel_run(info: RunInfo) -> int:
    """Ask a running run to stop (SIGTERM to its pid; the trainer marks it cancelled)."""
    return terminate(read_status(info.path), f"run {info.run_id}")


def tail(path: Path, max_bytes: int = 4000) -> str:
    """The last bytes of a log file as text ('' when absent)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


# ----------------------------------------------------------------------------------------------
# the demo


def demo_dir() -> Path:
    """artifacts/demo: the demo's status.json and log."""
    return paths.artifacts_dir() / "demo"


def demo_status() -> dict[str, Any]:
    """The demo's status (state 'none' before any demo); a dead 'running' demo shows 'interrupted'."""
    path = demo_dir() / "status.json"
    if not path.exists():
        return {"state": "none"}
    status = read_status(demo_dir())
    status["state"] = effective_state(status)
    return status


def start_demo(extra_args: Iterable[str] = ()) -> Launch:
    """Start `python -m medcap demo` in the background unless one is already running.

    status.json says 'queued' (with the child's pid) before the child writes its own status, so a
    second click during start-up is refused.
    """
    from medcap.runs import write_status

    status = demo_status()
    if status["state"] in ACTIVE_STATES:
        raise ValueError("the demo is already running")
    folder = demo_dir()
    write_status(folder, "queued", stage="starting", progress=0.0, message="starting", error=None, pid=None, runs={})
    try:
        launch = spawn(["demo", *extra_args], folder / "demo.log")
    except OSError as exc:
        write_status(folder, "failed", error=f"could not start the demo: {exc}")
        raise
    if read_status(folder).get("state") == "queued":
        write_status(folder, "queued", pid=launch.pid)
    return launch


def cancel_demo() -> int:
    """Stop a running demo (SIGTERM; it stops its current step and marks itself cancelled)."""
    return terminate(demo_status(), "demo")


# ----------------------------------------------------------------------------------------------
# datasets


def dataset_specs(infos: Sequence[RunInfo] = ()) -> list[str]:
    """Dataset specs worth offering: those used by runs, generated synthetic sets, the MedPix sample."""
    specs: list[str] = []
    for info in infos:
        if info.dataset and info.dataset != "?":
            specs.append(info.dataset)
    ds = paths.artifacts_dir() / "datasets"
    if ds.is_dir():
        for p in sorted(ds.iterdir()):
            parts = p.name.split("-")
            if p.name.startswith("synthetic-") and len(parts) >= 2 and parts[1].isdigit():
                specs.append(f"synthetic:{parts[1]}")
    medpix = project_root().parent / "shared" / "data" / "medpix-dev"
    if (medpix / "Descriptions.json").is_file():
        specs.append("medpix:../shared/data/medpix-dev")
    specs.append("synthetic:2000")
    return list(dict.fromkeys(specs))


def caption_lengths(table: pd.DataFrame) -> list[int]:
    """Caption length in words (medcap tokenizer) of every row of a dataset table."""
    from medcap.data.text import tokenize

    return [len(tokenize(str(c))) for c in table["caption"].tolist()]


def frequent_words(table: pd.DataFrame, n: int = 25) -> list[tuple[str, int]]:
    """The `n` most frequent caption words (medcap tokenizer) with their counts."""
    from collections import Counter

    from medcap.data.text import tokenize

    counts: Counter[str] = Counter()
    for caption in table["caption"].tolist():
        counts.update(tokenize(str(caption)))
    return counts.most_common(n)


def open_upload(data: bytes, name: str, max_bytes: int = 10 * 1024 * 1024) -> Any:
    """Decode an uploaded PNG/JPEG in memory (never written to disk); ValueError with a clear message."""
    from PIL import Image, UnidentifiedImageError

    label = safe_name(name or "upload", max_len=80)
    if len(data) > max_bytes:
        raise ValueError(f"{label}: file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    if not data:
        raise ValueError(f"{label}: the file is empty")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            if fmt not in ("PNG", "JPEG"):
                raise ValueError(f"{label}: is {fmt or 'not an image'}; only PNG and JPEG are accepted")
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{label}: not a readable PNG or JPEG image ({exc.__class__.__name__})") from exc


def compare_cli(a: RunInfo, b: RunInfo, timeout: float = 600.0) -> dict[str, Any]:
    """`python -m medcap compare A B --json` (paired bootstrap over shared test images) as a dict.

    Runs in a child process so the dashboard never imports TensorFlow; ValueError with the
    command's last error line when it fails.
    """
    root = project_root()
    env = dict(os.environ)
    env["MEDCAP_ARTIFACTS"] = str(paths.artifacts_dir().resolve())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", "medcap", "compare", str(a.path.resolve()), str(b.path.resolve()), "--json"]
    try:
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ValueError(f"compare {a.run_id} {b.run_id}: no answer within {timeout:.0f} s") from exc
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        raise ValueError(f"compare {a.run_id} {b.run_id} failed: {lines[-1] if lines else done.returncode}")
    try:
        out = json.loads(done.stdout)
    except ValueError as exc:
        raise ValueError(f"compare {a.run_id} {b.run_id}: output is not JSON") from exc
    return out if isinstance(out, dict) else {"result": out}


def paired_table(result: dict[str, Any]) -> pd.DataFrame:
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
                "A": _number(item.get("a")),
                "B": _number(item.get("b")),
                "B − A": _number(item.get("diff")),
                "95% CI of B − A": _ci_text(item.get("ci95")),
                "share of resamples B > A": _number(item.get("share_b_gt_a")),
            }
        )
    return pd.DataFrame(rows)


def synthetic_boxes(spec: str, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """image id -> true finding boxes of an already generated synthetic set (never generates one).

    `spec` is `synthetic:N`; {} for other datasets or when the set is not on disk.
    """
    kind, _, arg = spec.partition(":")
    if kind.strip() != "synthetic" or not arg.strip().isdigit():
        return {}
    folder = paths.datasets_dir() / f"synthetic-{int(arg)}-seed{seed}"
    if not (folder / "records.jsonl").is_file():
        return {}
    from medcap.data import load_synthetic_folder

    table = load_synthetic_folder(folder, spec=spec).table
    if "boxes" not in table.columns:
        return {}
    return {str(r["image_id"]): true_boxes(r) for r in table[["image_id", "boxes"]].to_dict("records")}
