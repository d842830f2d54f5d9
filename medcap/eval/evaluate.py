"""`evaluate_run`: decode a run's images, score model and baselines, write `eval/<name>/` (`EvalDir`).

Imports TensorFlow (through `medcap.train`) only when a run is evaluated.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medcap.eval import bootstrap as bs
from medcap.eval.artifacts import OPTIONAL_PREDICTION_COLUMNS, PREDICTION_COLUMNS
from medcap.eval.baselines import most_frequent_caption, nearest_neighbour_captions
from medcap.eval.evalset import EvalSet, build_eval_set, prepared_table, same_dataset
from medcap.eval.metrics import BLEU_WEIGHTS, DEFINITIONS, provenance, sentence_bleu_scores
from medcap.eval.nextword import next_word_metrics
from medcap.eval.scoring import score_systems
from medcap.io import atomic_path, safe_name, write_json, write_text
from medcap.rundir import SPLITS, RunDir

log = logging.getLogger(__name__)

BASELINE_DEFINITIONS = {
    "most_frequent": "Every image gets the most frequent caption of the run's training split.",
    "nearest_neighbour": "Each image gets the caption of the run's training image whose global CNN feature is "
    "closest by cosine similarity (1-NN retrieval).",
}


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

    loaded: Any  # medcap.inference.LoadedRun
    evalset: EvalSet
    train_tokens: list[list[str]]
    train_global: np.ndarray  # (Ntr, D) float32


def prepare(run_dir: str | os.PathLike[str], dataset: str | None, split: str,
            feature_store: str | os.PathLike[str] | None = None, loaded: Any = None) -> Prepared:
    """Load the run, its training captions/features (for baselines) and the evaluation images."""
    from medcap.eval.evalset import gather
    from medcap.features import ensure_features, open_store

    if loaded is None:
        from medcap.inference import load_run

        loaded = load_run(run_dir)
    cfg = loaded.cfg
    own_result, own_table = prepared_table(cfg.dataset, cfg)
    run_store = loaded.store
    in_train = set(loaded.split.get("train", []))
    train_ids, train_g, _, _ = gather(run_store, [i for i in own_table["image_id"].astype(str) if i in in_train],
                                      with_grid=False)
    if not train_ids:
        raise ValueError(f"{loaded.run_dir}: no training image with features (baselines need them)")
    tok = dict(zip(own_table["image_id"].astype(str), own_table["tokens"], strict=True))
    train_tokens = [list(tok[i]) for i in train_ids]

    if dataset is None:
        result, table, own = own_result, own_table, True
    else:
        result, table = prepared_table(dataset, cfg)
        own = same_dataset(result, own_result)
    if own and split not in SPLITS and split != "all":
        raise ValueError(f"unknown split {split!r}")
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
    return Prepared(loaded=loaded, evalset=evalset, train_tokens=train_tokens, train_global=train_g)


def decode_captions(loaded: Any, evalset: EvalSet, beam: int) -> list[Any]:
    """Model captions for the evaluation images (greedy when beam == 1)."""
    return loaded.decode(evalset.global_feats, evalset.grid_feats, beam=beam)


def evaluate_run(run_dir: str | os.PathLike[str], dataset: str | None = None, split: str = "test",
                 decode: str = "greedy", *, feature_store: str | os.PathLike[str] | None = None,
                 n_boot: int = bs.N_RESAMPLES, seed: int = bs.SEED, with_meteor: bool = True) -> Path:
    """Evaluate a run and write its `EvalDir` `<run>/eval/<name>/` (metrics, predictions, attention).

    `dataset=None` uses the run's dataset and its own split; another dataset uses its own split
    (`split="all"`: every image) with features from the run's backbone (`feature_store` overrides).
    Baselines always come from the run's training split.
    """
    beam = parse_decode(decode)
    prep = prepare(run_dir, dataset, split, feature_store)
    loaded, ev = prep.loaded, prep.evalset
    log.info("evaluating %s on %s (%s, %d images, %s)", loaded.run_dir.name, ev.spec, ev.basis, len(ev), decode)

    caps = decode_captions(loaded, ev, beam)
    hyps = [list(c.words) for c in caps]
    mf = most_frequent_caption(prep.train_tokens)
    _nn_idx, nn_caps = nearest_neighbour_captions(prep.train_global, prep.train_tokens, ev.global_feats)
    refs = ev.refs
    systems = {"model": hyps, "most_frequent": [list(mf) for _ in refs], "nearest_neighbour": nn_caps}
    scores, skipped = score_systems(refs, systems, n_boot=n_boot, seed=seed, with_meteor=with_meteor)

    vocab = loaded.vocab
    token_ids = [vocab.encode(r[0]) for r in refs]
    next_word = next_word_metrics(loaded.model, ev.global_feats, ev.grid_feats, token_ids, vocab.start_id,
                                  vocab.end_id, max_len=loaded.cfg.max_words + 1)  # raw features, as in training

    name = eval_name(ev.name, split, decode)
    out = RunDir(Path(loaded.run_dir)).eval_dir(name)
    metrics = _metrics_json(name, loaded, ev, decode, scores, next_word, skipped, mf, n_boot, seed, refs)
    _write_predictions(out.predictions, ev, refs, hyps, scores["model"].per_image, nn_caps)
    _write_attention(out.attention, ev.image_ids, caps)
    write_json(out.metrics, metrics)  # written last: its presence marks the evaluation complete
    log.info("wrote %s", out.path)
    return out.path


def _metrics_json(name: str, loaded: Any, ev: EvalSet, decode: str, scores: dict, next_word: dict,
                  skipped: dict[str, str], mf: list[str], n_boot: int, seed: int, refs: list) -> dict[str, Any]:
    prov = provenance()
    in_vocab = sum(1 for r in refs for w in r[0] if w in loaded.vocab)
    n_words = sum(len(r[0]) for r in refs)
    return {
        "name": name,
        "run_id": Path(loaded.run_dir).name,
        "dataset": ev.spec,
        "dataset_name": ev.name,
        "split": ev.split,
        "images": ev.basis,
        "decode": decode,
        "n_images": len(ev),
        "left_out": ev.left_out,
        "model": scores["model"].summary,
        "baselines": {"most_frequent": scores["most_frequent"].summary,
                      "nearest_neighbour": scores["nearest_neighbour"].summary},
        "most_frequent_caption": " ".join(mf),
        "next_word": next_word,
        "definitions": {**DEFINITIONS, **BASELINE_DEFINITIONS},
        "provenance": {
            "metrics": prov,
            "tokenization": "medcap.data.tokenize (lowercase, punctuation stripped, numbers and abbreviations "
            "kept); captions filtered with the run's rules (max_words, long_captions)",
            "references_per_image": 1,
            "references": "each image's own caption (images sharing a group are not pooled); words outside "
            "the run's vocabulary stay as they are",
            "reference_oov_rate": (1 - in_vocab / n_words) if n_words else 0.0,
            "next_word_pairs": "caption of n words -> n + 1 (prefix, next word) pairs incl. <end>; "
            "out-of-vocabulary reference words are <unk> targets",
            "smoothing": {"corpus_bleu": prov["bleu1"]["smoothing"],
                          "sentence_bleu": prov["sentence_bleu"]["smoothing"]},
            "bootstrap": {"resamples": n_boot, "seed": seed, "unit": "image", "ci": "percentile 2.5-97.5",
                          "bleu": "recomputed from per-image n-gram statistics each resample",
                          "rouge_l/cider/meteor": "mean of per-image scores per resample (CIDEr keeps the "
                          "document frequencies of the full reference set)"},
            "decode": decode,
            "n_images": len(ev),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
        "skipped": skipped,
    }


def _write_predictions(path: Path, ev: EvalSet, refs: list, hyps: list[list[str]], per_image: dict[str, np.ndarray],
                       nn_caps: list[list[str]]) -> None:
    rows = []
    table = ev.table
    for i, (r, h, nn) in enumerate(zip(refs, hyps, nn_caps, strict=True)):
        sb = sentence_bleu_scores(r, h)
        row = {"image_id": table["image_id"].iloc[i], "image_path": table["image_path"].iloc[i],
               "references": json.dumps([" ".join(t) for t in r]), "prediction": " ".join(h),
               **{k: sb[k] for k in BLEU_WEIGHTS}, "rouge_l": float(per_image["rouge_l"][i]),
               "ref_len": len(r[0]), "pred_len": len(h), "nn_caption": " ".join(nn),
               "nn_bleu1": sentence_bleu_scores(r, nn)["bleu1"]}
        if "modality" in table.columns:
            row["modality"] = table["modality"].iloc[i]
        rows.append(row)
    columns = [*PREDICTION_COLUMNS, *(c for c in OPTIONAL_PREDICTION_COLUMNS if c in table.columns)]
    write_text(path, pd.DataFrame(rows, columns=columns).to_csv(index=False))


def _write_attention(path: Path, image_ids: list[str], caps: list[Any]) -> None:
    """One (n_words, 7, 7) float16 array per image id ((0, 7, 7) when the model has no grid attention).

    Written entry by entry (the .npz layout np.load reads), so any image id is a valid key.
    """
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for image_id, cap in zip(image_ids, caps, strict=True):
            att = np.zeros((0, 7, 7)) if cap.attention is None else cap.attention
            arr = np.asarray(att, dtype=np.float16).reshape(-1, 7, 7)  # (n_words, 7, 7)
            with zf.open(f"{image_id}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, arr, allow_pickle=False)
