"""Data side of a run: records -> captions -> split -> vocabulary -> feature store -> index arrays."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medcap.base.io import read_json, write_json
from medcap.config import RunConfig
from medcap.runs.folder import SPLITS, RunDir

log = logging.getLogger(__name__)


@dataclass
class RunData:
    """Everything the training loop needs, indexed by split name."""

    spec: str
    table: pd.DataFrame  # kept captions (with `tokens`), indexed by position
    split: dict[str, list[str]]  # split -> image ids (as made, before dropping featureless images)
    vocab: Any  # medcap.data.vocab.Vocabulary
    store: Any  # medcap.features.FeatureStore
    rows: dict[str, np.ndarray]  # split -> (n,) int64 store rows
    token_ids: dict[str, list[list[int]]]  # split -> encoded captions (no start/end)
    image_ids: dict[str, list[str]]  # split -> image ids aligned with rows / token_ids
    fingerprint: str
    max_len: int = 21  # prefix length: max_words + 1
    feature_scale: dict[str, float] | None = None  # {"global": s, "grid": s}: the model multiplies features by these

    def compute_feature_scale(self, sample: int = 512, seed: int = 0) -> dict[str, float]:
        """1 / RMS of the training images' global and grid features (a seeded sample of rows).

        Raw VGG activations reach the hundreds; unit-RMS inputs keep the dense layers and the
        attention's tanh out of saturation. Saved in config.json; the model applies it (`build_model`).
        """
        rows = np.unique(self.rows["train"])
        if len(rows) > sample:
            rows = np.sort(np.random.default_rng(seed).choice(rows, size=sample, replace=False))
        g = np.asarray(self.store.global_feats()[rows], dtype=np.float64)  # (S, D)
        r = np.asarray(self.store.grid()[rows], dtype=np.float64)  # (S, 7, 7, C)
        rms_g, rms_r = float(np.sqrt((g**2).mean())), float(np.sqrt((r**2).mean()))
        self.feature_scale = {"global": 1.0 / rms_g if rms_g > 0 else 1.0, "grid": 1.0 / rms_r if rms_r > 0 else 1.0}
        return self.feature_scale

    def n_pairs(self, split: str) -> int:
        """(prefix, next word) pairs of a split: a caption of n words gives n + 1 pairs (at most max_len)."""
        return int(sum(min(len(t) + 1, self.max_len) for t in self.token_ids[split]))

    def steps(self, split: str, batch_size: int) -> int:
        """Batches per epoch of a split."""
        return max(1, math.ceil(self.n_pairs(split) / batch_size))


def feature_store_summary(store: Any) -> dict[str, Any]:
    """What config.json records about the feature store (path + the meta fields that identify it)."""
    meta = dict(getattr(store, "meta", {}) or {})
    keep = ("backbone", "weights_source", "weights_sha256", "global_dim", "augment", "dataset", "n_images")
    return {"path": str(store.path), "n_images": len(store.ids), "global_dim": int(store.global_dim),
            **{k: meta[k] for k in keep if k in meta and k not in ("global_dim", "n_images")}}


def prepare_data(cfg: RunConfig, run_dir: Path, resume: bool = False) -> RunData:
    """Load and prepare a run's data; a fresh run writes split.json and vocab.json, a resumed one reads them."""
    from medcap.data import dataset_fingerprint, load_captioned, split_for_run
    from medcap.data.vocab import Vocabulary

    result, table, dropped = load_captioned(cfg.dataset, max_words=cfg.max_words, long_captions=cfg.long_captions)
    if table.empty:
        raise ValueError(f"{cfg.dataset}: no usable captions after preparation (dropped {dropped})")
    fingerprint = dataset_fingerprint(table)
    split_path, vocab_path = RunDir(run_dir).split, RunDir(run_dir).vocab
    if resume:
        split = read_json(split_path)
        vocab = Vocabulary.load(vocab_path)
    else:
        split = split_for_run(result, table, cfg)
        write_json(split_path, split)
        train_ids = set(split["train"])
        vocab = Vocabulary.build([t for i, t in zip(table["image_id"], table["tokens"], strict=True)
                                  if i in train_ids], min_count=cfg.min_count)
        vocab.save(vocab_path)
    log.info("split: %s; vocabulary: %d words", {k: len(v) for k, v in split.items()}, len(vocab))
    store = _feature_store(cfg, result)
    data = _index(cfg.dataset, table, split, vocab, store, fingerprint)
    data.max_len = cfg.max_words + 1
    return data


def _feature_store(cfg: RunConfig, result: Any) -> Any:
    """The run's features: `cfg.feature_store` (a pre-extracted store folder) or ensure_features."""
    from medcap.features import ensure_features, open_store

    given = cfg.feature_store
    if given:
        store = open_store(Path(given))
        log.info("using the given feature store %s (%d images)", store.path, len(store.ids))
        return store
    return ensure_features(result, backbone=cfg.backbone, augment=cfg.augment)


def _index(spec: str, table: pd.DataFrame, split: dict[str, list[str]], vocab: Any, store: Any,
           fingerprint: str) -> RunData:
    by_id = {i: toks for i, toks in zip(table["image_id"], table["tokens"], strict=True)}
    store_ids = set(store.ids)
    rows: dict[str, np.ndarray] = {}
    token_ids: dict[str, list[list[int]]] = {}
    image_ids: dict[str, list[str]] = {}
    for name in SPLITS:
        ids = [i for i in split.get(name, []) if i in by_id and i in store_ids]
        missing = len(split.get(name, [])) - len(ids)
        if missing:
            log.warning("%s split: %d images have no caption or no features and are left out", name, missing)
        image_ids[name] = ids
        rows[name] = np.array([store.index_of(i) for i in ids], dtype=np.int64)
        token_ids[name] = [list(vocab.encode(by_id[i])) for i in ids]
    if not image_ids["train"]:
        raise ValueError(f"{spec}: the training split is empty")
    return RunData(spec=spec, table=table, split=split, vocab=vocab, store=store, rows=rows,
                   token_ids=token_ids, image_ids=image_ids, fingerprint=fingerprint)
