"""Case-disjoint k-fold study: does a captioner beat copying the nearest training caption?

`run_study` trains every system (a preset plus overrides) on each of k case-disjoint folds of a dataset
(protocol "kfold": `medcap.data.splits.kfold_splits`, stratified by caption length, validation carved
from each fold's training cases), evaluates each on its fold's test cases (references: the paper's
<= max_words rule, full captions) with the 1-NN and most-frequent baselines, and pools the folds:
every test image is scored exactly once, and the paired difference "system minus 1-NN" gets a
case-level bootstrap CI over all folds' cases. Decoding ablations (`ABLATIONS`) re-decode a trained
system with one lever switched off, so each decoding lever's effect is measured without retraining.

One folder per study under `artifacts/studies/`: `study.json` (settings), `status.json` (progress, a
run's status format), `runs/fold<i>-<system>/` (ordinary run folders, each with its evaluations),
`results.json` and `results.csv`. A killed study resumes where it stopped: finished runs and complete
evaluations are kept, an interrupted run resumes from its last epoch. TensorFlow is imported only
inside the functions that train or evaluate.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medcap.base import paths
from medcap.base.io import read_json, safe_name, write_json, write_text
from medcap.config import RunConfig
from medcap.runs.folder import RunDir, read_status_file, write_status_file
from medcap.runs.index import new_unique_dir

log = logging.getLogger(__name__)

STUDY_FILE = "study.json"
STATUS_FILE = RunDir.STATUS  # a run's status format
RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
RUNS = "runs"
EVAL_NAME = "study-test"
METRICS = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "cider", "meteor")
# Decoding levers switched off one at a time on a system that uses them (decode-only: no retraining).
ABLATIONS: dict[str, dict[str, Any]] = {
    "no_memory": {"memory_k": 0},
    "no_min_length": {"min_words": 0},
    "no_repeat_block": {"block_repeats": False},
    "plain_greedy": {"memory_k": 0, "min_words": 0, "block_repeats": False, "no_repeat_ngram": 0, "beam_size": 1},
}


def studies_dir() -> Path:
    """Folder holding one sub-folder per study."""
    path = paths.artifacts_dir() / "studies"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclasses.dataclass
class StudySettings:
    """What a study runs; saved as study.json (a resumed study reads it back)."""

    dataset: str
    folds: int = 5
    seed: int = 0  # split seed of the folds; each system keeps its own init seed
    systems: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # name -> RunConfig fields
    with_meteor: bool = True
    n_boot: int = 1000
    ablations: bool = True

    def validate(self) -> None:
        """ValueError naming the problem: fewer than 2 folds, no system, or a system's invalid settings."""
        if self.folds < 2:
            raise ValueError(f"a study needs at least 2 case-disjoint folds, got {self.folds}")
        if not self.systems:
            raise ValueError("a study needs at least one system")
        for fold in range(self.folds):
            self.configs(fold)

    def configs(self, fold: int) -> dict[str, RunConfig]:
        """The RunConfig of every system on one fold."""
        out = {}
        for name, fields in self.systems.items():
            values = {k: v for k, v in fields.items() if k != "preset"}
            values.update(dataset=self.dataset, protocol="kfold", fold=fold, n_folds=self.folds,
                          split_seed=self.seed, name=safe_name(f"fold{fold}-{name}", max_len=40))
            out[name] = RunConfig.from_preset(fields.get("preset", name), **values)
        return out


def _status(folder: Path, state: str, **fields: Any) -> None:
    write_status_file(folder / STATUS_FILE, state, **fields)


def run_study(settings: StudySettings | None = None, folder: Path | None = None, name: str = "") -> Path:
    """Run (or resume, given `folder`) a study; returns its folder with results.json / results.csv.

    Settings are checked before a new study's folder is made (`StudySettings.validate`); a study that fails
    or is cancelled says so in its status.json (state, error), never "running" forever.
    """
    if folder is not None and (Path(folder) / STUDY_FILE).is_file():
        folder = Path(folder)
        settings = StudySettings(**read_json(folder / STUDY_FILE))
        settings.validate()  # every config, before the first hour of training
        log.info("resuming study %s", folder)
    else:
        if settings is None:
            where = f"{folder}: holds no study to resume (no {STUDY_FILE}); " if folder is not None else ""
            raise ValueError(f"{where}a new study needs its settings (dataset, folds, systems)")
        settings.validate()  # before any folder exists: no empty study for a typo
        folder = Path(folder) if folder else new_unique_dir(studies_dir(), name or "study")
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / STUDY_FILE, dataclasses.asdict(settings))
    try:
        _run_folds(folder, settings)
    except BaseException as exc:  # a study that stops is never left "running · pooling the folds"
        cancelled = isinstance(exc, KeyboardInterrupt) or type(exc).__name__ == "RunCancelled"  # SIGTERM, no TF
        _status(folder, "cancelled" if cancelled else "failed", message="cancelled" if cancelled else "failed",
                error=f"{type(exc).__name__}: {exc}")
        raise
    _status(folder, "finished", progress=1.0, stage="done", message="finished", error=None)
    return folder


