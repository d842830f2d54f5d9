"""Train/val/test splits (paper section 4.4) by group or by image, and a leakage report."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from medcap.data.text import tokenize
from medcap.runs.folder import SPLITS

log = logging.getLogger(__name__)

# Protocol -> (train, val, test) fractions.
PROTOCOLS: dict[str, tuple[float, float, float]] = {
    "model-80": (0.8, 0.1, 0.1),
    "model-70": (0.7, 0.15, 0.15),
}
SPLIT_BY = ("group", "image")


def _assign_units(sizes: list[int], fractions: tuple[float, float, float]) -> list[int]:
    """Assign units (already shuffled) to splits 0/1/2 so image counts approach `fractions`.

    Walks the units in order; a unit goes to the split its image-count midpoint falls in.
    When there are at least three units, every split gets at least one.
    """
    total = float(sum(sizes))
    bounds = (fractions[0] * total, (fractions[0] + fractions[1]) * total)
    out: list[int] = []
    cum = 0.0
    for size in sizes:
        mid = cum + size / 2.0
        out.append(0 if mid < bounds[0] else 1 if mid < bounds[1] else 2)
        cum += size
    if len(sizes) >= 3:
        for target in (1, 2):
            if target in out:
                continue
            # take the last unit of the split holding the most units (keeps the others non-empty)
            donor = max((0, 1, 2), key=out.count)
            idx = len(out) - 1 - out[::-1].index(donor)
            out[idx] = target
    return out


def make_split(
    table: pd.DataFrame,
    protocol: str = "model-80",
    split_by: str = "group",
    seed: int = 42,
    test_fraction: float = PROTOCOLS["model-80"][2],
) -> dict[str, list[str]]:
    """Split the (caption-filtered) table into {"train", "val", "test"} lists of image ids.

    model-80 / model-70: seeded shuffle of groups (split_by="group": no group in two splits) or of
    images (split_by="image", the paper's literal split); sizes approximate the fractions in images.
    official: the table's own `split` column (ValueError when the dataset has none); a dataset without
    a test split gets one carved from its training groups (`carve_test`: seeded, `test_fraction` of the
    images, whole groups), never a silent fallback to validation.
    """
    if table.empty:
        raise ValueError("cannot split an empty table")
    ids = table["image_id"].astype(str).tolist()
    if protocol == "official":
        split = _official_split(table)
        if not split["test"] and split["train"]:
            try:
                split = carve_test(table, split, test_fraction, seed)
            except ValueError as exc:
                log.warning("official split has no test images and none can be carved: %s", exc)
        return split
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {[*PROTOCOLS, 'official']}")
    if split_by not in SPLIT_BY:
        raise ValueError(f"split_by must be one of {SPLIT_BY}, not {split_by!r}")
    units = table["group"].astype(str).tolist() if split_by == "group" else ids
    unique = sorted(set(units))
    rng = np.random.default_rng(seed)
    order = [unique[i] for i in rng.permutation(len(unique))]
    counts = pd.Series(units).value_counts()
    assignment = _assign_units([int(counts[u]) for u in order], PROTOCOLS[protocol])
    unit_split = dict(zip(order, assignment, strict=True))
    split: dict[str, list[str]] = {name: [] for name in SPLITS}
    for image_id, unit in zip(ids, units, strict=True):
        split[SPLITS[unit_split[unit]]].append(image_id)
    return split


def carve_test(table: pd.DataFrame, split: dict[str, list[str]], fraction: float, seed: int
               ) -> dict[str, list[str]]:
    """Move whole, seeded-randomly chosen training groups to an empty test split.

    The test split gets about `fraction` of all the split's images (at least one group, and at least one
    group stays in train). Groups never straddle train and test.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"test fraction must be in (0, 1), got {fraction}")
    group_of = dict(zip(table["image_id"].astype(str), table["group"].astype(str), strict=True))
    train = split["train"]
    units = sorted({group_of[i] for i in train})
    if len(units) < 2:
        raise ValueError("cannot carve a case-disjoint test split: the training split has fewer than 2 groups")
    order = [units[i] for i in np.random.default_rng(seed).permutation(len(units))]
    sizes = pd.Series([group_of[i] for i in train]).value_counts()
    goal = fraction * sum(len(v) for v in split.values())
    chosen: set[str] = set()
    cum = 0.0
    for unit in order[:-1]:  # the last group always stays in train
        if chosen and cum + sizes[unit] / 2.0 > goal:
            break
        chosen.add(unit)
        cum += float(sizes[unit])
    log.info("official split has no test images: carved %d images of %d training groups as test (seed %d)",
             int(cum), len(chosen), seed)
    return {"train": [i for i in train if group_of[i] not in chosen], "val": list(split["val"]),
            "test": [i for i in train if group_of[i] in chosen]}


