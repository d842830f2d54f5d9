"""Sharded feature extraction and merging: disjoint deterministic shards, exact merge, TF_CONFIG, CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

import medcap.data
import medcap.features.extract as extract
from medcap.cli import main
from medcap.data import load_records
from medcap.data.records import LoadResult
from medcap.features import ensure_features, merge_stores, open_store, write_store
from medcap.features.shard import parse_shard, shard_bounds, shard_from_tf_config
from medcap.features.writer import PROGRESS_FILE
from tests.support.features import make_result, tiny_backbone, write_colour_images

ARRAY_NAMES = ("global", "grid", "aug_global", "aug_grid")


def synthetic_with_a_bad_image(tmp_path, n: int = 13) -> LoadResult:
    """The synthetic set (n images) plus one unreadable file, which every extraction must skip."""
    result = load_records(f"synthetic:{n}")
    bad = tmp_path / "syn-00007b.png"
    bad.write_bytes(b"not a png")
    row = {"image_id": "syn-00007b", "image_path": str(bad), "caption": "x", "group": "g", "split": ""}
    result.table = pd.concat([result.table, pd.DataFrame([row])], ignore_index=True)
    return result


def arrays_of(store) -> dict[str, np.ndarray]:
    return {name: np.array(arr) for name in ARRAY_NAMES if (arr := store.array(name)) is not None}


def test_shard_bounds_are_disjoint_deterministic_and_cover_every_row():
    for n_rows in range(0, 23):
        for count in range(1, 8):
            bounds = [shard_bounds(n_rows, i, count) for i in range(count)]
            rows = [r for lo, hi in bounds for r in range(lo, hi)]
            assert rows == list(range(n_rows))
            sizes = [hi - lo for lo, hi in bounds]
            assert max(sizes) - min(sizes) <= 1
    assert shard_bounds(10, 1, 3) == (3, 6)
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "-1/3", "1", "a/b", "1/0"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def test_shard_from_tf_config_task_index():
    cluster = {"worker": ["h1:2222", "h2:2222", "h3:2222"]}
    env = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 2}})}
    assert shard_from_tf_config(env) == (2, 3)
    assert parse_shard("tf-config", env) == (2, 3)
    with_chief = {"cluster": {"chief": ["c:1"], **cluster}, "task": {"type": "worker", "index": 0}}
    assert shard_from_tf_config({"TF_CONFIG": json.dumps(with_chief)}) == (1, 4)
    with_chief["task"] = {"type": "chief", "index": 0}
    assert shard_from_tf_config({"TF_CONFIG": json.dumps(with_chief)}) == (0, 4)
    with pytest.raises(ValueError, match="not set"):
        shard_from_tf_config({})
    with pytest.raises(ValueError, match="not a chief or worker"):
        shard_from_tf_config({"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "ps", "index": 0}})})
    with pytest.raises(ValueError, match="not a chief or worker"):
        shard_from_tf_config({"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 3}})})
    with pytest.raises(ValueError, match="TF_CONFIG: expected"):
        shard_from_tf_config({"TF_CONFIG": "{not json"})


def test_shard_merge_equals_unsharded_extraction_on_synthetic(tmp_path):
    result = synthetic_with_a_bad_image(tmp_path)
    whole = ensure_features(result, backbone=tiny_backbone(), batch_size=4, progress=False)
    want_arrays, want_ids, want_meta, whole_path = arrays_of(whole), list(whole.ids), dict(whole.meta), whole.path
    assert len(want_ids) == 13 and [s["image_id"] for s in whole.skipped] == ["syn-00007b"]
    shutil.rmtree(whole_path)

    shards = [ensure_features(result, backbone=tiny_backbone(), batch_size=3, progress=False, shard=(i, 3))
              for i in range(3)]
    ids = [s.ids for s in shards]
    assert [len(i) for i in ids] == [4, 4, 5]  # 14 candidates: rows 0-3, 4-8 (syn-00007b skipped), 9-13
    assert [i for part in ids for i in part] == want_ids  # disjoint, in the unsharded order
    assert shards[1].meta["shard"] == {"index": 1, "count": 3, "rows": [4, 9], "n_candidates_total": 14}
    assert len({s.path for s in shards} | {whole_path}) == 4

    merged = merge_stores([s.path for s in reversed(shards)])  # any order
    assert merged.path == whole_path  # where an unsharded extraction puts it
    assert merged.ids == want_ids
    got = arrays_of(merged)
    assert sorted(got) == sorted(want_arrays) == ["global", "grid"]
    for name, want in want_arrays.items():
        assert got[name].dtype == np.float16 and np.array_equal(got[name], want), name
    meta = dict(merged.meta)
    assert [s["index"] for s in meta.pop("shards")] == [0, 1, 2]
    assert list(meta) == list(want_meta)  # same fields (and order) apart from the shard provenance
    for key in set(want_meta) - {"extraction"}:
        assert meta[key] == want_meta[key], key
    assert meta["extraction"]["images_extracted"] == 14

    calls: list[int] = []  # training/evaluation reuse the merged store: no extraction at all
    again = ensure_features(result, backbone=tiny_backbone(calls), progress=False)
    assert again.reused and again.path == whole_path and calls == []
    assert merge_stores([s.path for s in shards]).reused  # merging again reuses it


def test_shard_extraction_resumes_after_interruption(tmp_path):
    colours = {f"i{k:02d}": (10 * k, 5 * k, 200 - 9 * k) for k in range(10)}
    result = make_result(write_colour_images(tmp_path / "img", colours))

    def stop(rows_done: int) -> None:
        raise KeyboardInterrupt(rows_done)

    with pytest.raises(KeyboardInterrupt):
        ensure_features(result, backbone=tiny_backbone(), batch_size=2, progress=False, shard=(1, 2), on_batch=stop)
    calls: list[int] = []
    store = ensure_features(result, backbone=tiny_backbone(calls), batch_size=2, progress=False, shard=(1, 2))
    assert calls == [2, 1]  # rows 2..4 of the shard only
    assert store.meta["extraction"]["resumed_from_row"] == 2
    assert store.ids == [f"i{k:02d}" for k in range(5, 10)]
    assert not (store.path / PROGRESS_FILE).exists()
    first = ensure_features(result, backbone=tiny_backbone(), batch_size=2, progress=False, shard=(0, 2))
    merged = merge_stores([first.path, store.path])
    assert merged.ids == sorted(colours)
    assert np.array_equal(np.array(merged.global_feats()[5:]), np.array(store.global_feats()))


def test_shard_merge_refuses_incomplete_or_mixed_sets(tmp_path):
    colours = {f"k{k}": (20 * k, 0, 0) for k in range(6)}
    result = make_result(write_colour_images(tmp_path / "img", colours))
    parts = [ensure_features(result, backbone=tiny_backbone(), progress=False, shard=(i, 3)) for i in range(3)]
    with pytest.raises(ValueError, match=r"shard\(s\) \[1\] of 3 missing"):
        merge_stores([parts[0].path, parts[2].path])
    with pytest.raises(ValueError, match="more than once"):
        merge_stores([parts[0].path, parts[1].path, parts[1].path, parts[2].path])
    other = make_result(write_colour_images(tmp_path / "img2", {**colours, "k9": (1, 2, 3)}))
    foreign = ensure_features(other, backbone=tiny_backbone(), progress=False, shard=(1, 3))
    with pytest.raises(ValueError, match="fingerprint differs"):
        merge_stores([parts[0].path, foreign.path, parts[2].path])
    whole = ensure_features(result, backbone=tiny_backbone(), progress=False)
    with pytest.raises(ValueError, match="not a shard store"):
        merge_stores([whole.path])
    with pytest.raises(ValueError, match="is empty"):
        ensure_features(result, backbone=tiny_backbone(), progress=False, shard=(0, 7))


def test_shard_store_writer_is_all_or_nothing(tmp_path):
    folder = tmp_path / "store"
    shapes = {"global": (3, 2), "grid": (3, 7, 7, 1)}
    with pytest.raises(RuntimeError), write_store(folder, shapes) as w:
        w.write("global", 0, np.ones((3, 2)))
        raise RuntimeError("boom")
    assert list(folder.iterdir()) == []
    with write_store(folder, shapes) as w:
        w.write("global", 1, np.full((2, 2), 0.5))
        w.finish(["a", "b", "c"], {"global_dim": 2, "n_images": 3})
    store = open_store(folder)
    assert store.ids == ["a", "b", "c"] and store.meta["complete"] is True
    assert np.array_equal(np.array(store.global_feats()), np.array([[0, 0], [0.5, 0.5], [0.5, 0.5]], np.float16))
    with pytest.raises(FileExistsError), write_store(folder, shapes):
        pass
    with pytest.raises(ValueError, match="2 ids"), write_store(tmp_path / "s2", shapes) as w:
        w.finish(["a", "b"], {})


def test_cli_shard_tf_config_and_merge(tmp_path, monkeypatch, capsys):
    colours = {f"c{k}": (0, 30 * k, 0) for k in range(5)}
    paths = write_colour_images(tmp_path / "img", colours)
    monkeypatch.setattr(medcap.data, "load_records", lambda spec, allow_outside_root=False: make_result(paths))
    monkeypatch.setattr(extract, "get_backbone", lambda name, precision="float32": tiny_backbone())
    assert main(["features", "--dataset", "toy:x", "--shard", "0/2", "--json", "--no-progress"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["count"] == 2 and first["shard"]["rows"] == [0, 2]
    tf_config = {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert main(["features", "--dataset", "toy:x", "--shard", "tf-config", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "shard:          1/2 (rows 2-4 of 5)" in text
    second = text.split("store:", 1)[1].split("\n", 1)[0].strip()
    out = tmp_path / "merged"
    assert main(["features", "--merge", first["store"], second, "--out", str(out), "--json"]) == 0
    merged = json.loads(capsys.readouterr().out)
    assert merged["count"] == 5 and merged["shards"] == 2 and merged["store"] == str(out)
    assert open_store(out).ids == sorted(colours)
    assert main(["features", "--merge", str(out), "--dataset", "toy:x"]) == 2  # clean usage error
