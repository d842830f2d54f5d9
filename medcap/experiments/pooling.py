"""Pool a study's folds (and seeds): every system against the 1-NN over ITS OWN training pool.

Each fold's evaluation of a system already holds, per test image, the caption of the nearest image of
that system's training pool (`nn_caption`), and the most frequent caption of that pool. Systems whose
pools differ (e.g. `long_captions=truncate` keeps more training captions than the paper's rule) get
different baselines; systems with the same pool (same training images in every fold) share one. A
system's headline difference is against its own pool's 1-NN; when a study has several pools, the
differences against the other pools' 1-NN are given beside, labelled. Rows are sorted by name: they
never depend on the order `--systems` was given in.

Intervals: `medcap.eval.seeded` (two-level bootstrap over cases, then seeds; paired differences draw the
same seed for both systems). CIDEr: one document-frequency rule for the per-fold and pooled figures
(each fold's own test references), so the per-fold table and the pooled table agree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medcap.base.io import read_json
from medcap.experiments import levers
from medcap.runs.folder import RunDir

NN, MF = "1-NN", "most-frequent"


@dataclass
class Collected:
    """Every fold's test images (folds in order) and every system's captions, seed by seed."""

    refs: list[list[list[str]]] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    blocks: list[int] = field(default_factory=list)
    hyps: dict[str, list[list[list[str]]]] = field(default_factory=dict)  # label -> seed -> image tokens
    nn: dict[str, list[list[str]]] = field(default_factory=dict)  # system -> image tokens (seed-independent)
    mf: dict[str, list[list[str]]] = field(default_factory=dict)
    pools: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # system -> per fold pool record
    decoding: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> retrieval / enforced
    selection: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # system -> choices
    # clinical-fact marks per image: label -> fact -> marks, and the case of each mark (label -> groups)
    facts: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    fact_groups: dict[str, list[str]] = field(default_factory=dict)


FACTS = ("modality", "plane", "region")
# predictions.csv column prefix -> how the study labels that system's fact marks (see medcap.eval.evaluate)
FACT_PREFIXES = {"": "{label}", "caption_": "{label} (caption only)", "nn_": "nn:{system}"}


def _add_facts(out: Collected, pred: pd.DataFrame, label: str, system: str, with_nn: bool) -> None:
    """Append one evaluation's per-image fact marks (the model's, its caption's and, `with_nn`, its 1-NN's)."""
    groups = pred["group"].astype(str).tolist() if "group" in pred else pred["image_id"].astype(str).tolist()
    for prefix, pattern in FACT_PREFIXES.items():
        if prefix == "nn_" and not with_nn:
            continue  # the 1-NN depends neither on the init seed nor on a decoding variant
        if not all(f"{prefix}fact_{f}" in pred for f in FACTS):
            continue
        key = pattern.format(label=label, system=system)
        for f in FACTS:
            out.facts.setdefault(key, {}).setdefault(f, []).extend(pred[f"{prefix}fact_{f}"].astype(str))
        out.fact_groups.setdefault(key, []).extend(groups)


def _predictions(run: RunDir, name: str) -> pd.DataFrame | None:
    ev = run.eval_dir(name)
    if not ev.is_complete():
        return None
    return pd.read_csv(ev.predictions, keep_default_na=False, dtype={"image_id": str, "group": str})


def _pool_record(run: RunDir, metrics: dict[str, Any]) -> dict[str, Any]:
    """The evaluation's `baseline_pool`, or (older evaluations) one rebuilt from split.json and config.json."""
    pool = metrics.get("baseline_pool")
    if isinstance(pool, dict) and pool.get("ids_sha256"):
        return pool
    cfg = run.read_config().get("run") or {}
    ids = sorted(map(str, run.read_split().get("train", [])))
    long = "longer ones truncated" if cfg.get("long_captions") == "truncate" else "longer ones dropped"
    rule = f"the run's training split, captions of at most {cfg.get('max_words', 20)} words ({long})"
    return {"n_images": len(ids), "rule": rule, "ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
            "note": "rebuilt from split.json (evaluation older than baseline_pool)"}


def _decoding(metrics: dict[str, Any]) -> dict[str, Any]:
    opts = metrics.get("decode_options") or {}
    enforced = ((metrics.get("caption_health") or {}).get("model") or {}).get("enforced_by_decoding")
    if enforced is None:  # older evaluation: from the recorded options
        enforced = ["adjacent_repeat_share"] if opts.get("block_adjacent") else []
    return {"retrieval_augmented": bool(int(opts.get("memory_k") or 0) > 0 and float(opts.get("memory_lambda") or 0)),
            "enforced_by_decoding": list(enforced)}


