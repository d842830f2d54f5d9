"""Reopen a trained run from its own files and caption images with it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
from PIL import Image

from medcap.config import RunConfig
from medcap.io import read_json
from medcap.rundir import RunDir
from medcap.runs import read_config, resolve_run

log = logging.getLogger(__name__)


@dataclass
class LoadedRun:
    """A trained run: config, vocabulary, model with its best weights, split and feature store."""

    run_dir: Path
    cfg: RunConfig
    vocab: Any  # medcap.data.vocab.Vocabulary
    model: keras.Model
    split: dict[str, list[str]]
    config: dict[str, Any]
    _store: Any = field(default=None, repr=False)
    _featurizer: Any = field(default=None, repr=False)

    @property
    def store(self) -> Any:
        """The run's feature store (opened on first use); raises FileNotFoundError when it is gone."""
        if self._store is None:
            from medcap.features import open_store

            info = self.config.get("feature_store") or {}
            if not info.get("path"):
                raise FileNotFoundError(f"{self.run_dir / 'config.json'}: names no feature store")
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

    def model_inputs(self, global_feats: np.ndarray, grid_feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw store features -> what the model was trained on: the run's `feature_scale` applied.

        Every caller that feeds `self.model` (decoding, next-word metrics) must go through here.
        """
        scale = self.config.get("feature_scale") or {}
        g = np.asarray(global_feats, dtype=np.float32) * np.float32(scale.get("global", 1.0))  # (N, D)
        r = np.asarray(grid_feats, dtype=np.float32).reshape(len(g), 49, -1)  # (N, 49, 512)
        return g, r * np.float32(scale.get("grid", 1.0))  # (N, D), (N, 49, 512)

    def decode(self, global_feats: np.ndarray, grid_feats: np.ndarray, beam: int = 1) -> list[Any]:
        """Captions for raw store features: global (N, D), grid (N, 7, 7, 512) or (N, 49, 512).

        The run's `feature_scale` (config.json) is applied here, as in training.
        """
        from medcap.model import beam_decode, greedy_decode

        g, r = self.model_inputs(global_feats, grid_feats)
        if beam <= 1:
            return greedy_decode(self.model, g, r, self.vocab, max_words=self.cfg.max_words)
        return beam_decode(self.model, g, r, self.vocab, max_words=self.cfg.max_words, beam=beam)

    def caption_ids(self, image_ids: list[str], beam: int = 1) -> list[Any]:
        """Captions for images of the run's feature store, by image id."""
        store = self.store
        rows = np.array([store.index_of(i) for i in image_ids], dtype=np.int64)
        if len(rows) == 0:
            return []
        order = np.argsort(rows)  # memmap reads in row order
        g = np.asarray(store.global_feats()[rows[order]], dtype=np.float32)  # (N, D)
        r = np.asarray(store.grid()[rows[order]], dtype=np.float32)  # (N, 7, 7, 512)
        caps = self.decode(g, r, beam=beam)
        out: list[Any] = [None] * len(rows)
        for k, pos in enumerate(order):
            out[pos] = caps[k]
        return out

    def caption_images(self, images: list[str | Path | Image.Image], beam: int = 1) -> list[Any]:
        """Captions for image files or in-memory PIL images (features computed on the fly)."""
        feats = [self.featurizer()(img) for img in images]
        if not feats:
            return []
        g = np.stack([f[0] for f in feats]).astype(np.float32)  # (N, D)
        r = np.stack([f[1] for f in feats]).astype(np.float32)  # (N, 7, 7, 512)
        return self.decode(g, r, beam=beam)


def load_run(run_dir: str | Path) -> LoadedRun:
    """Rebuild a run's model from its config, vocabulary and best weights (`RunDir`)."""
    from medcap.data.vocab import Vocabulary
    from medcap.model import build_model

    run_dir = resolve_run(run_dir)
    config = read_config(run_dir)
    if "run" not in config:
        raise ValueError(f"{RunDir(run_dir).config}: missing or malformed")
    cfg = RunConfig.from_dict(config["run"])
    weights = RunDir(run_dir).best_weights
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: no trained weights (run unfinished or failed?)")
    vocab = Vocabulary.load(RunDir(run_dir).vocab)
    store_info = config.get("feature_store") or {}
    global_dim = store_info.get("global_dim")
    if not global_dim:
        raise ValueError(f"{RunDir(run_dir).config}: feature_store.global_dim missing")
    model = build_model(cfg, vocab_size=len(vocab), global_dim=int(global_dim), max_len=cfg.max_words + 1)
    model.load_weights(weights)
    split_path = RunDir(run_dir).split
    split = read_json(split_path) if split_path.is_file() else {}
    return LoadedRun(run_dir=run_dir, cfg=cfg, vocab=vocab, model=model, split=split, config=config)