def _run_folds(folder: Path, settings: StudySettings) -> None:
    """Train and evaluate every (fold, system), then pool them into results.json / results.csv."""
    import os

    from medcap.eval.evaluate import evaluate_run
    from medcap.train.runner import resume_run, train_run

    jobs = [(fold, system) for fold in range(settings.folds) for system in settings.systems]
    for done, (fold, system) in enumerate(jobs):
        cfg = settings.configs(fold)[system]
        run = RunDir(folder / RUNS / safe_name(f"fold{fold}-{system}", max_len=60))
        _status(folder, "running", pid=os.getpid(), progress=done / len(jobs), stage=f"fold {fold + 1}: {system}",
                message=f"fold {fold + 1}/{settings.folds}: {system}", error=None)
        state = run.read_status().get("state")
        if state != "finished":
            if run.config.is_file() and state not in (None, "unknown"):
                log.info("study: resuming %s", run.path.name)
                resume_run(run.path)
            else:
                log.info("study: training %s", run.path.name)
                train_run(cfg, run.path)
        variants = {"": {}}
        if settings.ablations:
            used = cfg.decode_settings()
            variants.update({k: v for k, v in ABLATIONS.items() if any(used.get(f) != x for f, x in v.items())})
        for suffix, overrides in variants.items():
            name_ = EVAL_NAME + (f"-{suffix}" if suffix else "")
            if run.eval_dir(name_).is_complete():
                continue
            log.info("study: evaluating %s %s", run.path.name, suffix or "")
            evaluate_run(run.path, split="test", with_meteor=settings.with_meteor and not suffix,
                         n_boot=settings.n_boot, decode_settings=overrides, name=name_,
                         with_reliance=not suffix)
    _status(folder, "running", pid=os.getpid(), progress=0.99, stage="pooling", message="pooling the folds")
    results = pool_results(folder, settings)
    write_json(folder / RESULTS_JSON, results)
    write_text(folder / RESULTS_CSV, results_table(results).to_csv(index=False))


def _fold_predictions(run: RunDir, eval_name: str) -> pd.DataFrame | None:
    ev = run.eval_dir(eval_name)
    if not ev.is_complete():
        return None
    return pd.read_csv(ev.predictions, keep_default_na=False, dtype={"image_id": str, "group": str})


def pool_results(folder: Path, settings: StudySettings) -> dict[str, Any]:
    """Per fold (from each evaluation's metrics.json) and pooled over folds (rescored with case-level CIs)."""
    from medcap.eval import bootstrap as bs
    from medcap.eval.artifacts import read_metrics
    from medcap.eval.health import caption_health
    from medcap.eval.scoring import paired_table, score_systems

    folds: list[dict[str, Any]] = []
    refs: list[list[list[str]]] = []
    groups: list[str] = []
    hyps: dict[str, list[list[str]]] = {}
    first = next(iter(settings.systems))
    for fold in range(settings.folds):
        row: dict[str, Any] = {"fold": fold, "systems": {}}
        base = None
        for system in settings.systems:
            run = RunDir(folder / RUNS / safe_name(f"fold{fold}-{system}", max_len=60))
            names = [p.name for p in run.evals() if p.name.startswith(EVAL_NAME)]
            for name in names:
                label = system + name[len(EVAL_NAME):].replace("-", ":", 1)
                metrics = read_metrics(run.path, name)  # checked against medcap.runs.schema
                row["systems"][label] = {k: metrics["model"][k]["value"] for k in METRICS if k in metrics["model"]}
                pred = _fold_predictions(run, name)
                if pred is None:
                    continue
                if system == first and name == EVAL_NAME:
                    base = pred
                    row["n_images"] = len(pred)
                    row["baselines"] = {b: {k: v["value"] for k, v in s.items()}
                                        for b, s in metrics["baselines"].items()}
                    mf = metrics.get("most_frequent_caption", "").split()
                    hyps.setdefault("nearest_neighbour", []).extend(p.split() for p in pred["nn_caption"])
                    hyps.setdefault("most_frequent", []).extend([list(mf)] * len(pred))
                    refs.extend([[r.split() for r in json.loads(x)] for x in pred["references"]])
                    groups.extend(pred["group"].astype(str) if "group" in pred else pred["image_id"])
                if base is not None and list(pred["image_id"]) != list(base["image_id"]):
                    raise ValueError(f"{run.path}: {name} scored other images than {first} on fold {fold}")
                hyps.setdefault(label, []).extend(p.split() for p in pred["prediction"])
        folds.append(row)
    complete = {k: v for k, v in hyps.items() if len(v) == len(refs)}
    scores, skipped = score_systems(refs, complete, n_boot=settings.n_boot, with_meteor=settings.with_meteor,
                                    groups=groups)
    pooled = {name: sc.summary for name, sc in scores.items()}
    paired = {name: paired_table(scores["nearest_neighbour"], sc, n_boot=settings.n_boot, groups=groups)
              for name, sc in scores.items() if name not in ("nearest_neighbour", "most_frequent")}
    health = {name: caption_health(h, refs) for name, h in complete.items()}
    return {"dataset": settings.dataset, "folds": settings.folds, "seed": settings.seed,
            "systems": settings.systems, "n_images": len(refs), "n_groups": bs.group_codes(len(refs), groups)[1],
            "per_fold": folds, "pooled": pooled, "paired_vs_nearest_neighbour": paired,
            "caption_health": health, "skipped": skipped,
            "definitions": {"paired_vs_nearest_neighbour": "system minus 1-NN retrieval on every test image of "
                            "every fold, 95% CI from a paired bootstrap over cases (groups)",
                            "system:no_memory etc.": "the trained system re-decoded with one decoding lever off"}}


