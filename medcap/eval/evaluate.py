"""`evaluate_run`: decode a run's images, score model and baselines, write `eval/<name>/` (`EvalDir`).

Imports TensorFlow (through `medcap.train`) only when a run is evaluated.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medcap.base.io import atomic_path, safe_name, write_json, write_text
from medcap.eval import bootstrap as bs
from medcap.eval import hybrid
from medcap.eval.artifacts import CASE_PREDICTION_COLUMNS, OPTIONAL_PREDICTION_COLUMNS, PREDICTION_COLUMNS
from medcap.eval.baselines import most_frequent_caption, nearest_neighbour_captions
from medcap.eval.clock import Clock as _Clock
from medcap.eval.evalset import EvalSet, build_eval_set, prepared_table, resolve_split, same_dataset
from medcap.eval.facts_score import clinical_facts
from medcap.eval.metrics import BLEU_WEIGHTS, sentence_bleu_scores
from medcap.eval.nextword import next_word_metrics
from medcap.eval.report import BASELINE_DEFINITIONS, EvalReport, metrics_json
from medcap.eval.scoring import paired_table, score_systems
from medcap.runs.folder import SPLITS, RunDir

log = logging.getLogger(__name__)

def parse_decode(decode: str) -> int:
    """'greedy' -> 1, 'beam:K' -> K (K >= 1); ValueError otherwise."""
    text = decode.strip().lower()
    if text == "greedy":
        return 1
    kind, _, k = text.partition(":")
    if kind == "beam" and k.isdigit() and int(k) >= 1:
        return int(k)
    raise ValueError(f"unknown decode mode {decode!r}; use 'greedy' or 'beam:K' (e.g. beam:3)")


def eval_name(dataset_name: str, split: str, decode: str) -> str:
    """Folder name of an evaluation: `<dataset>-<split>-<decode>` made safe."""
    return safe_name(f"{dataset_name}-{split}-{decode.replace(':', '')}", max_len=100)


@dataclass
class Prepared:
    """A loaded run and the images to evaluate it on."""

    loaded: Any  # medcap.inference.opened.LoadedRun
    evalset: EvalSet
    train_tokens: list[list[str]]
    train_global: np.ndarray  # (Ntr, D) float32
    train_groups: list[str] = field(default_factory=list)
    own_dataset: bool = True
    dataset_check: dict[str, Any] = field(default_factory=dict)
    dataset_has_test: bool = True  # the dataset's own split labels include test images


def check_fingerprint(loaded: Any, allow_changed_data: bool = False) -> dict[str, Any]:
    """Compare the run's dataset now with the fingerprint saved at training time.

    ValueError (naming config.json's `dataset_fingerprint`) when they differ, unless `allow_changed_data`;
    the returned record goes into metrics.json.
    """
    from medcap.data import dataset_fingerprint

    saved = loaded.config.get("dataset_fingerprint")
    now = dataset_fingerprint(loaded.captioned()[1])
    changed = bool(saved) and saved != now
    if changed and not allow_changed_data:
        raise ValueError(f"{RunDir(Path(loaded.run_dir)).config}: dataset_fingerprint {saved} differs from the "
                         f"dataset now ({now}): captions or images of {loaded.cfg.dataset} changed since training. "
                         f"Pass --allow-changed-data to evaluate anyway (recorded in metrics.json).")
    return {"saved": saved, "now": now, "changed": changed, "allowed": bool(changed and allow_changed_data)}


def prepare(run_dir: str | os.PathLike[str], dataset: str | None, split: str | None,
            feature_store: str | os.PathLike[str] | None = None, loaded: Any = None,
            allow_changed_data: bool = False, include_training_images: bool = True) -> Prepared:
    """Load the run, its training captions/features (for baselines) and the evaluation images.

    References follow the paper's rule whatever the run trained on: images whose caption has at most
    `max_words` words, scored against their full caption (a run trained with long captions truncated is
    not scored against cut text). `split` and `include_training_images`: `evalset.resolve_split`.
    """
    from medcap.features import ensure_features, open_store

    if loaded is None:
        from medcap.inference.opened import load_run

        loaded = load_run(run_dir)
    cfg = loaded.cfg
    check = check_fingerprint(loaded, allow_changed_data)
    train = loaded.training_set()
    own_result, own_table = loaded.captioned(long_captions="drop")  # the paper's rule for references
    if dataset is None:
        result, table, own = own_result, own_table, True
    else:
        result, table = prepared_table(dataset, cfg, references=True)
        own = same_dataset(result, own_result)
    split = resolve_split(split, own, Path(loaded.run_dir).name, cfg.dataset, include_training_images)
    if own and split not in SPLITS and split != "all":
        raise ValueError(f"unknown split {split!r}")
    run_store = loaded.store
    if own:
        store = run_store
    elif feature_store is not None:
        store = open_store(Path(feature_store))
    else:
        store = ensure_features(result, backbone=cfg.backbone)
    if int(store.global_dim) != int(run_store.global_dim):
        raise ValueError(f"{store.path}: global feature dim {store.global_dim} differs from the run's "
                         f"{run_store.global_dim} (backbone {cfg.backbone})")
    evalset = build_eval_set(result.spec, table, result.name, split, loaded.split if own else None, store)
    has_test = bool((own_table["split"].fillna("").astype(str) == "test").any()) if "split" in own_table else False
    return Prepared(loaded=loaded, evalset=evalset, train_tokens=train.tokens, train_global=train.global_feats,
                    train_groups=train.groups, own_dataset=own, dataset_check=check, dataset_has_test=has_test)


def decode_captions(loaded: Any, evalset: EvalSet, **settings: Any) -> list[Any]:
    """Model captions for the evaluation images (the run's decoding settings, `settings` overriding them)."""
    return loaded.decode(evalset.global_feats, evalset.grid_feats, loaded.decode_options(**settings),
                         image_ids=evalset.image_ids)


def split_description(loaded: Any, ev: EvalSet, own: bool, dataset_has_test: bool) -> dict[str, Any]:
    """Which split was scored, its role (test / validation used for model selection) and the run's label."""
    from medcap.data.splits import split_role

    cfg = loaded.cfg
    role = split_role(cfg.protocol, dataset_has_test, ev.split) if own else "external dataset (not used in training)"
    protocol = {"official": "official split", "kfold": f"fold {cfg.fold + 1}/{cfg.n_folds}"}.get(
        cfg.protocol, f"{cfg.protocol} {cfg.split_by} split")
    return {"split": ev.split, "split_role": role, "used_for_model_selection": own and ev.split == "val",
            "run_label": f"{cfg.preset} · {protocol}"}


def evaluate_run(run_dir: str | os.PathLike[str], dataset: str | None = None, split: str | None = "test",
                 decode: str | None = None, *, feature_store: str | os.PathLike[str] | None = None,
                 n_boot: int = bs.N_RESAMPLES, seed: int = bs.SEED, with_meteor: bool = True,
                 length_penalty: float | None = None, allow_changed_data: bool = False,
                 decode_settings: dict[str, Any] | None = None, name: str | None = None,
                 with_reliance: bool = True, include_training_images: bool = False) -> Path:
    """Evaluate a run and write its `EvalDir` `<run>/eval/<name>/` (metrics, predictions, attention maps).

    `dataset=None` uses the run's dataset and its own split; another dataset uses its own split
    (`split="all"`: every image) with features from the run's backbone (`feature_store` overrides).
    `split=None`/"all" and `include_training_images`: `evalset.resolve_split`. Baselines always come
    from the run's training split. Decoding follows the run's settings;
    `decode` ("greedy" | "beam:K"), `length_penalty` and `decode_settings` (RunConfig decoding fields)
    override them. Every confidence interval resamples cases (the `group` column). The image-reliance
    check decodes the images again with features swapped across cases (retrieval-augmented runs: `hybrid`).
    """
    from medcap.eval.health import caption_health
    from medcap.eval.reliance import own_case_share, swap_permutation
    from medcap.eval.scored import scored_weights

    settings = dict(decode_settings or {})
    if decode is not None:
        settings["beam_size"] = parse_decode(decode)
    if length_penalty is not None:
        settings["length_penalty"] = float(length_penalty)
    clock = _Clock()
    weights = scored_weights(run_dir)  # before they are loaded: the epoch scored, a run in training
    prep = prepare(run_dir, dataset, split, feature_store, allow_changed_data=allow_changed_data,
                   include_training_images=include_training_images)
    loaded, ev = prep.loaded, prep.evalset
    clock.lap("prepare")
    options = loaded.decode_options(**settings)
    beam = options.beam_size
    decode = decode or ("greedy" if beam <= 1 else f"beam:{beam}")
    log.info("evaluating %s on %s (%s, %d images, %s)", loaded.run_dir.name, ev.spec, ev.basis, len(ev), decode)

    image_ids = ev.image_ids
    memory = loaded.caption_memory(options, ev.global_feats, image_ids)  # None unless memory_k > 0
    caps = loaded.decode(ev.global_feats, ev.grid_feats, options, image_ids=image_ids, memory=memory)
    hyps = [list(c.words) for c in caps]
    effective = {**loaded.cfg.decode_settings(), **settings}  # the decoding settings actually used
    clock.lap("decode")
    groups = ev.table["group"].astype(str).tolist()
    mf = most_frequent_caption(prep.train_tokens, groups=prep.train_groups or None)
    _nn_idx, nn_caps = nearest_neighbour_captions(prep.train_global, prep.train_tokens, ev.global_feats)
    refs = ev.refs
    clock.lap("baselines")
    systems = {"model": hyps, "most_frequent": [list(mf) for _ in refs], "nearest_neighbour": nn_caps}
    reliance: dict[str, Any] = {}
    if with_reliance and len(ev) > 1:
        perm = swap_permutation(groups, seed=seed)
        # each image decodes with another case's features, and with that image's caption memory (by id)
        swapped = loaded.decode(ev.global_feats[perm], ev.grid_feats[perm], options,
                                image_ids=[image_ids[int(p)] for p in perm], memory=memory)
        systems["swapped_images"] = [list(c.words) for c in swapped]
        reliance = {"own_case_share": own_case_share(groups, perm), "seed": seed}
        clock.lap("reliance_decode")
    extra = hybrid.extra_decodes(loaded, ev, effective, options, memory, perm if "swapped_images" in systems else None)
    systems.update(extra)
    scores, skipped = score_systems(refs, systems, n_boot=n_boot, seed=seed, with_meteor=with_meteor, groups=groups)
    fact_systems, stated = _fact_systems(systems, caps)
    facts, fact_marks = clinical_facts(ev.table, refs, fact_systems, groups, stated, n_boot=n_boot, seed=seed,
                                       marks_of=FACT_MARK_PREFIXES)  # per-image marks go to predictions.csv
    if "swapped_images" in scores:
        table = paired_table(scores["swapped_images"], scores["model"], n_boot=n_boot, seed=seed, groups=groups)
        reliance["metrics"] = {k: {"value": v["diff"], "ci95": v["ci95"], "swapped": v["a"]} for k, v in table.items()}
    hybrid.add_neural_reliance(reliance, scores, n_boot=n_boot, seed=seed, groups=groups)
    clock.lap("metrics_and_bootstrap" + ("" if with_meteor else "_no_meteor"))

    vocab = loaded.vocab
    token_ids = [vocab.encode(r[0]) for r in refs]
    from medcap.model import traced_probs

    next_word = next_word_metrics(traced_probs(loaded.model), ev.global_feats, ev.grid_feats, token_ids, vocab.start_id,
                                  vocab.end_id, max_len=loaded.cfg.max_words + 1, unk_id=vocab.unk_id,
                                  banned=[vocab.pad_id, vocab.start_id, vocab.unk_id],
                                  train_token_ids=[vocab.encode(t) for t in prep.train_tokens])
    health = {"model": caption_health(hyps, refs), "nearest_neighbour": caption_health(nn_caps, refs)}
    hybrid.add_health(health, effective, extra, refs)
    clock.lap("next_word_and_health")

    name = name or eval_name(ev.name, ev.split, decode)
    out = RunDir(Path(loaded.run_dir)).eval_dir(name)
    metrics = metrics_json(EvalReport(
        name=name, loaded=loaded, ev=ev, decode=decode, refs=refs, scores=scores, skipped=skipped,
        most_frequent=mf, next_word=next_word, split=split_description(loaded, ev, prep.own_dataset,
                                                                         prep.dataset_has_test),
        groups=groups, n_boot=n_boot, seed=seed, reliance=reliance, health=health, facts=facts,
        decode_options=options.describe(memory), weights=weights, dataset_check=prep.dataset_check,
        retrieval=hybrid.metrics_fields(loaded, effective, scores)))
    from medcap.model.facts_head import facts_line  # TensorFlow is loaded by now (the run's model)

    with out.staging() as tmp:
        lines = {"facts_line": [facts_line(c.facts) for c in caps]} if caps and caps[0].facts is not None else {}
        _write_predictions(tmp.predictions, replace(ev, table=ev.table.assign(**fact_marks, **lines)), refs, hyps,
                           scores["model"].per_image, nn_caps, scores["nearest_neighbour"].per_image)
        _write_attention(tmp.attention, ev.image_ids, [c.attention for c in caps])
        _write_attention(tmp.attention_mean, ev.image_ids, [c.attention_mean for c in caps])
        write_json(tmp.metrics, metrics)  # written last: its presence marks the evaluation complete
    clock.lap("write")
    log.info("wrote %s", out.path)
    log.info("evaluate timings (s): %s", clock.describe())  # not in metrics.json: evaluations stay reproducible
    return out.path


# Per-image fact marks written to predictions.csv (the study pools them): system -> column prefix.
FACT_MARK_PREFIXES = {"model": "", "model_caption_only": "caption_", "nearest_neighbour": "nn_"}


def _fact_systems(systems: dict[str, list], caps: list[Any]) -> tuple[dict[str, list], dict[str, list] | None]:
    """The systems whose clinical facts are scored, and the facts stated outside their captions: with a findings
    line the model is scored on line + caption ("model") and on its caption alone ("model_caption_only")."""
    from medcap.model.facts_head import sure_facts

    scored = {k: systems[k] for k in ("model", *BASELINE_DEFINITIONS)}
    if not caps or caps[0].facts is None:
        return scored, None
    return {**scored, "model_caption_only": systems["model"]}, {"model": [sure_facts(c.facts) for c in caps]}


def _write_predictions(path: Path, ev: EvalSet, refs: list, hyps: list[list[str]], per_image: dict[str, np.ndarray],
                       nn_caps: list[list[str]], nn_per_image: dict[str, np.ndarray]) -> None:
    rows = []
    table = ev.table
    for i, (r, h, nn) in enumerate(zip(refs, hyps, nn_caps, strict=True)):
        sb = sentence_bleu_scores(r, h)
        row = {"image_id": table["image_id"].iloc[i], "image_path": table["image_path"].iloc[i],
               "references": json.dumps([" ".join(t) for t in r]), "prediction": " ".join(h),
               **{k: sb[k] for k in BLEU_WEIGHTS}, "rouge_l": float(per_image["rouge_l"][i]),
               "ref_len": len(r[0]), "pred_len": len(h), "nn_caption": " ".join(nn),
               "nn_bleu1": sentence_bleu_scores(r, nn)["bleu1"], "cider": float(per_image["cider"][i]),
               "nn_cider": float(nn_per_image["cider"][i]), "group": str(table["group"].iloc[i])}
        row.update({c: table[c].iloc[i] for c in OPTIONAL_PREDICTION_COLUMNS if c in table.columns})
        rows.append(row)
    columns = [*PREDICTION_COLUMNS, *CASE_PREDICTION_COLUMNS,
               *(c for c in OPTIONAL_PREDICTION_COLUMNS if c in table.columns)]
    write_text(path, pd.DataFrame(rows, columns=columns).to_csv(index=False))


def _write_attention(path: Path, image_ids: list[str], maps: list[np.ndarray | None]) -> None:
    """One (n_words, 7, 7) float16 array per image id ((0, 7, 7) when the model has no grid attention).

    Written entry by entry (the .npz layout np.load reads), so any image id is a valid key.
    """
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for image_id, att in zip(image_ids, maps, strict=True):
            att = np.zeros((0, 7, 7)) if att is None else att
            arr = np.asarray(att, dtype=np.float16).reshape(-1, 7, 7)  # (n_words, 7, 7)
            with zf.open(f"{image_id}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, arr, allow_pickle=False)