def _official_split(table: pd.DataFrame) -> dict[str, list[str]]:
    values = table["split"].fillna("").astype(str)
    if not (values != "").any():
        raise ValueError("this dataset has no official split; use protocol model-80 or model-70")
    split = {name: table.loc[values == name, "image_id"].astype(str).tolist() for name in SPLITS}
    unlabelled = int((~values.isin(SPLITS)).sum())
    if unlabelled:
        log.warning("official split: %d images have no split label and are left out", unlabelled)
    for name in SPLITS:
        if not split[name]:
            log.warning("official split: the dataset's '%s' split is empty here", name)
    return split


def split_role(protocol: str, table_has_test: bool, scored: str, early_stopping_split: str = "val") -> str:
    """What a scored split is: 'test', 'test (carved from training cases)', 'validation (model selection)'."""
    if scored == early_stopping_split:
        return "validation (model selection)"
    if scored == "test":
        return "test (carved from training cases)" if protocol == "official" and not table_has_test else "test"
    return scored


def _caption_keys(table: pd.DataFrame) -> pd.Series:
    """Caption per image, normalised by tokenization (case and punctuation ignored)."""
    if "tokens" in table.columns:
        keys = table["tokens"].map(" ".join)
    else:
        keys = table["caption"].map(lambda c: " ".join(tokenize(c)))
    return pd.Series(keys.to_numpy(), index=table["image_id"].astype(str).to_numpy())


def leakage_report(table: pd.DataFrame, split: dict[str, list[str]]) -> dict:
    """How much the splits leak: groups in two splits, and test/val captions also found in train.

    Captions are compared after tokenization (so case and punctuation differences do not hide a repeat).
    Fractions are over images of the test (val) split; 0.0 when that split is empty.
    """
    groups = pd.Series(table["group"].astype(str).to_numpy(), index=table["image_id"].astype(str).to_numpy())
    captions = _caption_keys(table)
    group_sets = {name: set(groups.reindex(split.get(name, [])).dropna()) for name in SPLITS}
    train_caps = set(captions.reindex(split.get("train", [])).dropna())

    def in_train_fraction(name: str) -> float:
        caps = captions.reindex(split.get(name, [])).dropna()
        return float(caps.isin(train_caps).mean()) if len(caps) else 0.0

    return {
        "groups_shared_train_test": len(group_sets["train"] & group_sets["test"]),
        "groups_shared_train_val": len(group_sets["train"] & group_sets["val"]),
        "groups_shared_val_test": len(group_sets["val"] & group_sets["test"]),
        "test_captions_in_train_fraction": in_train_fraction("test"),
        "val_captions_in_train_fraction": in_train_fraction("val"),
    }


def _length_strata(table: pd.DataFrame, n_bins: int = 4) -> dict[str, int]:
    """Group -> caption-length stratum: quantile bin of the group's median caption word count."""
    words = table["caption"].fillna("").astype(str).map(lambda c: len(tokenize(c)))
    med = words.groupby(table["group"].astype(str).to_numpy()).median()
    if med.nunique() <= 1:
        return dict.fromkeys(med.index.astype(str), 0)
    bins = pd.qcut(med.rank(method="first"), q=min(n_bins, len(med)), labels=False)
    return {str(g): int(b) for g, b in bins.items()}


def kfold_splits(table: pd.DataFrame, k: int = 5, seed: int = 0, val_fraction: float = 0.1
                 ) -> list[dict[str, list[str]]]:
    """Case-disjoint k-fold cross-validation: k splits {"train", "val", "test"} of image ids.

    Groups are stratified by caption length (quartile of each group's median caption length) and dealt
    to folds, within each stratum in seeded random order, to the fold with the fewest images so far;
    fold i is the test split of split i, its validation split is carved from the remaining groups
    (`val_fraction` of the images, whole groups, seeded) and the rest is training. Every image is tested
    exactly once; no group is in two parts of one split.
    """
    if k < 2:
        raise ValueError(f"k-fold needs k >= 2, got {k}")
    groups = table["group"].astype(str)
    unique = sorted(set(groups))
    if len(unique) < k + 2:
        raise ValueError(f"{k}-fold cross-validation needs at least {k + 2} groups, the table has {len(unique)}")
    strata = _length_strata(table)
    sizes = groups.value_counts()
    rng = np.random.default_rng(seed)
    fold_of: dict[str, int] = {}
    load = np.zeros(k, dtype=np.int64)
    for stratum in sorted(set(strata.values())):
        members = [g for g in unique if strata[g] == stratum]
        in_stratum = np.zeros(k, dtype=np.int64)
        for i in rng.permutation(len(members)):
            g = members[i]
            fold = int(np.lexsort((np.arange(k), load, in_stratum))[0])  # fewest in stratum, then overall
            fold_of[g] = fold
            in_stratum[fold] += int(sizes[g])
            load[fold] += int(sizes[g])
    ids = table["image_id"].astype(str).tolist()
    out = []
    for fold in range(k):
        test = [i for i, g in zip(ids, groups, strict=True) if fold_of[g] == fold]
        rest = table[[fold_of[g] != fold for g in groups]]
        inner = carve_test(rest, {"train": rest["image_id"].astype(str).tolist(), "val": [], "test": []},
                           val_fraction, seed * 1000 + fold)
        out.append({"train": inner["train"], "val": inner["test"], "test": test})
    return out
