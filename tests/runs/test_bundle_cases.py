"""The example bundle's similar-cases index (`medcap.runs.cases`): written, read back, and searched by example runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medcap.inference import similar
from medcap.runs import bundle, cases
from tests.conftest import PROJECT_ROOT

SHIPPED_RUN = PROJECT_ROOT / "examples" / "demo" / "runs" / "example-model-80"


def _image(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((256, 256), value, np.uint8)).save(path)
    return path


def _fake_bundle(tmp_path: Path, train: list[str], test: list[str]) -> Path:
    """A bundle folder with one example run (null feature store) and a cases index over its images."""
    if not SHIPPED_RUN.is_dir():
        pytest.skip("examples/demo not present")
    root = tmp_path / "demo"
    run = root / "runs" / "example-model-80"
    run.mkdir(parents=True)
    shutil.copyfile(SHIPPED_RUN / "config.json", run / "config.json")
    (run / "split.json").write_text(json.dumps({"train": train, "val": [], "test": test}))
    ids = train + test
    feats = np.zeros((len(ids), 4), np.float32)
    for n in range(len(ids)):
        feats[n, n % 4] = 1.0 + n  # (N, 4): image n points along axis n % 4
    sources = {i: _image(tmp_path / "src" / f"{i}.png", 40 * n) for n, i in enumerate(train)}
    bundle.export_cases(root, ids, [f"caption of {i}" for i in ids], sources, feats)
    (root / bundle.MANIFEST).write_text("{}")
    return root


def test_cases_round_trip_with_float16_features_and_small_thumbnails(tmp_path: Path) -> None:
    root = _fake_bundle(tmp_path, ["a", "b", "c"], ["q"])
    got = cases.read_cases(root)
    assert got.ids == ["a", "b", "c", "q"] and got.captions[1] == "caption of b"
    np.testing.assert_array_equal(got.feats[3], [0, 0, 0, 4])
    assert got.feats.dtype == np.float32
    with np.load(root / "cases" / "features.npz") as npz:
        assert npz["global"].dtype == np.float16
    assert got.paths[3] == ""  # a query-only image has no thumbnail
    with Image.open(got.paths[0]) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) == cases.THUMB_SIDE and thumb.mode == "L"
    np.testing.assert_array_equal(got.rows(["q", "a"]), [3, 0])
    with pytest.raises(KeyError, match="no features for zz"):
        got.rows(["zz"])
    assert cases.bundle_of(root / "runs" / "example-model-80") == root
    assert cases.bundle_of(tmp_path / "elsewhere" / "runs" / "r") is None
    (root / bundle.MANIFEST).unlink()
    assert cases.bundle_of(root / "runs" / "example-model-80") is None  # a cases/ folder alone is no bundle


def test_a_malformed_index_is_refused_naming_the_file(tmp_path: Path) -> None:
    root = _fake_bundle(tmp_path, ["a", "b"], ["q"])
    index = root / "cases" / "index.csv"
    index.write_text(index.read_text().replace("a.jpg", "../../../etc.jpg"))
    with pytest.raises(ValueError, match=r"cases/index.csv: thumbnail '../../../etc.jpg' is not a plain file name"):
        cases.read_cases(root)
    index.write_text("image_id,caption,thumb\nb,x,b.jpg\na,y,a.jpg\nq,z,\n")  # rows out of the features' order
    with pytest.raises(ValueError, match=r"cases/features\.npz: its image ids"):
        cases.read_cases(root)


def test_an_example_run_without_a_store_finds_its_similar_cases_in_the_bundle(tmp_path: Path) -> None:
    root = _fake_bundle(tmp_path, ["a", "b", "c", "d", "e"], ["q"])
    run = root / "runs" / "example-model-80"
    memory = similar.case_memory(run)
    assert memory.ids == ["a", "b", "c", "d", "e"] and len(memory) == 5
    query = similar.stored_features(run, ["q"])[0]  # q = row 5: along axis 1, as b (row 1) only
    np.testing.assert_array_equal(query, [0, 6, 0, 0])
    found = similar.similar_cases(memory, query, k=2)
    assert list(found["image_id"]) == ["b", "a"]  # then a tie at 0 goes to the lower row
    assert found["similarity"].iloc[0] == pytest.approx(1.0)
    assert found["caption"].iloc[0] == "caption of b"
    assert Path(found["image_path"].iloc[0]) == root / "cases" / "thumbs" / "b.jpg"


def test_a_run_shipped_without_its_store_takes_a_matching_store_only(artifacts: Path) -> None:
    """`scripts/check_synthetic.py --store`: the store must be the one the run's config describes."""
    from medcap.inference.opened import open_run
    from tests.support.dashboard_fixtures import FINISHED_ID, small_state, with_similar_cases

    small_state(artifacts)
    with_similar_cases(artifacts, store_dim=8)
    store = artifacts / "features" / "similar-store"
    config_path = artifacts / "runs" / FINISHED_ID / "config.json"
    config = json.loads(config_path.read_text())
    config["feature_store"] = {"path": None, "global_dim": 8, "n_images": 12}  # as the bundle ships it
    config_path.write_text(json.dumps(config))
    run = open_run(artifacts / "runs" / FINISHED_ID)
    with pytest.raises(ValueError, match="ships without its feature store"):
        _ = run.store
    run.attach_store(store)
    assert run.store.global_dim == 8 and len(run.store.ids) == 12
    config["feature_store"]["global_dim"] = 512
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"not the store .* was trained on \(global_dim 8 != 512\)"):
        open_run(artifacts / "runs" / FINISHED_ID).attach_store(store)
