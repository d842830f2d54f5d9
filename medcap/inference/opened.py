"""Open a run from its own files (the one place that does), and caption images with it.

`open_run(run)` -> `OpenedRun`: the run's settings (`run_config`, the one reader of config.json's `run`),
split, vocabulary, feature store, dataset with the run's caption rules and training set, each read on
first use and without TensorFlow: similar cases, evaluation and training's resume read a run through it.
`load_run(run)` -> `LoadedRun` (an OpenedRun) also rebuilds the model (best weights) and decodes; the model
takes RAW store features (its `feature_scale` is built in), so nothing here rescales. This layer sits under
`medcap.train`, `medcap.eval` and `medcap.cli` and imports only model, features, data and the run-folder
helpers (TensorFlow is imported by `load_run`, not by importing this module).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medcap.base.io import read_json
from medcap.config import RunConfig
from medcap.runs.folder import RunDir
from medcap.runs.index import resolve_run

log = logging.getLogger(__name__)


@dataclass
class TrainingSet:
    """A run's training images that have features: ids, captions (tokens and text), groups, image paths and
    global features (N, D), in the order of the run's caption table."""

    ids: list[str]
    tokens: list[list[str]]
    groups: list[str]
    global_feats: np.ndarray  # (Ntr, D) float32
    captions: list[str]
    paths: list[str]


def run_config(run_dir: str | Path) -> RunConfig:
    """A run folder's settings (config.json `run`); ValueError naming the file when missing or malformed."""
    run = RunDir(Path(run_dir))
    return _settings(run, run.read_config())


def _settings(run: RunDir, config: dict[str, Any]) -> RunConfig:
    if "run" not in config:
        raise ValueError(f"{run.config}: missing or malformed")
    return RunConfig.from_dict(config["run"], source=str(run.config))


class OpenedRun:
    """A run's own files, each read on first use: settings (read when opened), split, vocabulary, feature
    store, dataset with the run's caption rules, training set, image featurizer. No TensorFlow (the
    featurizer imports it when built); `LoadedRun` adds the model.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.files = RunDir(Path(run_dir))
        self.run_dir = self.files.path
        self.config: dict[str, Any] = self.files.read_config()
        self.cfg = _settings(self.files, self.config)
        self._split: dict[str, list[str]] | None = None
        self._vocab: Any = None
        self._store: Any = None
        self._featurizer: Any = None
        self._train: TrainingSet | None = None
        self._dataset: Any = None
        self._facts: Any = None  # FactPredictor, False when the run has none

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.run_dir})"

    @property
    def split(self) -> dict[str, list[str]]:
        """split.json: split name -> image ids ({} when absent)."""
        if self._split is None:
            self._split = self.files.read_split()
        return self._split

    @property
    def vocab(self) -> Any:
        """The run's vocabulary (`medcap.data.vocab.Vocabulary`, vocab.json)."""
        if self._vocab is None:
            from medcap.data.vocab import Vocabulary

            self._vocab = Vocabulary.load(self.files.vocab)
        return self._vocab

    @property
    def store(self) -> Any:
        """The feature store the run was trained on (config.json `feature_store.path`), opened on first use.

        ValueError naming the config when it names no store; FileNotFoundError when the store is gone.
        """
        if self._store is None:
            from medcap.features import open_store

            info = self.config.get("feature_store")
            path = info.get("path") if isinstance(info, dict) else None
            where = f"{self.files.run_id}/{self.files.config.name}"  # relative: no machine path on a page
            if not path and isinstance(info, dict):  # the example bundle: the store was left out on purpose
                raise ValueError(f"{where}: this run ships without its feature store and training images (the "
                                 "example bundle keeps only its test images), so there are no training cases to "
                                 "search. Build the demo on Home: its runs have similar cases.")
            if not path:
                raise ValueError(f"{where} names no feature store (a run saved by an older medcap, or written by hand)")
            if not Path(path).is_dir():
                raise FileNotFoundError(f"{self.run_dir}: feature store {path} is missing (re-extract it with "
                                        f"`python -m medcap features --dataset {self.cfg.dataset}`)")
            self._store = open_store(Path(path))
        return self._store

    def attach_store(self, path: str | Path) -> None:
        """Use the feature store at `path` for a run that ships without one (the example bundle's runs).

        ValueError naming the store when its backbone, weights, feature size or image count differ from
        what the run's config.json records of the store it was trained on.
        """
        from medcap.features import open_store

        store = open_store(Path(path))
        info = self.config.get("feature_store") or {}
        seen = {"backbone": store.meta.get("backbone"), "weights_sha256": store.meta.get("weights_sha256"),
                "global_dim": store.global_dim, "n_images": len(store.ids)}
        wrong = {k: (v, info[k]) for k, v in seen.items() if info.get(k) is not None and info[k] != v}
        if wrong:
            raise ValueError(f"{path}: not the store {self.files.run_id} was trained on "
                             f"({', '.join(f'{k} {a} != {b}' for k, (a, b) in wrong.items())})")
        self._store = store

    def featurizer(self) -> Any:
        """The image featurizer matching the run's feature store (built once)."""
        if self._featurizer is None:
            from medcap.features import ImageFeaturizer

            try:
                meta = dict(self.store.meta)
            except (FileNotFoundError, ValueError):
                meta = {"backbone": self.cfg.backbone, **(self.config.get("feature_store") or {})}
            self._featurizer = ImageFeaturizer.from_meta(meta)
        return self._featurizer

    def captioned(self, long_captions: str | None = None) -> tuple[Any, Any]:
        """The run's dataset (read once per run object) with its caption rules: (LoadResult, kept table).

        `long_captions` overrides the run's policy ("drop": the paper's <= max_words rule for references).
        """
        from medcap.data import apply_caption_rules, load_records

        if self._dataset is None:
            self._dataset = load_records(self.cfg.dataset)
        table, _ = apply_caption_rules(self._dataset, max_words=self.cfg.max_words,
                                       long_captions=long_captions or self.cfg.long_captions)
        return self._dataset, table

    def training_set(self) -> TrainingSet:
        """The run's training images with features and captions (baselines, retrieval and similar cases).

        ValueError naming the file when split.json lists no training image, or when none of them is in both
        the run's feature store and its dataset.
        """
        if self._train is None:
            store = self.store
            train = self.split.get("train") or []
            if not train:
                raise ValueError(f"{self.files.split}: no training images listed")
            _, table = self.captioned()
            in_train = {str(i) for i in train}
            image_ids = table["image_id"].astype(str)
            token_of = {i: list(t) for i, t in zip(image_ids, table["tokens"], strict=True)}
            group_of = dict(zip(image_ids, table["group"].astype(str), strict=True))
            caption_of = dict(zip(image_ids, table["caption"].astype(str), strict=True))
            path_of = dict(zip(image_ids, table["image_path"].astype(str), strict=True))
            ids, g, _ = store.gather([i for i in token_of if i in in_train], with_grid=False)  # (Ntr, D)
            if not ids:
                raise ValueError(f"{self.run_dir.name}: none of its {len(train)} training images is in both its "
                                 f"feature store and its dataset {self.cfg.dataset}")
            self._train = TrainingSet(ids=ids, tokens=[token_of[i] for i in ids], groups=[group_of[i] for i in ids],
                                      global_feats=g, captions=[caption_of[i] for i in ids],
                                      paths=[path_of[i] for i in ids])
        return self._train


