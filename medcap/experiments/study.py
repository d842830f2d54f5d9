"""Case-disjoint k-fold study: does a captioner beat copying the nearest caption of ITS OWN training pool?

`run_study` trains every system (a preset plus overrides) on each of k case-disjoint folds of a dataset
(protocol "kfold": `medcap.data.splits.kfold_splits`, stratified by caption length, validation carved
from each fold's training cases), once per init seed with `seeds`, evaluates each on its fold's test
cases (references: the paper's <= max_words rule, full captions) with the 1-NN and most-frequent
baselines over that system's own training pool, and pools folds and seeds (`medcap.experiments.pooling`):
every test image is scored once per seed, the paired difference "system minus its own pool's 1-NN" gets
a two-level (cases, then seeds) bootstrap CI. A retrieval-augmented system is always reported beside its
neural-only re-decode; decoding ablations and `select` (levers chosen on inner validation folds only) are
in `medcap.experiments.levers`. Each preset's provenance (`medcap.experiments.frozen`) is recorded.

One folder per study under `artifacts/studies/`: `study.json` (settings), `status.json` (progress, a
run's status format), `runs/fold<i>-<system>[-s<seed>]/` (ordinary run folders with their evaluations),
`results.json` and `results.csv`. A killed study resumes where it stopped: finished runs and complete
evaluations are kept, an interrupted run resumes from its last epoch. TensorFlow is imported only
inside the functions that train or evaluate.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medcap.base import paths
from medcap.base.io import read_json, safe_name, write_json, write_text
from medcap.config import RunConfig
from medcap.eval.artifacts import ci_text, num_text
from medcap.experiments import frozen, levers, pooling
from medcap.runs.folder import RunDir, read_status_file, write_status_file
from medcap.runs.index import new_unique_dir

log = logging.getLogger(__name__)

STUDY_FILE = "study.json"
STATUS_FILE = RunDir.STATUS  # a run's status format
RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
RUNS = "runs"
EVAL_NAME = levers.TEST_NAME
METRICS = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "cider", "meteor")
ABLATIONS = levers.ABLATIONS


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
    seed: int = 0  # split seed of the folds
    systems: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # name -> RunConfig fields
    with_meteor: bool = True
    n_boot: int = 1000
    ablations: bool = True
    seeds: list[int] | None = None  # init seeds: each fold trained once per seed (None: each preset's own seed)
    select: bool = False  # choose decoding levers on each fold's inner validation split (levers.choose)
    select_metric: str = "cider"

    def validate(self) -> None:
        """ValueError naming the problem: fewer than 2 folds, no system, or a system's invalid settings."""
        if self.folds < 2:
            raise ValueError(f"a study needs at least 2 case-disjoint folds, got {self.folds}")
        if not self.systems:
            raise ValueError("a study needs at least one system")
        for fold in range(self.folds):
            for seed in self.seed_values():
                self.configs(fold, seed)

    def seed_values(self) -> list[int | None]:
        """The init seeds trained per fold and system ([None]: one run with the preset's seed)."""
        return list(self.seeds) if self.seeds else [None]

    def configs(self, fold: int, seed: int | None = None) -> dict[str, RunConfig]:
        """The RunConfig of every system on one fold (and init seed)."""
        out = {}
        for name in sorted(self.systems):
            fields = self.systems[name]
            values = {k: v for k, v in fields.items() if k != "preset"}
            values.update(dataset=self.dataset, protocol="kfold", fold=fold, n_folds=self.folds,
                          split_seed=self.seed, name=safe_name(f"fold{fold}-{name}", max_len=40))
            if seed is not None:
                values["seed"] = int(seed)
            out[name] = RunConfig.from_preset(fields.get("preset", name), **values)
        return out


