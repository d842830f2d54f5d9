"""Reopen a trained run from its own files and caption images with it.

`load_run(run)` rebuilds the model from the run folder (config, vocabulary, best weights); the model
takes RAW store features (its `feature_scale` is built in), so nothing here rescales. This layer
sits under `medcap.train`, `medcap.eval` and `medcap.cli` and imports only model, features, data and
the run-folder helpers (TensorFlow is imported by `load_run`, not by importing this module).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medcap.config import RunConfig
from medcap.runs.folder import RunDir
from medcap.runs.index import resolve_run

log = logging.getLogger(__name__)


@dataclass
class TrainingSet:
    """A run's training images that have features: ids, caption tokens, groups, global features (N, D)."""

    ids: list[str]
    tokens: list[list[str]]
    groups: list[str]
    global_feats: np.ndarray  # (Ntr, D) float32


@dataclass
class LoadedRun:
    """A trained run: config, vocabulary, model with its best weights, split and feature store."""

    run_dir: Path
    cfg: RunConfig
    vocab: Any  # medcap.data.vocab.Vocabulary
    model: Any  # medcap.model.CaptionModel (raw features in, feature scale built in)
    split: dict[str, list[str]]
    config: dict[str, Any]
    _store: Any = field(default=None, repr=False)
    _featurizer: Any = field(default=None, repr=False)
    _train: Any = field(default=None, repr=False)
    _dataset: Any = field(default=None, repr=False)

    @property
    def store(self) -> Any:
        """The run's feature store (opened on first use); raises FileNotFoundError when it is gone."""
        if self._store is None:
            from medcap.features import open_store

            info = self.config.get("feature_store") or {}
            if not info.get("path"):
                raise FileNotFoundError(f"{RunDir(self.run_dir).config}: names no feature store")
            path = Path(info["path"])
            if not path.exists():
                raise FileNotFoundError(f"{self.run_dir}: feature store {path} is missing (re-extract it with "
                                        f"`python -m medcap features --dataset {self.cfg.dataset}`)")
            self._store = open_store(path)
        return self._store

    def featurizer(self) -> Any:
        """The image featurizer matching the run's feature store (built once)."""
        if self._featurizer is None:
            from medcap.features import ImageFeaturizer

            try:
                meta = dict(self.store.meta)
            except FileNotFoundError:
                meta = {"backbone": self.cfg.backbone, **(self.config.get("feature_store") or {})}
            self._featurizer = ImageFeaturizer.from_meta(meta)
        return self._featurizer

    def captioned(self, long_captions: str | None = None) -> tuple[Any, Any]:
        """The run's dataset (read once per LoadedRun) with its caption rules: (LoadResult, kept table).

        `long_captions` overrides the run's policy ("drop": the paper's <= max_words rule for references).
        """
        from medcap.data import apply_caption_rules, load_records

        if self._dataset is None:
            self._dataset = load_records(self.cfg.dataset)
        table, _ = apply_caption_rules(self._dataset, max_words=self.cfg.max_words,
                                       long_captions=long_captions or self.cfg.long_captions)
        return self._dataset, table

    def training_set(self) -> TrainingSet:
        """The run's training images with features and captions (for baselines, retrieval and similar cases)."""
        if self._train is None:
            _, table = self.captioned()
            in_train = set(self.split.get("train", []))
            token_of = {i: list(t) for i, t in zip(table["image_id"].astype(str), table["tokens"], strict=True)}
            group_of = dict(zip(table["image_id"].astype(str), table["group"].astype(str), strict=True))
            ids, g, _ = self.store.gather([i for i in token_of if i in in_train], with_grid=False)  # (Ntr, D)
            if not ids:
                raise ValueError(f"{self.run_dir}: no training image with features")
            tokens, groups = [token_of[i] for i in ids], [group_of[i] for i in ids]
            self._train = TrainingSet(ids=ids, tokens=tokens, groups=groups, global_feats=g)
        return self._train

    def decode_options(self, **overrides: Any) -> Any:
        """The run's decoding settings (`DecodeOptions.from_config`), with `overrides` by RunConfig field name
        (a None value keeps the run's setting)."""
        from medcap.model import DecodeOptions

        return DecodeOptions.from_config(self.cfg).replace(**{k: v for k, v in overrides.items() if v is not None})

    def caption_memory(self, options: Any, query_global: np.ndarray, image_ids: list[str]) -> Any:
        """The caption memory of the query images (`image_ids[i]` has features `query_global[i]`): their
        options.memory_k nearest training captions; None when memory_k is 0. A repeated id keeps its first row."""
        from medcap.model.decoding import build_memory

        if options.memory_k <= 0:
            return None
        first: dict[str, int] = {}  # id -> its first row
        for i, image_id in enumerate(image_ids):
            first.setdefault(image_id, i)
        train = self.training_set()
        token_ids = [self.vocab.encode(t) for t in train.tokens]
        query = np.asarray(query_global, dtype=np.float32)[list(first.values())]  # (Q, D)
        return build_memory(train.global_feats, token_ids, query, list(first), k=options.memory_k,
                            temperature=options.memory_temperature)

    def decode(self, global_feats: np.ndarray, grid_feats: np.ndarray, options: Any = None,
               image_ids: list[str] | None = None, memory: Any = None) -> list[Any]:
        """Captions for raw store features: global (N, D), grid (N, 7, 7, 512) or (N, 49, 512).

        `options` (a DecodeOptions; default: the run's, `decode_options()`) say how. `image_ids` name the
        images (default: their row numbers); with memory_k > 0 each image decodes with the caption memory
        of its id: `memory` when given (e.g. built once for the images of an evaluation and reused for a
        permutation of them), else one built here for these images.
        """
        from medcap.model import decode

        opts = options if options is not None else self.decode_options()
        ids = [str(i) for i in (image_ids if image_ids is not None else range(len(global_feats)))]
        if memory is None:
            memory = self.caption_memory(opts, global_feats, ids)
        return decode(self.model, global_feats, grid_feats, self.vocab, opts, memory=memory, image_ids=ids)

    def caption_ids(self, image_ids: list[str], options: Any = None) -> list[Any]:
        """Captions for images of the run's feature store, by image id (`options`: as for `decode`)."""
        store = self.store
        rows = np.array([store.index_of(i) for i in image_ids], dtype=np.int64)
        if len(rows) == 0:
            return []
        order = np.argsort(rows)  # memmap reads in row order
        g = np.asarray(store.global_feats()[rows[order]], dtype=np.float32)  # (N, D)
        r = np.asarray(store.grid()[rows[order]], dtype=np.float32)  # (N, 7, 7, 512)
        caps = self.decode(g, r, options, image_ids=[image_ids[i] for i in order])
        out: list[Any] = [None] * len(rows)
        for k, pos in enumerate(order):
            out[pos] = caps[k]
        return out

    def caption_images(self, images: list[str | Path | Image.Image], options: Any = None) -> list[Any]:
        """Captions for image files or in-memory PIL images (features computed on the fly; `options`: as for
        `decode`)."""
        feats = [self.featurizer()(img) for img in images]
        if not feats:
            return []
        g = np.stack([f[0] for f in feats]).astype(np.float32)  # (N, D)
        r = np.stack([f[1] for f in feats]).astype(np.float32)  # (N, 7, 7, 512)
        return self.decode(g, r, options)


