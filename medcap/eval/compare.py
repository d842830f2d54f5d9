"""`compare_runs`: paired bootstrap comparison of two runs on the same images.

Which images: with `dataset`, that dataset (its own `split`, default all images); otherwise the
runs' dataset: their shared test split when both test splits are identical, else the images that
neither run trained or validated on (not in either run's train or val split).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from medcap.eval import bootstrap as bs
from medcap.eval.evalset import gather, prepared_table, same_dataset, select_ids
from medcap.eval.evaluate import parse_decode
from medcap.eval.paired import paired_comparison

log = logging.getLogger(__name__)


def common_images(split_a: dict[str, list[str]], split_b: dict[str, list[str]], kept: list[str]
                  ) -> tuple[list[str], str]:
    """Images to compare two runs of the same dataset on, and the reason in words."""
    test_a, test_b = split_a.get("test", []), split_b.get("test", [])
    if test_a and set(test_a) == set(test_b):
        kept_set = set(kept)
        return [i for i in test_a if i in kept_set], "the runs' shared test split"
    seen = set()
    for split in (split_a, split_b):
        seen |= set(split.get("train", [])) | set(split.get("val", []))
    ids = [i for i in kept if i not in seen]
    basis = ("the runs' test splits differ: images neither run trained or validated on "
             "(not in either run's train or val split)")
    if not ids:
        raise ValueError("the runs' test splits differ and no image is outside both runs' train/val splits; "
                         "compare on another dataset with --dataset")
    return ids, basis


def _store_for(loaded: Any, result: Any, own: bool, feature_store: str | os.PathLike[str] | None) -> Any:
    from medcap.features import ensure_features, open_store

    if own:
        return loaded.store
    if feature_store is not None:
        return open_store(Path(feature_store))
    return ensure_features(result, backbone=loaded.cfg.backbone)


def compare_runs(run_a: str | os.PathLike[str], run_b: str | os.PathLike[str], dataset: str | None = None,
                 split: str | None = None, decode: str | None = None, *,
                 feature_store: str | os.PathLike[str] | None = None, n_boot: int = bs.N_RESAMPLES,
                 seed: int = bs.SEED, with_meteor: bool = True, loaded: tuple[Any, Any] | None = None
                 ) -> dict[str, Any]:
    """Paired comparison of run B against run A on the same images and references.

    For each corpus metric: A, B, B - A, the 95% paired-bootstrap CI of B - A (resampling cases: the
    `group` column) and the share of resamples where B > A. References follow the paper's rule (captions
    of at most max_words words, full). Each run decodes with its own settings unless `decode` is given.
    `loaded` passes already loaded runs (tests).
    """
    beam = parse_decode(decode) if decode is not None else None
    if loaded is None:
        from medcap.inference.opened import load_run

        loaded = (load_run(run_a), load_run(run_b))
    la, lb = loaded
    res_a, table_a = prepared_table(la.cfg.dataset, la.cfg, references=True)
    res_b, _ = prepared_table(lb.cfg.dataset, lb.cfg, references=True)
    if dataset is None:
        if not same_dataset(res_a, res_b):
            raise ValueError(f"the runs were trained on different datasets ({la.cfg.dataset} vs {lb.cfg.dataset}); "
                             "choose the images with --dataset")
        result, table, own_a, own_b = res_a, table_a, True, True
        if split is None:
            ids, basis = common_images(la.split, lb.split, table["image_id"].astype(str).tolist())
        elif split == "all":
            ids, basis = select_ids(table, split, None)
        else:
            if set(la.split.get(split, [])) != set(lb.split.get(split, [])):
                raise ValueError(f"the runs' '{split}' splits differ; leave --split out to compare on the images "
                                 "neither run trained on")
            ids, basis = select_ids(table, split, la.split)
    else:
        result, table = prepared_table(dataset, la.cfg, references=True)
        own_a, own_b = same_dataset(result, res_a), same_dataset(result, res_b)
        ids, basis = select_ids(table, split or "all", None)
        basis = f"the given dataset {dataset}: {basis}"

    store_a = _store_for(la, result, own_a, feature_store)
    store_b = _store_for(lb, result, own_b, feature_store)  # a store of the same backbone is reused
    ids_a = gather(store_a, ids, with_grid=False)[0]
    have_b = set(gather(store_b, ids_a, with_grid=False)[0])
    ids = [i for i in ids_a if i in have_b]
    if not ids:
        raise ValueError(f"{result.spec}: no image to compare on (no features in both runs' stores)")
    _, g_a, r_a, _ = gather(store_a, ids)
    _, g_b, r_b, _ = gather(store_b, ids)
    log.info("comparing on %d images: %s", len(ids), basis)

    tokens = dict(zip(table["image_id"].astype(str), table["tokens"], strict=True))
    refs = [[list(tokens[i])] for i in ids]
    hyps_a = [list(c.words) for c in la.decode(g_a, r_a, la.decode_options(beam_size=beam), image_ids=ids)]
    hyps_b = [list(c.words) for c in lb.decode(g_b, r_b, lb.decode_options(beam_size=beam), image_ids=ids)]
    group_of = dict(zip(table["image_id"].astype(str), table["group"].astype(str), strict=True))
    groups = [group_of[i] for i in ids]
    out = paired_comparison(refs, hyps_a, hyps_b, groups, n_boot=n_boot, seed=seed, with_meteor=with_meteor)
    return {
        "run_a": Path(la.run_dir).name,
        "run_b": Path(lb.run_dir).name,
        "preset_a": la.cfg.preset,
        "preset_b": lb.cfg.preset,
        "dataset": result.spec,
        "images": basis,
        "decode": decode or "each run's own settings",
        **out,
    }