def run_name(fold: int, system: str, seed: int | None = None) -> str:
    """The run folder of a system on a fold (and seed) inside the study's `runs/`."""
    return safe_name(f"fold{fold}-{system}" + ("" if seed is None else f"-s{seed}"), max_len=60)


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

    jobs = [(f, s, seed) for f in range(settings.folds) for s in sorted(settings.systems)
            for seed in settings.seed_values()]
    for done, (fold, system, seed) in enumerate(jobs):
        cfg = settings.configs(fold, seed)[system]
        run = RunDir(folder / RUNS / run_name(fold, system, seed))
        what = f"{system}" + ("" if seed is None else f", seed {seed}")
        _status(folder, "running", pid=os.getpid(), progress=done / len(jobs), stage=f"fold {fold + 1}: {what}",
                message=f"fold {fold + 1}/{settings.folds}: {what}", error=None)
        state = run.read_status().get("state")
        if state != "finished":
            if run.config.is_file() and state not in (None, "unknown"):
                log.info("study: resuming %s", run.path.name)
                resume_run(run.path)
            else:
                log.info("study: training %s", run.path.name)
                train_run(cfg, run.path)
        variants = levers.candidates(cfg, ablations=settings.ablations)  # neural-only always, when it retrieves
        if settings.select:
            levers.evaluate_candidates(run, cfg, n_boot=min(settings.n_boot, 200))
            chosen, _ = levers.choose(run.path, cfg, settings.select_metric)
            variants.setdefault(chosen, levers.candidates(cfg)[chosen])
        for suffix, overrides in variants.items():
            name_ = levers.eval_name(EVAL_NAME, suffix)
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


def pool_results(folder: Path, settings: StudySettings) -> dict[str, Any]:
    """Pooled and per-fold results (`medcap.experiments.pooling`), with each preset's provenance."""
    results = pooling.pool_results(folder, settings, run_name, settings.configs)
    results["provenance"] = {name: frozen.provenance(fields.get("preset", name), settings.dataset)
                             for name, fields in sorted(settings.systems.items())}
    results["definitions"] = {
        "paired_vs_own_pool_1nn": "system minus the 1-NN retrieval over the same training pool the system was "
        "trained on, every test image of every fold (and seed); " + results["ci_method"],
        "paired_vs_other_pool_1nn": "the same against the 1-NN over another system's training pool (shown when "
        "the study's systems have different pools)",
        "system:neural_only": "a retrieval-augmented system re-decoded with the caption memory off (same weights)",
        "system:no_min_length etc.": "the trained system re-decoded with one decoding lever off",
        "system:selected": "per fold and seed, the variant with the best validation " + settings.select_metric
        + " on the fold's inner validation split (carved from its training cases); never chosen on test folds",
        "cider": results["cider_rule"]}
    return results


