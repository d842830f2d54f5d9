"""medcap.runs.bundle: the example-bundle builder's normalisation (fixed stamps, relative paths, stable zips)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from medcap.base.io import write_json
from medcap.runs import bundle


@pytest.fixture
def epoch(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    return 1700000000


def test_fixed_time_honours_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert bundle.fixed_time() == "2026-01-01T00:00:00+00:00"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert bundle.fixed_time() == "2023-11-14T22:13:20+00:00"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "5")
    assert bundle.fixed_epoch() == 315532800  # zip dates start in 1980
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(ValueError, match="SOURCE_DATE_EPOCH"):
        bundle.fixed_epoch()


def test_config_status_metrics_lose_their_moment_and_machine(epoch: int) -> None:
    dataset = {"spec": "synthetic:200", "root": "/tmp/x/datasets/synthetic-200-seed0"}
    config = {"run": {"preset": "model-80"}, "git_commit": "abc123", "created": "2026-11-28T04:00:00+00:00",
              "feature_store": {"path": "/tmp/x/features/s", "global_dim": 512, "dataset": dataset}, "vocab_size": 60}
    out = bundle.normalise_config(config)
    assert out == {"run": {"preset": "model-80"}, "git_commit": None, "created": "2023-11-14T22:13:20+00:00",
                   "feature_store": {"path": None, "global_dim": 512,
                                     "dataset": {"spec": "synthetic:200", "root": None}}, "vocab_size": 60}
    assert config["feature_store"]["path"] == "/tmp/x/features/s"  # the input is left alone
    status = {"state": "finished", "epoch": 8, "epochs": 8, "progress": 1.0, "pid": 4242, "step": 13,
              "steps": 13, "message": "finished", "best_epoch": 7, "updated": "2026-11-28T04:03:11+00:00"}
    assert bundle.normalise_status(status) == {"state": "finished", "epoch": 8, "epochs": 8, "progress": 1.0,
                                               "best_epoch": 7, "message": "finished",
                                               "updated": "2023-11-14T22:13:20+00:00"}
    metrics = {"run_id": "20261128-040000-demo-model-80-a1b2c3", "model": {"bleu1": {"value": 0.3}},
               "provenance": {"created": "2026-11-28T04:05:00+00:00", "decode": "greedy"}}
    assert bundle.normalise_metrics(metrics, "example-model-80") == {
        "run_id": "example-model-80", "model": {"bleu1": {"value": 0.3}},
        "provenance": {"created": "2023-11-14T22:13:20+00:00", "decode": "greedy"}}


def test_history_seconds_are_zeroed_and_nothing_else_changes() -> None:
    head = "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\n"
    text = head + "1,4.2,0.05,3.3,0.15,0.005,13.712\n2,3.1,0.2,2.4,0.3,0.005,5.7\n"
    assert bundle.normalise_history(text) == head + "1,4.2,0.05,3.3,0.15,0.005,0.0\n2,3.1,0.2,2.4,0.3,0.005,0.0\n"


def test_predictions_image_paths_become_relative_to_the_run_folder() -> None:
    text = 'image_id,image_path,references,prediction\nsyn-1,/tmp/a/images/syn-1.png,"[""a b""]",a b\n'
    out = bundle.normalise_predictions(text, {"/tmp/a/images/syn-1.png": "syn-1.png"})
    assert out.splitlines()[1] == 'syn-1,../../images/syn-1.png,"[""a b""]",a b'


def test_zips_carry_the_fixed_date_and_are_byte_stable(epoch: int, tmp_path: Path) -> None:
    arrays = {"syn-2": np.ones((3, 7, 7), np.float16), "syn-1": np.zeros((0, 7, 7), np.float16)}
    data = bundle.npz_bytes(arrays)
    assert data == bundle.npz_bytes(arrays)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert [i.filename for i in zf.infolist()] == ["syn-2.npy", "syn-1.npy"]  # the given order
        assert {i.date_time for i in zf.infolist()} == {(2023, 11, 14, 22, 13, 20)}
    # an .npz written the usual way (member dates = now) comes out the same as the builder's own
    path = tmp_path / "attention.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for key, value in arrays.items():
            with zf.open(f"{key}.npy", "w") as fh:
                np.lib.format.write_array(fh, value, allow_pickle=False)
    assert bundle.normalise_npz(path) == data
    with np.load(io.BytesIO(data)) as npz:
        np.testing.assert_array_equal(npz["syn-2"], arrays["syn-2"])


def test_manifest_lists_every_file_and_verification_finds_changes(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    write_json(root / "runs" / "r" / "config.json", {"a": 1})
    (root / "images").mkdir()
    (root / "images" / "x.png").write_bytes(b"png")
    (root / "README.md").write_text("about")
    manifest = bundle.write_manifest(root, {"n_images": 200}, {"python": "3.11"})
    assert sorted(manifest["files"]) == ["images/x.png", "runs/r/config.json"]
    assert manifest["total_bytes"] == 3 + (root / "runs" / "r" / "config.json").stat().st_size
    assert bundle.verify_manifest(root) == []
    (root / "images" / "x.png").write_bytes(b"PNG")
    (root / "images" / "y.png").write_bytes(b"new")
    assert bundle.verify_manifest(root) == ["images/y.png: not listed in manifest.json",
                                            "images/x.png: SHA-256 differs from manifest.json"]


def test_weights_are_stored_as_float16_and_load_back_as_float32(tmp_path: Path) -> None:
    import shutil

    import h5py

    from medcap.inference.opened import load_run
    from medcap.runs.folder import RunDir
    from tests.conftest import PROJECT_ROOT

    source = PROJECT_ROOT / "examples" / "demo" / "runs" / "example-model-80"
    if not source.is_dir():
        pytest.skip("examples/demo not present")
    run = RunDir(tmp_path / "run")
    shutil.copytree(source, run.path)
    from medcap.base.io import save_weights

    save_weights(load_run(run.path).model, run.best_weights)  # float32 again, as training writes them
    full = [np.asarray(w) for w in load_run(run.path).model.get_weights()]
    size = run.best_weights.stat().st_size
    bundle.halve_weights(run.best_weights)
    first = run.best_weights.read_bytes()
    with h5py.File(run.best_weights, "r") as fh:
        dtypes = set()
        fh.visititems(lambda _, item: dtypes.add(item.dtype) if isinstance(item, h5py.Dataset) else None)
    assert np.dtype("float16") in dtypes and np.dtype("float32") not in dtypes
    assert run.best_weights.stat().st_size < 0.6 * size  # about half
    back = [np.asarray(w) for w in load_run(run.path).model.get_weights()]
    assert [w.dtype for w in back] == [np.dtype("float32")] * len(full)
    for a, b in zip(full, back, strict=True):
        assert np.allclose(a, b, rtol=2**-10, atol=1e-7)  # float16 rounding, nothing else
    bundle.halve_weights(run.best_weights)  # already half: the same bytes again (rebuilds stay reproducible)
    assert run.best_weights.read_bytes() == first
