"""Split protocols, determinism, group disjointness and the leakage report."""

from __future__ import annotations

import pandas as pd
import pytest

from medcap.data import leakage_report, make_split


def _grouped(n_groups: int = 100, per_group: int = 3) -> pd.DataFrame:
    rows = []
    for g in range(n_groups):
        for k in range(per_group):
            rows.append({"image_id": f"g{g}_{k}", "image_path": "x", "caption": f"finding {g}",
                         "group": f"g{g}", "split": ""})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("protocol", "fracs"), [("model-80", (0.8, 0.1, 0.1)), ("model-70", (0.7, 0.15, 0.15))])
@pytest.mark.parametrize("split_by", ["group", "image"])
def test_split_proportions_and_coverage(protocol: str, fracs: tuple, split_by: str) -> None:
    table = _grouped()
    split = make_split(table, protocol=protocol, split_by=split_by, seed=1)
    n = len(table)
    all_ids = split["train"] + split["val"] + split["test"]
    assert sorted(all_ids) == sorted(table["image_id"])  # each image exactly once
    for name, frac in zip(("train", "val", "test"), fracs, strict=True):
        assert abs(len(split[name]) - frac * n) <= 3  # within one group of the target


def test_split_is_seeded_and_reproducible() -> None:
    table = _grouped()
    a = make_split(table, seed=7)
    assert a == make_split(table, seed=7)
    assert a != make_split(table, seed=8)
    # row order does not change the split
    reversed_split = make_split(table.iloc[::-1].reset_index(drop=True), seed=7)
    assert {k: set(v) for k, v in reversed_split.items()} == {k: set(v) for k, v in a.items()}


def test_group_split_keeps_groups_whole() -> None:
    table = _grouped()
    split = make_split(table, split_by="group", seed=3)
    report = leakage_report(table, split)
    assert report["groups_shared_train_test"] == 0
    assert report["groups_shared_train_val"] == 0
    assert report["groups_shared_val_test"] == 0
    assert report["test_captions_in_train_fraction"] == 0.0


def test_image_split_leaks_on_repeated_captions() -> None:
    table = _grouped(n_groups=50, per_group=6)
    report = leakage_report(table, make_split(table, split_by="image", seed=3))
    assert report["groups_shared_train_test"] > 20
    assert report["test_captions_in_train_fraction"] > 0.9


def test_small_table_gets_nonempty_splits() -> None:
    table = _grouped(n_groups=3, per_group=1)
    split = make_split(table, seed=0)
    assert all(len(split[k]) == 1 for k in ("train", "val", "test"))


def test_official_split_and_missing_official() -> None:
    table = _grouped(n_groups=4, per_group=1)
    with pytest.raises(ValueError, match="no official split"):
        make_split(table, protocol="official")
    table["split"] = ["train", "train", "val", "test"]
    assert make_split(table, protocol="official") == {"train": ["g0_0", "g1_0"], "val": ["g2_0"], "test": ["g3_0"]}


def test_bad_protocol_and_split_by() -> None:
    table = _grouped(n_groups=4)
    with pytest.raises(ValueError, match="protocol"):
        make_split(table, protocol="model-90")
    with pytest.raises(ValueError, match="split_by"):
        make_split(table, split_by="patient")


def test_leakage_numbers_on_known_table() -> None:
    table = pd.DataFrame({
        "image_id": ["a", "b", "c", "d", "e", "f"],
        "image_path": ["x"] * 6,
        "caption": ["Mass in liver.", "mass in LIVER", "normal brain", "small nodule", "normal brain", "new one"],
        "group": ["p1", "p1", "p2", "p3", "p4", "p2"],
        "split": [""] * 6,
    })
    split = {"train": ["a", "c"], "val": ["f"], "test": ["b", "d", "e"]}
    report = leakage_report(table, split)
    assert report["groups_shared_train_test"] == 1  # p1
    assert report["groups_shared_train_val"] == 1  # p2
    assert report["groups_shared_val_test"] == 0
    assert report["test_captions_in_train_fraction"] == pytest.approx(2 / 3)  # b (case/punct) and e
    assert report["val_captions_in_train_fraction"] == 0.0


def test_official_split_without_test_carves_whole_training_groups() -> None:
    import pandas as pd

    from medcap.data.splits import make_split, split_role

    rows = [(f"i{k}", f"g{k // 3}", "train") for k in range(60)] + [(f"v{k}", f"h{k}", "val") for k in range(6)]
    table = pd.DataFrame(rows, columns=["image_id", "group", "split"])
    split = make_split(table, protocol="official", seed=3, test_fraction=0.1)
    assert split["val"] == [f"v{k}" for k in range(6)]
    assert 3 <= len(split["test"]) <= 9 and len(split["test"]) % 3 == 0  # whole groups of 3, ~10% of 66
    group = dict(zip(table["image_id"], table["group"], strict=True))
    assert not {group[i] for i in split["test"]} & {group[i] for i in split["train"]}
    assert sorted(split["train"] + split["test"]) == sorted(f"i{k}" for k in range(60))
    assert make_split(table, protocol="official", seed=3, test_fraction=0.1) == split  # seeded
    assert make_split(table, protocol="official", seed=4, test_fraction=0.1)["test"] != split["test"]
    assert split_role("official", False, "test") == "test (carved from training cases)"
    assert split_role("model-80", True, "val") == "validation (model selection)"
    assert split_role("model-80", True, "test") == "test"


def test_kfold_splits_are_case_disjoint_balanced_and_cover_every_image_once() -> None:
    import numpy as np
    import pandas as pd

    from medcap.data.splits import kfold_splits

    rng = np.random.default_rng(0)
    rows = []
    for g in range(60):
        n_words = int(rng.integers(2, 40))
        for j in range(int(rng.integers(1, 5))):
            rows.append((f"g{g}-{j}", f"g{g}", " ".join(["w"] * n_words)))
    table = pd.DataFrame(rows, columns=["image_id", "group", "caption"])
    folds = kfold_splits(table, k=5, seed=1)
    assert len(folds) == 5
    tested = [i for f in folds for i in f["test"]]
    assert sorted(tested) == sorted(table["image_id"])  # each image tested exactly once
    group = dict(zip(table["image_id"], table["group"], strict=True))
    for f in folds:
        parts = [{group[i] for i in f[name]} for name in ("train", "val", "test")]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert sorted(f["train"] + f["val"] + f["test"]) == sorted(table["image_id"])
        assert 0.05 * len(table) <= len(f["val"]) <= 0.2 * len(table)
    sizes = [len(f["test"]) for f in folds]
    assert max(sizes) - min(sizes) <= 4  # dealt to the lightest fold: within one group of 1-4 images
    length = dict(zip(table["image_id"], table["caption"].str.count("w"), strict=True))
    means = [np.mean([length[i] for i in f["test"]]) for f in folds]
    assert max(means) - min(means) < 6  # similar caption-length mix (overall range 2-39 words)
    assert kfold_splits(table, k=5, seed=1) == folds
    assert kfold_splits(table, k=5, seed=2) != folds
