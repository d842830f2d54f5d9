"""Which images an evaluation covers, their references and their features (no TensorFlow here).

References: each image's own full caption, tokenized by `medcap.data.tokenize`, for the images whose
caption has at most the run's `max_words` words (the paper's rule, whatever the run's long-caption
policy in training), one reference per image (images sharing a group are not pooled). Words outside the
run's vocabulary stay as they are in the references.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from medcap.config import RunConfig
from medcap.runs.folder import EVAL_SPLITS

log = logging.getLogger(__name__)


def resolve_split(split: str | None, own: bool, run_name: str, dataset: str,
                  include_training_images: bool = False) -> str:
    """The split to score: None means "test" on the run's own dataset and "all" on another one.

    "all" on the run's own dataset would score its training images (where 1-NN and the caption memory
    find the image itself): ValueError naming the run and dataset unless `include_training_images`.
    """
    split = split or ("test" if own else "all")
    if own and split == "all" and not include_training_images:
        raise ValueError(f"{dataset} is the dataset {run_name} was trained on: split 'all' would score its "
                         "training images (where 1-NN and the caption memory find the image itself). Evaluate "
                         "its test split, or pass --include-training-images to do it anyway.")
    return split


@dataclass
class EvalSet:
    """The evaluated images (table order), with references and features."""

    spec: str  # dataset spec
    name: str  # dataset short name
    split: str  # train | val | test | all
    basis: str  # in words: which images and why
    table: pd.DataFrame  # image_id, image_path, caption, tokens (+ modality, ...), one row per image
    global_feats: np.ndarray  # (N, D) float32
    grid_feats: np.ndarray  # (N, 7, 7, 512) float32
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> count

    @property
    def image_ids(self) -> list[str]:
        return self.table["image_id"].astype(str).tolist()

    @property
    def refs(self) -> list[list[list[str]]]:
        """One reference (the image's own caption tokens) per image."""
        return [[list(t)] for t in self.table["tokens"]]

    def __len__(self) -> int:
        return len(self.table)


def prepared_table(spec: str, cfg: RunConfig, references: bool = False) -> tuple[Any, pd.DataFrame]:
    """A dataset with the run's caption rules applied (`medcap.data.load_captioned`, as in training);
    returns (LoadResult, kept table with `tokens`).

    `references=True`: the paper's rule for references instead: captions over `max_words` words are left
    out (never truncated), whatever the run did with them in training.
    """
    from medcap.data import load_captioned

    policy = "drop" if references else cfg.long_captions
    result, table, _ = load_captioned(spec, max_words=cfg.max_words, long_captions=policy)
    return result, table


def same_dataset(a: Any, b: Any) -> bool:
    """Whether two LoadResults are the same dataset (same kind and root folder)."""
    return a.kind == b.kind and a.root.resolve() == b.root.resolve() and a.name == b.name


def select_ids(table: pd.DataFrame, split: str, run_split: dict[str, list[str]] | None) -> tuple[list[str], str]:
    """Image ids of `split`: the run's own split (run_split given), the dataset's own split, or all images."""
    if split not in EVAL_SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {EVAL_SPLITS}")
    kept = table["image_id"].astype(str).tolist()
    if split == "all":
        return kept, "all images of the dataset with a usable caption"
    if run_split is not None:
        wanted = set(run_split.get(split, []))
        ids = [i for i in kept if i in wanted]
        if not ids:
            raise ValueError(f"the run's '{split}' split is empty (e.g. an official split without it); "
                             f"choose another --split")
        return ids, f"the run's own '{split}' split"
    values = table["split"].fillna("").astype(str)
    ids = table.loc[values == split, "image_id"].astype(str).tolist()
    if not ids:
        raise ValueError(f"the dataset has no images in its own '{split}' split; use --split all")
    return ids, f"the dataset's own '{split}' split"


def gather(store: Any, ids: list[str], with_grid: bool = True) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """Features of the ids present in the store, in the given order: (ids kept, global (N, D),
    grid (N, 7, 7, C) or (0,) without `with_grid`, number of ids without features)."""
    kept, g, r = store.gather(ids, with_grid=with_grid)
    return kept, g, (r if r is not None else np.zeros(0, dtype=np.float32)), len(ids) - len(kept)


def build_eval_set(spec: str, table: pd.DataFrame, name: str, split: str,
                   run_split: dict[str, list[str]] | None, store: Any) -> EvalSet:
    """Select the images, drop those without features (counted), gather features and references."""
    ids, basis = select_ids(table, split, run_split)
    kept, g, r, missing = gather(store, ids)
    if not kept:
        raise ValueError(f"{spec}: none of the {len(ids)} selected images has features in {store.path}")
    if missing:
        log.warning("%s: %d of %d images have no features and are left out", spec, missing, len(ids))
    by_id = table.set_index(table["image_id"].astype(str))
    sub = by_id.loc[kept].reset_index(drop=True)
    return EvalSet(spec=spec, name=name, split=split, basis=basis, table=sub, global_feats=g, grid_feats=r,
                   left_out={"no_features": missing} if missing else {})
