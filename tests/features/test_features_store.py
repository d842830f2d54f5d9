"""Feature store mechanics with a tiny stand-in backbone: values, reuse, fingerprint, resume, bad images."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from medcap.features import ensure_features, open_store
from medcap.features.augment import AugmentSettings
from medcap.features.writer import PROGRESS_FILE
from tests.support.features import make_result, rgb, tiny_backbone, write_colour_images

COLOURS = {
    "e": (250, 0, 0),
    "a": (0, 128, 0),
    "c": (10, 20, 30),
    "b": (255, 255, 255),
    "d": (0, 0, 200),
}


def test_store_values_layout_and_reuse(tmp_path):
    paths = write_colour_images(tmp_path / "img", COLOURS)
    calls: list[int] = []
    store = ensure_features(make_result(paths), backbone=tiny_backbone(calls), batch_size=2, progress=False)
    assert store.ids == ["a", "b", "c", "d", "e"]  # sorted by id, not table order
    assert store.reused is False
    assert calls == [2, 2, 1]
    glob, grid = store.global_feats(), store.grid()
    assert glob.dtype == np.float16 and glob.shape == (5, 3)
    assert grid.dtype == np.float16 and grid.shape == (5, 7, 7, 3)
    assert isinstance(glob, np.memmap)
    for image_id, colour in COLOURS.items():
        row = store.index_of(image_id)
        np.testing.assert_allclose(glob[row], rgb(colour), atol=1e-3)
        np.testing.assert_allclose(grid[row, 3, 5], rgb(colour), atol=1e-3)
    names = sorted(p.name for p in store.path.iterdir())
    assert names == [".lock", "global.npy", "grid.npy", "ids.json", "meta.json"]
    assert store.meta["complete"] is True and store.meta["skipped"] == []
    assert store.meta["n_images"] == 5 and store.meta["augment"] == {"k": 0}
    assert store.path.name.startswith("toy-tiny-")
    assert store.aug_global() is None and store.aug_grid() is None

    again = ensure_features(make_result(paths), backbone=tiny_backbone(calls), batch_size=2, progress=False)
    assert again.reused is True
    assert again.path == store.path
    assert calls == [2, 2, 1]  # nothing extracted the second time
    with pytest.raises(KeyError, match="'zz'"):
        again.index_of("zz")


def test_modified_image_changes_fingerprint(tmp_path):
    paths = write_colour_images(tmp_path / "img", COLOURS)
    first = ensure_features(make_result(paths), backbone=tiny_backbone(), progress=False)
    Image.new("RGB", (40, 40), (100, 100, 100)).save(paths["c"])
    st = os.stat(paths["c"])
    os.utime(paths["c"], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second = ensure_features(make_result(paths), backbone=tiny_backbone(), progress=False)
    assert second.reused is False
    assert second.path != first.path
    np.testing.assert_allclose(second.global_feats()[second.index_of("c")], rgb((100, 100, 100)), atol=1e-3)
    np.testing.assert_allclose(first.global_feats()[first.index_of("c")], rgb((10, 20, 30)), atol=1e-3)


class InterruptError(Exception):
    pass


def test_resume_after_interruption(tmp_path):
    paths = write_colour_images(tmp_path / "img", COLOURS)
    result = make_result(paths)

    def stop_after_first(rows_done: int) -> None:
        raise InterruptError(rows_done)

    calls: list[int] = []
    with pytest.raises(InterruptError):
        ensure_features(result, backbone=tiny_backbone(calls), batch_size=2, progress=False,
                        on_batch=stop_after_first)
    folders = list((tmp_path / "artifacts" / "features").iterdir())
    assert len(folders) == 1
    folder = folders[0]
    assert not (folder / "meta.json").exists()
    assert json_rows_done(folder) == 2
    with pytest.raises(FileNotFoundError, match="not a finished feature store"):
        open_store(folder)

    calls.clear()
    store = ensure_features(result, backbone=tiny_backbone(calls), batch_size=2, progress=False)
    assert calls == [2, 1]  # only rows 2..4 extracted again
    assert store.meta["extraction"]["resumed_from_row"] == 2
    assert not (folder / PROGRESS_FILE).exists()
    for image_id, colour in COLOURS.items():
        np.testing.assert_allclose(store.global_feats()[store.index_of(image_id)], rgb(colour), atol=1e-3)


def json_rows_done(folder) -> int:
    from medcap.base import io

    return int(io.read_json(folder / PROGRESS_FILE)["rows_done"])


def test_bad_images_are_skipped_and_listed(tmp_path):
    folder = tmp_path / "img"
    paths = write_colour_images(folder, {"good1": (200, 0, 0), "good2": (0, 0, 90), "good3": (7, 7, 7)})
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    text = folder / "text.png"
    text.write_text("not an image at all")
    truncated = folder / "trunc.png"
    data = paths["good1"].read_bytes()
    big = folder / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(big)
    truncated.write_bytes(big.read_bytes()[: len(data) // 2])
    big.unlink()
    missing = folder / "gone.png"
    bad = {"empty": empty, "text": text, "trunc": truncated, "gone": missing}
    store = ensure_features(make_result({**paths, **bad}), backbone=tiny_backbone(), batch_size=3, progress=False)
    assert store.ids == ["good1", "good2", "good3"]
    assert store.global_feats().shape == (3, 3)
    skipped = {s["image_id"]: s for s in store.skipped}
    assert sorted(skipped) == ["empty", "gone", "text", "trunc"]
    for image_id, path in bad.items():
        assert str(path) in skipped[image_id]["reason"]
    assert "empty" in skipped["empty"]["reason"]
    assert "not found" in skipped["gone"]["reason"]
    assert store.meta["n_candidates"] == 7 and store.meta["n_images"] == 3
    for image_id, colour in {"good1": (200, 0, 0), "good2": (0, 0, 90), "good3": (7, 7, 7)}.items():
        np.testing.assert_allclose(store.global_feats()[store.index_of(image_id)], rgb(colour), atol=1e-3)
    assert store.grid().shape == (3, 7, 7, 3)


def test_sixteen_bit_and_rgba_images(tmp_path):
    folder = tmp_path / "img"
    folder.mkdir()
    ramp = np.tile(np.linspace(1000, 3000, 40), (40, 1)).astype(np.uint16)  # (40, 40)
    Image.fromarray(ramp).save(folder / "deep.png")
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 255  # red, but fully transparent on the left half
    rgba[:, 20:, 3] = 255
    Image.fromarray(rgba, mode="RGBA").save(folder / "alpha.png")
    store = ensure_features(make_result({"deep": folder / "deep.png", "alpha": folder / "alpha.png"}),
                            backbone=tiny_backbone(), progress=False)
    assert store.skipped == []
    deep = store.grid()[store.index_of("deep")].astype(np.float32)  # (7, 7, 3)
    assert deep[:, 0].mean() < 0.1 and deep[:, 6].mean() > 0.9  # range-scaled 16-bit ramp
    alpha = store.grid()[store.index_of("alpha")].astype(np.float32)
    np.testing.assert_allclose(alpha[:, 0], 0.0, atol=1e-3)  # transparent -> black
    np.testing.assert_allclose(alpha[:, 6], [[1.0, 0.0, 0.0]] * 7, atol=1e-3)


def test_augmented_views_are_seeded_and_stored(tmp_path, monkeypatch):
    folder = tmp_path / "img"
    folder.mkdir()
    rng = np.random.default_rng(1)
    paths = {}
    for image_id in ("x", "y", "z"):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(folder / f"{image_id}.png")
        paths[image_id] = folder / f"{image_id}.png"
    result = make_result(paths)
    plain = ensure_features(result, backbone=tiny_backbone(), progress=False)
    store = ensure_features(result, backbone=tiny_backbone(), augment=2, progress=False)
    assert store.path != plain.path  # augmentation is part of the fingerprint
    assert store.aug_global().shape == (3, 2, 3)
    assert store.aug_grid().shape == (3, 2, 7, 7, 3)
    assert store.meta["augment"]["k"] == 2 and store.meta["augment"]["hflip"] is False
    np.testing.assert_array_equal(store.grid(), plain.grid())  # the plain view is unchanged
    diff = np.abs(store.aug_grid()[:, 0].astype(np.float32) - store.grid().astype(np.float32)).mean()
    assert diff > 0.01
    assert not np.array_equal(store.aug_grid()[:, 0], store.aug_grid()[:, 1])

    other = tmp_path / "again"
    other.mkdir()
    monkeypatch.setenv("MEDCAP_ARTIFACTS", str(other))
    again = ensure_features(result, backbone=tiny_backbone(), augment=2, batch_size=1, progress=False,
                            augment_settings=AugmentSettings())
    assert again.reused is False
    np.testing.assert_array_equal(again.aug_grid(), store.aug_grid())  # seeded: same views, any batch size


def test_bad_arguments(tmp_path):
    paths = write_colour_images(tmp_path / "img", {"a": (1, 2, 3)})
    with pytest.raises(ValueError, match="batch_size"):
        ensure_features(make_result(paths), backbone=tiny_backbone(), batch_size=0)
    with pytest.raises(ValueError, match=r"unknown backbone 'alexnet'.*vgg16"):
        ensure_features(make_result(paths), backbone="alexnet")


def test_damaged_work_file_restarts_cleanly(tmp_path):
    paths = write_colour_images(tmp_path / "img", COLOURS)
    result = make_result(paths)

    def stop(rows_done: int) -> None:
        raise InterruptError(rows_done)

    with pytest.raises(InterruptError):
        ensure_features(result, backbone=tiny_backbone(), batch_size=2, progress=False, on_batch=stop)
    folder = next((tmp_path / "artifacts" / "features").iterdir())
    (folder / "work_grid.npy").write_bytes(b"\x93NUMPY garbage")
    calls: list[int] = []
    store = ensure_features(result, backbone=tiny_backbone(calls), batch_size=2, progress=False)
    assert calls == [2, 2, 1]  # started over from row 0
    assert store.meta["extraction"]["resumed_from_row"] == 0
    for image_id, colour in COLOURS.items():
        np.testing.assert_allclose(store.grid()[store.index_of(image_id), 0, 0], rgb(colour), atol=1e-3)


def test_precision_is_part_of_the_fingerprint(tmp_path):
    import dataclasses

    paths = write_colour_images(tmp_path / "img", {"a": (9, 9, 9), "b": (90, 90, 90)})
    plain = ensure_features(make_result(paths), backbone=tiny_backbone(), progress=False)
    half = ensure_features(make_result(paths), backbone=dataclasses.replace(tiny_backbone(), precision="bfloat16"),
                           progress=False)
    assert half.path != plain.path and half.reused is False
    assert plain.meta["precision"] == "float32" and half.meta["precision"] == "bfloat16"


def test_store_writer_resumes_by_fingerprint_and_drops_failed_rows(tmp_path):
    from medcap.base import io
    from medcap.features import write_store

    folder = tmp_path / "store"
    shapes = {"global": (4, 2), "grid": (4, 7, 7, 1)}
    rows = np.arange(4, dtype=np.float32)[:, None] * np.ones((4, 2), np.float32)  # row r = [r, r]
    with pytest.raises(InterruptError), write_store(folder, shapes, resume_fingerprint="fp1") as w:
        assert w.rows_done == 0
        w.write_rows(0, {"global": rows[:2], "grid": np.ones((2, 7, 7, 1))}, failed={1: "unreadable"})
        raise InterruptError
    assert sorted(p.name for p in folder.iterdir()) == [PROGRESS_FILE, "work_global.npy", "work_grid.npy"]
    assert io.read_json(folder / PROGRESS_FILE) == {"fingerprint": "fp1", "n_rows": 4, "rows_done": 2,
                                                   "failed": {"1": "unreadable"}}
    with pytest.raises(InterruptError), write_store(folder, shapes, resume_fingerprint="other") as w:
        assert w.rows_done == 0 and w.failed == {}  # another fingerprint starts over...
        raise InterruptError
    with pytest.raises(InterruptError), write_store(folder, shapes, resume_fingerprint="fp1") as w:
        assert w.rows_done == 0  # ...and its progress replaced fp1's
        w.write_rows(0, {"global": rows[:2], "grid": np.ones((2, 7, 7, 1))}, failed={1: "unreadable"})
        raise InterruptError
    with write_store(folder, shapes, resume_fingerprint="fp1") as w:
        assert w.rows_done == 2 and w.failed == {1: "unreadable"}
        w.write_rows(2, {"global": rows[2:], "grid": np.full((2, 7, 7, 1), 2.0)})
        assert w.kept_rows().tolist() == [0, 2, 3]
        with pytest.raises(ValueError, match="4 ids for arrays of \\[4\\] rows less 1 failed"):
            w.finish(["a", "b", "c", "d"], {"global_dim": 2})
        w.finish(["a", "c", "d"], {"global_dim": 2})
    assert sorted(p.name for p in folder.iterdir()) == ["global.npy", "grid.npy", "ids.json", "meta.json"]
    store = open_store(folder)
    assert store.ids == ["a", "c", "d"] and store.meta["complete"] is True
    np.testing.assert_array_equal(store.global_feats(), [[0, 0], [2, 2], [3, 3]])
    np.testing.assert_array_equal(store.grid()[:, 0, 0, 0], [1, 2, 2])


def test_all_or_nothing_writer_drops_failed_rows_too(tmp_path):
    from medcap.features import write_store

    folder = tmp_path / "store"
    with write_store(folder, {"global": (3, 1), "grid": (3, 7, 7, 1)}) as w:
        w.write_rows(0, {"global": np.array([[5.0], [6.0], [7.0]]), "grid": np.zeros((3, 7, 7, 1))},
                     failed={0: "gone"})
        w.finish(["y", "z"], {"global_dim": 1})
    store = open_store(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["global.npy", "grid.npy", "ids.json", "meta.json"]
    assert store.ids == ["y", "z"]
    np.testing.assert_array_equal(store.global_feats()[:, 0], [6, 7])