def collect(folder: Path, settings: Any, run_name: Any, configs: Any) -> Collected:
    """Read every fold x system x seed evaluation (`run_name(fold, system, seed)` names the run folders)."""
    out = Collected()
    seeds = settings.seed_values()
    for fold in range(settings.folds):
        ids: list[str] = []
        for system in sorted(settings.systems):
            for k, seed in enumerate(seeds):
                run = RunDir(folder / "runs" / run_name(fold, system, seed))
                ids = _read_run(out, run, system, fold, k, len(seeds), ids)
                if settings.select:
                    _read_selection(out, run, configs(fold)[system], system, fold, seed, k, len(seeds),
                                    settings.select_metric)
    return out


def _read_run(out: Collected, run: RunDir, system: str, fold: int, k: int, n_seeds: int, ids: list[str]) -> list[str]:
    """Add one run's test evaluations (the system and its variants) to `out`; returns the fold's image ids."""
    for name in sorted(e.name for e in run.evals() if e.name.startswith(levers.TEST_NAME)):
        pred = _predictions(run, name)
        if pred is None:
            continue
        if not ids:
            ids = list(pred["image_id"])
            out.refs.extend([[r.split() for r in json.loads(x)] for x in pred["references"]])
            out.groups.extend(pred["group"].astype(str) if "group" in pred else pred["image_id"])
            out.blocks.extend([fold] * len(pred))
        if list(pred["image_id"]) != ids:
            raise ValueError(f"{run.path}: {name} scored other images than the other runs of fold {fold}")
        label = system + name[len(levers.TEST_NAME):].replace("-", ":", 1)
        _add(out.hyps, label, k, n_seeds, fold, [p.split() for p in pred["prediction"]])
        _add_facts(out, pred, label, system, name == levers.TEST_NAME and k == 0)  # every variant's facts
        metrics = read_json(run.eval_dir(name).metrics)
        out.decoding.setdefault(label, _decoding(metrics))
        if name == levers.TEST_NAME and k == 0:  # the pool does not depend on the init seed
            out.nn.setdefault(system, []).extend(p.split() for p in pred["nn_caption"])
            mf = metrics.get("most_frequent_caption", "").split()
            out.mf.setdefault(system, []).extend([list(mf)] * len(pred))
            out.pools.setdefault(system, []).append(_pool_record(run, metrics))
    return ids


def _read_selection(out: Collected, run: RunDir, cfg: Any, system: str, fold: int, seed: Any, k: int,
                    n_seeds: int, metric: str) -> None:
    """The variant chosen on the run's inner validation split, and its test captions as `<system>:selected`."""
    chosen, scores = levers.choose(run.path, cfg, metric)
    out.selection.setdefault(system, []).append({"fold": fold, "seed": seed, "chosen": chosen or "as set",
                                                 "validation": scores})
    pred = _predictions(run, levers.eval_name(levers.TEST_NAME, chosen))
    if pred is None:
        raise ValueError(f"{run.path}: test evaluation of the selected variant {chosen!r} missing")
    _add(out.hyps, f"{system}:{levers.SELECTED}", k, n_seeds, fold, [p.split() for p in pred["prediction"]])


def _add(hyps: dict[str, Any], label: str, k: int, n_seeds: int, fold: int, caps: list[list[str]]) -> None:
    per_seed = hyps.setdefault(label, [[] for _ in range(n_seeds)])
    per_seed[k].append((fold, caps))


def _flatten(per_seed: list[list[tuple[int, list[list[str]]]]]) -> list[list[list[str]]]:
    return [[c for _, caps in sorted(parts, key=lambda p: p[0]) for c in caps] for parts in per_seed]