def _diffs(results: dict[str, Any], label: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(difference vs the system's own-pool 1-NN, {other pool's 1-NN: difference}); older results: the one 1-NN."""
    if "paired_vs_own_pool_1nn" in results:
        return (results["paired_vs_own_pool_1nn"].get(label, {}),
                (results.get("paired_vs_other_pool_1nn") or {}).get(label, {}))
    return results.get("paired_vs_nearest_neighbour", {}).get(label, {}), {}


def results_table(results: dict[str, Any]) -> pd.DataFrame:
    """Long table: scope (fold i | pooled), system, metric, value, CI, paired difference vs own-pool 1-NN."""
    rows = []
    for fold in results["per_fold"]:
        for system, values in {**fold.get("systems", {}), **fold.get("baselines", {})}.items():
            for metric, value in values.items():
                rows.append({"scope": f"fold {fold['fold']}", "system": system, "metric": metric, "value": value})
    for system, summary in results["pooled"].items():
        own, _ = _diffs(results, system)
        for metric, m in summary.items():
            diff = own.get(metric, {})
            rows.append({"scope": "pooled", "system": system, "metric": metric, "value": m["value"],
                         "ci_low": m["ci95"][0], "ci_high": m["ci95"][1], "seed_sd": m.get("seed_sd"),
                         "baseline": own.get("baseline"), "minus_1nn": diff.get("diff"),
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


def pooled_frame(results: dict[str, Any], metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """Pooled metrics: one row per system (sorted), `metric` and `metric CI` columns, the paired difference vs
    the system's own-pool 1-NN and, when the study has several pools, vs each other pool's 1-NN (labelled)."""
    rows = []
    decoding = results.get("decoding") or {}
    own_title = "1-NN, own pool" if "paired_vs_own_pool_1nn" in results else "1-NN"  # older studies: one 1-NN
    for system in sorted(results.get("pooled", {})):
        summary = results["pooled"][system]
        own, others = _diffs(results, system)
        row: dict[str, Any] = {"system": system}
        if decoding.get(system, {}).get("retrieval_augmented"):
            row["system"] = f"{system} (retrieval-augmented)"
        for metric in metrics:
            m = summary.get(metric)
            if m is None:
                continue
            row[metric] = m["value"]
            row[f"{metric} CI"] = ci_text(m["ci95"], digits=4)
            if m.get("seed_sd") is not None:
                row[f"{metric} seed sd"] = m["seed_sd"]
            for title, diff in ((own_title, own), *((b, d) for b, d in sorted(others.items()))):
                if metric in diff:
                    d = diff[metric]
                    row[f"{metric} - {title}"] = f"{num_text(d['diff'], 4, True)} {ci_text(d['ci95'], 4, True)}"
        rows.append(row)
    return pd.DataFrame(rows)


def study_notes(results: dict[str, Any]) -> list[str]:
    """What a reader must know beside the pooled table: intervals, CIDEr rule, pools, provenance, selection."""
    lines = [f"95% CIs: {results.get('ci_method', 'case bootstrap (older study)')}",
             f"CIDEr: {results.get('cider_rule', 'pooled: document frequencies of all folds (older study)')}"]
    for name, pool in sorted((results.get("pools") or {}).items()):
        sizes = ", ".join(str(f.get("n_images")) for f in pool.get("per_fold", []))
        lines.append(f"1-NN · {name}: used by {', '.join(pool.get('systems', []))}; training images per fold {sizes}")
    for label, info in sorted((results.get("decoding") or {}).items()):
        if info.get("retrieval_augmented"):
            lines.append(f"{label}: retrieval-augmented (decoding mixes in the nearest training captions)")
    for system, prov in sorted((results.get("provenance") or {}).items()):
        if prov.get("chosen_on_this_data"):
            lines.append(f"{system}: its settings were chosen on this data ({prov.get('fixed')}): not a held-out test")
    for system, choices in sorted((results.get("selection") or {}).items()):
        picked = ", ".join(f"fold {c['fold'] + 1}" + ("" if c.get("seed") is None else f"/s{c['seed']}")
                           + f": {c['chosen']}" for c in choices)
        lines.append(f"{system}:selected (on inner validation folds) = {picked}")
    return lines


def fold_frame(results: dict[str, Any], metric: str = "cider") -> pd.DataFrame:
    """One row per fold, one column per system and baseline (sorted): the metric's value."""
    rows = []
    for fold in results.get("per_fold", []):
        row = {"fold": fold["fold"] + 1, "images": fold.get("n_images")}
        values = {**fold.get("systems", {}), **fold.get("baselines", {})}
        for system in sorted(values):
            row[system] = values[system].get(metric, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def health_frame(health: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Caption health per system (rows) from results.json; a share fixed by the decoding rules says so."""
    keys = ("adjacent_repeat_share", "repeated_bigram_share", "distinct_caption_ratio", "distinct_words",
            "mean_length", "reference_mean_length")
    rows = []
    for name in sorted(health):
        h = health[name]
        enforced = set(h.get("enforced_by_decoding") or [])
        rows.append({"system": name, **{k: f"{num_text(h.get(k))} (enforced by decoding)" if k in enforced
                                        else h.get(k) for k in keys}})
    return pd.DataFrame(rows)


def pools_frame(results: dict[str, Any]) -> pd.DataFrame:
    """The training pools the baselines retrieve from: name, systems, rule, images per fold."""
    rows = []
    for name, pool in sorted((results.get("pools") or {}).items()):
        folds = pool.get("per_fold") or []
        rows.append({"pool": name, "systems": ", ".join(pool.get("systems", [])),
                     "rule": folds[0].get("rule") if folds else "",
                     "training images per fold": ", ".join(str(f.get("n_images")) for f in folds)})
    return pd.DataFrame(rows)