def open_run(run: str | Path) -> OpenedRun:
    """Open a run by folder or id: its settings now, everything else on first use (no TensorFlow)."""
    return OpenedRun(resolve_run(run))


class LoadedRun(OpenedRun):
    """A trained run: `OpenedRun`'s files plus the model with its best weights, and decoding with it."""

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__(run_dir)
        if not self.files.best_weights.is_file():
            raise FileNotFoundError(weights_missing_text(self.files))
        self.model = _build_model(self)

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

    def fact_predictor(self) -> Any:
        """The run's fact predictors (facts.json; `medcap.model.facts_head.FactPredictor`), None without."""
        if self._facts is None:
            from medcap.model.facts_head import FactPredictor

            path = self.files.facts
            self._facts = FactPredictor.from_json(read_json(path), str(path)) if path.is_file() else False
        return self._facts or None

    def predict_facts(self, global_feats: np.ndarray, grid_feats: np.ndarray) -> list[dict[str, Any]] | None:
        """Per image {fact: (value, probability, sure)} from raw store features; None when the run has no facts."""
        from medcap.model.facts_head import fact_inputs

        predictor = self.fact_predictor()
        if predictor is None or not len(global_feats):
            return None
        return predictor.predict(fact_inputs(global_feats, grid_feats, predictor.inputs))

    def decode(self, global_feats: np.ndarray, grid_feats: np.ndarray, options: Any = None,
               image_ids: list[str] | None = None, memory: Any = None) -> list[Any]:
        """Captions for raw store features: global (N, D), grid (N, 7, 7, 512) or (N, 49, 512).

        `options` (a DecodeOptions; default: the run's, `decode_options()`) say how. `image_ids` name the
        images (default: their row numbers); with memory_k > 0 each image decodes with the caption memory
        of its id: `memory` when given (e.g. built once for the images of an evaluation and reused for a
        permutation of them), else one built here for these images. A run with fact predictors gives each
        caption its findings line (`Caption.facts`); with facts_constrain no word contradicts a sure fact
        (and with facts_silent none states a fact the line is not sure of).
        """
        from medcap.model import decode
        from medcap.model.decoding.facts import fact_bans
        from medcap.model.facts_head import sure_facts

        opts = options if options is not None else self.decode_options()
        ids = [str(i) for i in (image_ids if image_ids is not None else range(len(global_feats)))]
        if memory is None:
            memory = self.caption_memory(opts, global_feats, ids)
        facts = self.predict_facts(global_feats, grid_feats)
        bans = None
        if facts and opts.facts_constrain:
            unsure = [[f for f, (_, _, ok) in fs.items() if not ok] for fs in facts] if opts.facts_silent else None
            bans = fact_bans(self.vocab, [sure_facts(f) for f in facts], unsure)
        caps = decode(self.model, global_feats, grid_feats, self.vocab, opts, memory=memory, image_ids=ids,
                      fact_bans=bans)
        for cap, fact in zip(caps, facts or [None] * len(caps), strict=True):
            cap.facts = fact
        return caps

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
    return LoadedRun(resolve_run(run_dir))


def _build_model(run: OpenedRun) -> Any:
    """The run's CaptionModel with its best weights (imports TensorFlow)."""
    from medcap.model import build_model

    vocab = run.vocab
    global_dim = (run.config.get("feature_store") or {}).get("global_dim")
    if not global_dim:
        raise ValueError(f"{run.files.config}: feature_store.global_dim missing")
    model = build_model(run.cfg, vocab_size=len(vocab), global_dim=int(global_dim),
                        feature_scale=run.config.get("feature_scale"))
    model.load_weights(run.files.best_weights)
    return model