def pool_names(pools: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """system -> the name of its training pool; systems with the same images in every fold share a name.

    The name is the pool's caption rule; when systems with different rules end up with the same images
    (no caption is long enough to differ), both rules are named.
    """
    signature = {s: tuple(p["ids_sha256"] for p in folds) for s, folds in pools.items()}
    names: dict[tuple[str, ...], str] = {}
    for sig in sorted(set(signature.values())):
        rules = sorted({pools[s][0]["rule"].removeprefix("the run's training split, ") for s in pools
                        if signature[s] == sig})
        name = "pool: " + (rules[0] if len(rules) == 1 else " = ".join(rules) + " (the same images)")
        if name in names.values():
            name += " [" + ", ".join(sorted(s for s in pools if signature[s] == sig)) + "]"
        names[sig] = name
    return {s: names[signature[s]] for s in sorted(pools)}


def pool_results(folder: Path, settings: Any, run_name: Any, configs: Any) -> dict[str, Any]:
    """Pooled (two-level CIs), per-fold (same scores, same CIDEr rule), paired vs own-pool 1-NN, pools, health."""
    from medcap.eval import bootstrap as bs
    from medcap.eval import seeded
    from medcap.eval.health import caption_health

    got = collect(folder, settings, run_name, configs)
    n_seeds = len(settings.seed_values())
    pool_of = pool_names(got.pools)
    systems: dict[str, list[list[list[str]]]] = {}
    for label in sorted(got.hyps):
        flat = _flatten(got.hyps[label])
        if all(len(h) == len(got.refs) for h in flat):
            systems[label] = flat
    for system, pool in sorted(pool_of.items()):
        systems.setdefault(f"{NN} · {pool}", [got.nn[system]] * n_seeds)
        systems.setdefault(f"{MF} · {pool}", [got.mf[system]] * n_seeds)
    scores, skipped, weights = seeded.score_seeded(got.refs, systems, got.blocks, got.groups, n_boot=settings.n_boot,
                                                   with_meteor=settings.with_meteor)
    baselines = {f"{NN} · {p}": p for p in sorted(set(pool_of.values()))}
    own, beside = {}, {}
    for label in systems:
        system = label.split(":")[0]
        if label not in got.hyps or system not in pool_of:
            continue
        mine = f"{NN} · {pool_of[system]}"
        own[label] = {"baseline": mine, **seeded.paired_seeded(scores[mine], scores[label], weights)}
        others = {b: seeded.paired_seeded(scores[b], scores[label], weights) for b in baselines if b != mine}
        if others:
            beside[label] = others
    per_fold = _per_fold(scores, got.blocks, n_seeds, settings.folds)
    health = {}
    for label, per_seed in systems.items():
        flat = [h for hyps in per_seed for h in hyps]
        health[label] = caption_health(flat, [r for _ in range(n_seeds) for r in got.refs])
        health[label]["enforced_by_decoding"] = got.decoding.get(label, {}).get("enforced_by_decoding", [])
    pools = {p: {"systems": sorted(s for s, q in pool_of.items() if q == p),
                 "per_fold": [{"fold": f, **got.pools[next(s for s, q in sorted(pool_of.items()) if q == p)][f]}
                              for f in range(settings.folds)]} for p in sorted(set(pool_of.values()))}
    return {"dataset": settings.dataset, "folds": settings.folds, "seed": settings.seed, "seeds": settings.seeds,
            "n_seeds": n_seeds, "systems": {k: settings.systems[k] for k in sorted(settings.systems)},
            "n_images": len(got.refs), "n_groups": bs.group_codes(len(got.refs), got.groups)[1],
            "per_fold": per_fold, "pooled": {k: sc.summary for k, sc in scores.items()},
            "paired_vs_own_pool_1nn": own, "paired_vs_other_pool_1nn": beside, "pools": pools,
            "system_pool": pool_of, "decoding": {k: got.decoding.get(k, {}) for k in systems if k in got.decoding},
            "selection": got.selection or None, "caption_health": health, "skipped": skipped,
            "clinical_facts": _pooled_facts(got, pool_of, settings.n_boot),
            "ci_method": seeded.METHOD, "cider_rule": seeded.CIDER_RULE}


def _per_fold(scores: dict[str, Any], blocks: list[int], n_seeds: int, folds: int) -> list[dict[str, Any]]:
    """Each fold's value of every system, from the same per-image scores as the pooled table (all seeds)."""
    tiled = np.tile(np.asarray(blocks), n_seeds)  # (S * N,)
    out = []
    for fold in range(folds):
        rows = (tiled == fold).astype(np.int64)
        values: dict[str, dict[str, float]] = {}
        for label, sc in scores.items():
            v = {k: float(x) for k, x in sc.bleu_stats.scores(rows).items()}
            v.update({k: float(np.mean(x[rows > 0])) for k, x in sc.per_image.items()})
            values[label] = v
        out.append({"fold": fold, "n_images": int(np.sum(np.asarray(blocks) == fold)), "systems": values})
    return out


def _pooled_facts(got: Collected, pool_of: dict[str, str], n_boot: int) -> dict[str, Any]:
    """Per system and fact: shares of all test images (every fold, every seed) stated right / wrong / not stated,
    95% CIs resampling cases (`medcap.eval.facts_score.score_fact`); the 1-NN under its pool's name."""
    from medcap.eval.facts_score import score_fact

    out: dict[str, Any] = {}
    for key, facts in sorted(got.facts.items()):
        name = f"{NN} · {pool_of[key[3:]]}" if key.startswith("nn:") and key[3:] in pool_of else key
        out[name] = {f: score_fact(marks, got.fact_groups[key], n_boot) for f, marks in facts.items()}
    return out
