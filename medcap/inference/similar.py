"""Similar cases: the training images closest to a query image in a run's global features, with captions.

What a clinician sees beside a generated caption: the k training images the model's image encoder finds
most alike (cosine similarity of the run's global CNN features, `medcap.base.neighbours.top_k`, the search
the 1-NN baseline and the caption memory use) and the captions the model learnt from them. Everything
comes from the run's own files: its feature store (config.json `feature_store.path`), its `split.json`
train ids and its dataset loaded with the run's caption rules (`load_captioned`). No TensorFlow and no Streamlit here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medcap.base.neighbours import top_k
from medcap.config import RunConfig
from medcap.data.captioned import load_captioned
from medcap.runs.folder import RunDir

log = logging.getLogger(__name__)

CASE_COLUMNS = ["rank", "image_id", "image_path", "caption", "similarity"]


@dataclass
class CaseMemory:
    """The training images of one run: ids, global features (N, D) float32, captions and image paths."""

    run_id: str
    dataset: str
    ids: list[str]
    feats: np.ndarray  # (N, D) float32
    captions: list[str]
    paths: list[str]

    def __len__(self) -> int:
        return len(self.ids)


def nearest(train_feats: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (k,) and cosine similarities (k,) of the k rows of `train_feats` closest to `query` (D,).

    Best first; ties go to the lower row.
    """
    if int(k) <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    idx, sims = top_k(train_feats, np.asarray(query, dtype=np.float32).reshape(1, -1), int(k))  # (1, k)
    return idx[0], sims[0]


def run_store(run_path: str | Path) -> Any:
    """The feature store a run was trained on (`medcap.features.FeatureStore`).

    FileNotFoundError / ValueError naming the run's config when it names no store or the store is gone.
    """
    from medcap.features import open_store

    run = RunDir(Path(run_path))
    info = run.read_config().get("feature_store")
    path = info.get("path") if isinstance(info, dict) else None
    where = f"{run.run_id}/{run.config.name}"  # relative: no machine path on the page
    if not path and isinstance(info, dict):  # the example bundle: the store was left out on purpose
        raise ValueError(f"{where}: this run ships without its feature store and training images (the example "
                         "bundle keeps only its test images), so there are no training cases to search. Build the "
                         "demo on Home: its runs have similar cases.")
    if not path:
        raise ValueError(f"{where} names no feature store (a run saved by an older medcap, or written by hand)")
    if not Path(path).is_dir():
        raise FileNotFoundError(f"{run.config}: its feature store {path} is missing (re-extract the features)")
    return open_store(Path(path))


def case_memory(run_path: str | Path) -> CaseMemory:
    """The run's training images (`split.json` train ids found in its store and its dataset) with captions.

    ValueError naming the file when the run has no settings, no train split or no usable training image.
    """
    run = RunDir(Path(run_path))
    cfg = run_settings(run.path)
    store = run_store(run.path)
    train = [str(i) for i in run.read_split().get("train", [])]
    if not train:
        raise ValueError(f"{run.split}: no training images listed")
    _, table, _ = load_captioned(cfg.dataset, max_words=cfg.max_words, long_captions=cfg.long_captions)
    caption_of = dict(zip(table["image_id"].astype(str), table["caption"].astype(str), strict=True))
    path_of = dict(zip(table["image_id"].astype(str), table["image_path"].astype(str), strict=True))
    ids, feats, _ = store.gather([i for i in train if i in caption_of], with_grid=False)  # (N, D)
    if not ids:
        raise ValueError(f"{run.path.name}: none of its {len(train)} training images is in both its feature "
                         f"store and its dataset {cfg.dataset}")
    log.info("%s: %d training images for similar cases", run.path.name, len(ids))
    return CaseMemory(run_id=run.path.name, dataset=cfg.dataset, ids=ids, feats=feats,
                      captions=[caption_of[i] for i in ids], paths=[path_of[i] for i in ids])


def run_settings(run_path: str | Path) -> RunConfig:
    """The run's settings (config.json `run`); ValueError naming the file when missing or malformed."""
    run = RunDir(Path(run_path))
    config = run.read_config()
    if "run" not in config:
        raise ValueError(f"{run.config}: missing or malformed")
    return RunConfig.from_dict(config["run"], source=str(run.config))


def run_images(run_path: str | Path) -> pd.DataFrame:
    """The images of a run's dataset with their reference captions (the run's caption rules), test first.

    Columns: image_id, image_path, caption, split ('test', 'val', 'train' from the run's split.json, then
    'other' for images the run did not use), ordered by split then by the split's own order.
    """
    cfg = run_settings(run_path)
    split = RunDir(Path(run_path)).read_split()
    _, table, _ = load_captioned(cfg.dataset, max_words=cfg.max_words, long_captions=cfg.long_captions)
    frame = table[["image_id", "image_path", "caption"]].copy()
    frame["image_id"] = frame["image_id"].astype(str)
    rank: dict[str, tuple[int, int]] = {}
    for s_rank, name in enumerate(("test", "val", "train")):
        for pos, image_id in enumerate(split.get(name, []) or []):
            rank.setdefault(str(image_id), (s_rank, pos))
    names = {0: "test", 1: "val", 2: "train", 3: "other"}
    keys = [rank.get(i, (3, n)) for n, i in enumerate(frame["image_id"])]
    frame["split"] = [names[k[0]] for k in keys]
    frame["_order"] = keys
    return frame.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)


def stored_features(run_path: str | Path, image_ids: list[str]) -> np.ndarray:
    """Global features (Q, D) float32 of images in the run's feature store; KeyError naming a missing id."""
    store = run_store(run_path)
    rows = [store.index_of(i) for i in image_ids]
    if not rows:
        return np.zeros((0, store.global_dim), dtype=np.float32)
    return np.asarray(store.global_feats()[np.asarray(rows, dtype=np.int64)], dtype=np.float32)  # (Q, D)


def similar_cases(memory: CaseMemory, query: np.ndarray, k: int = 5, exclude: str | None = None
                  ) -> pd.DataFrame:
    """The `k` training images closest to one query feature vector (D,), best first.

    Columns: rank (1 = closest), image_id, image_path, caption, similarity (cosine, -1..1). `exclude`
    drops that image id (a training image is its own closest case).
    """
    q = np.asarray(query, dtype=np.float32).reshape(1, -1)  # (1, D)
    if q.shape[1] != memory.feats.shape[1]:
        raise ValueError(f"query has {q.shape[1]} features, the run's store {memory.feats.shape[1]}")
    extra = 1 if exclude is not None else 0
    idx, sims = nearest(memory.feats, q[0], k + extra)  # (k',), (k',)
    out = []
    for j, s in zip(idx, sims, strict=True):
        if memory.ids[j] == exclude:
            continue
        out.append({"image_id": memory.ids[j], "image_path": memory.paths[j], "caption": memory.captions[j],
                    "similarity": float(s)})
    frame = pd.DataFrame(out[:k], columns=CASE_COLUMNS[1:])
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    return frame