def results_table(results: dict[str, Any]) -> pd.DataFrame:
    """Long table: scope (fold i | pooled), system, metric, value, CI, paired difference vs 1-NN."""
    rows = []
    for fold in results["per_fold"]:
        for system, values in {**fold.get("systems", {}), **fold.get("baselines", {})}.items():
            for metric, value in values.items():
                rows.append({"scope": f"fold {fold['fold']}", "system": system, "metric": metric, "value": value})
    for system, summary in results["pooled"].items():
        for metric, m in summary.items():
            diff = results["paired_vs_nearest_neighbour"].get(system, {}).get(metric, {})
            rows.append({"scope": "pooled", "system": system, "metric": metric, "value": m["value"],
                         "ci_low": m["ci95"][0], "ci_high": m["ci95"][1], "minus_1nn": diff.get("diff"),
                         "minus_1nn_ci_low": (diff.get("ci95") or [None, None])[0],
                         "minus_1nn_ci_high": (diff.get("ci95") or [None, None])[1]})
    return pd.DataFrame(rows)


def list_studies(root: Path | None = None) -> list[Path]:
    """Study folders, newest first."""
    root = root or paths.artifacts_dir() / "studies"
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if (p / STUDY_FILE).is_file()), reverse=True)


def read_study(folder: Path) -> dict[str, Any]:
    """A study's settings, status and results (results None until pooled); never raises on a broken file."""
    out: dict[str, Any] = {"folder": folder, "status": read_status_file(folder / STATUS_FILE)}
    for key, name in (("settings", STUDY_FILE), ("results", RESULTS_JSON)):
        try:
            out[key] = read_json(folder / name)
        except (OSError, ValueError):
            out[key] = None
    return out


def pooled_frame(results: dict[str, Any]) -> pd.DataFrame:
    """Pooled metrics: one row per system, `metric` and `metric CI` columns, plus the paired difference vs 1-NN."""
    rows = []
    for system, summary in results.get("pooled", {}).items():
        row: dict[str, Any] = {"system": system}
        diff = results.get("paired_vs_nearest_neighbour", {}).get(system, {})
        for metric in METRICS:
            m = summary.get(metric)
            if m is None:
                continue
            row[metric] = m["value"]
            row[f"{metric} CI"] = f"[{m['ci95'][0]:.4f}, {m['ci95'][1]:.4f}]"
            if metric in diff:
                lo, hi = diff[metric]["ci95"]
                row[f"{metric} - 1-NN"] = f"{diff[metric]['diff']:+.4f} [{lo:+.4f}, {hi:+.4f}]"
        rows.append(row)
    return pd.DataFrame(rows)


def fold_frame(results: dict[str, Any], metric: str = "cider") -> pd.DataFrame:
    """One row per fold, one column per system (and baseline): the metric's value."""
    rows = []
    for fold in results.get("per_fold", []):
        row = {"fold": fold["fold"] + 1, "images": fold.get("n_images")}
        for system, values in {**fold.get("systems", {}), **fold.get("baselines", {})}.items():
            row[system] = values.get(metric, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def health_frame(health: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Caption health per system (rows) from results.json."""
    keys = ("adjacent_repeat_share", "repeated_bigram_share", "distinct_caption_ratio", "distinct_words",
            "mean_length", "reference_mean_length")
    return pd.DataFrame([{"system": name, **{k: h.get(k) for k in keys}} for name, h in health.items()])