def weights_missing_text(run: RunDir) -> str:
    """What to say when a run has no best weights: which file is missing and what the user can do."""
    return (f"{run.run_id}: weights missing ({run.best_weights} not found; unfinished run, or its weights/ "
            f"were deleted). Resume it (`python -m medcap train --resume {run.run_id}`, or Resume run on the "
            f"Train page) or train it again.")


def load_run(run_dir: str | Path) -> LoadedRun:
    """Rebuild a run's model from config.json, vocab.json and weights/best.weights.h5.

    The model gets the run's `feature_scale` (config.json; 1 for runs saved without one).
    """
    from medcap.data.vocab import Vocabulary
    from medcap.model import build_model

    run = RunDir(resolve_run(run_dir))
    config = run.read_config()
    if "run" not in config:
        raise ValueError(f"{run.config}: missing or malformed")
    cfg = RunConfig.from_dict(config["run"], source=str(run.config))
    if not run.best_weights.is_file():
        raise FileNotFoundError(weights_missing_text(run))
    vocab = Vocabulary.load(run.vocab)
    store_info = config.get("feature_store") or {}
    global_dim = store_info.get("global_dim")
    if not global_dim:
        raise ValueError(f"{run.config}: feature_store.global_dim missing")
    model = build_model(cfg, vocab_size=len(vocab), global_dim=int(global_dim),
                        feature_scale=config.get("feature_scale"))
    model.load_weights(run.best_weights)
    return LoadedRun(run_dir=run.path, cfg=cfg, vocab=vocab, model=model, split=run.read_split(), config=config)
