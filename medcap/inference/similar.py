"""Similar cases: the training images closest to a query image in a run's global features, with captions.

What a clinician sees beside a generated caption: the k training images the model's image encoder finds
most alike (cosine similarity of the run's global CNN features, `medcap.base.neighbours.top_k`, the search
the 1-NN baseline and the caption memory use) and the captions the model learnt from them. Everything
comes from the run's own files, opened by `medcap.inference.opened.open_run`: its feature store, its
`split.json` train ids and its dataset with the run's caption rules (the run's training set). An example
run of the pre-built bundle ships without its store and dataset: its cases come from the bundle's own
index (`medcap.runs.cases`), the same features stored as float16. No TensorFlow and no Streamlit here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medcap.base.neighbours import top_k
from medcap.data.confined import check_run_dataset
from medcap.inference.opened import OpenedRun, open_run
from medcap.runs.cases import BundleCases, bundle_of, read_cases

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


def _bundled_cases(run: OpenedRun) -> BundleCases | None:
    """The example bundle's cases index for a run that ships without its feature store, else None."""
    info = run.config.get("feature_store")
    if not isinstance(info, dict) or info.get("path"):
        return None
    root = bundle_of(run.run_dir)
    return read_cases(root) if root is not None else None


def _bundle_memory(run: OpenedRun, cases: BundleCases) -> CaseMemory:
    """An example run's training images from its bundle's cases index, in split.json's order."""
    known = {i for i, p in zip(cases.ids, cases.paths, strict=True) if p}
    train = list(dict.fromkeys(str(i) for i in run.split.get("train", [])))
    keep = [i for i in train if i in known]
    if not keep:
        raise ValueError(f"{run.files.run_id}: none of its {len(train)} training images is in the example "
                         "bundle's cases index")
    rows = cases.rows(keep)
    log.info("%s: %d training images for similar cases (example bundle)", run.run_dir.name, len(keep))
    return CaseMemory(run_id=run.run_dir.name, dataset=run.cfg.dataset, ids=keep, feats=cases.feats[rows],
                      captions=[cases.captions[r] for r in rows], paths=[cases.paths[r] for r in rows])


def case_memory(run_path: str | Path) -> CaseMemory:
    """The run's training images (`OpenedRun.training_set`: split.json train ids found in its store and its
    dataset) with captions and image paths, in split.json's order. An example run shipped without its store
    reads them from its bundle's cases index (thumbnails as image paths).

    ValueError naming the file when the run has no settings, no feature store, no train split or no usable
    training image, or when its dataset may not be read here (`medcap.data.confined.check_run_dataset`);
    FileNotFoundError when its feature store is gone.
    """
    run = open_run(Path(run_path))
    cases = _bundled_cases(run)
    if cases is not None:
        return _bundle_memory(run, cases)
    _ = run.store  # a missing feature store is reported before the dataset check
    check_run_dataset(run.cfg.dataset)  # inside the data folders, and never generated here
    train = run.training_set()
    position: dict[str, int] = {}
    for n, image_id in enumerate(run.split.get("train", [])):
        position.setdefault(str(image_id), n)
    order = sorted(range(len(train.ids)), key=lambda k: position[train.ids[k]])  # ties go to the earlier image
    log.info("%s: %d training images for similar cases", run.run_dir.name, len(order))
    return CaseMemory(run_id=run.run_dir.name, dataset=run.cfg.dataset, ids=[train.ids[k] for k in order],
                      feats=train.global_feats[order], captions=[train.captions[k] for k in order],
                      paths=[train.paths[k] for k in order])


def run_images(run_path: str | Path) -> pd.DataFrame:
    """The images of a run's dataset with their reference captions (the run's caption rules), test first.

    Columns: image_id, image_path, caption, split ('test', 'val', 'train' from the run's split.json, then
    'other' for images the run did not use), ordered by split then by the split's own order.
    """
    run = open_run(Path(run_path))
    check_run_dataset(run.cfg.dataset)  # inside the data folders, and never generated here
    split = run.split
    _, table = run.captioned()
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
    """Global features (Q, D) float32 of images in the run's feature store (an example run: its bundle's cases
    index); KeyError naming a missing id."""
    run = open_run(Path(run_path))
    cases = _bundled_cases(run)
    if cases is not None:
        return cases.feats[cases.rows(list(image_ids))]  # (Q, D)
    store = run.store
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
    out = []
    if k + extra > 0:
        idx, sims = top_k(memory.feats, q, k + extra)  # (1, k'), (1, k'): best first, ties to the lower row
        for j, s in zip(idx[0], sims[0], strict=True):
            if memory.ids[j] == exclude:
                continue
            out.append({"image_id": memory.ids[j], "image_path": memory.paths[j], "caption": memory.captions[j],
                        "similarity": float(s)})
    frame = pd.DataFrame(out[:k], columns=CASE_COLUMNS[1:])
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    return frame
