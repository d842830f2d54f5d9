"""The dashboard says what is true at once: finding boxes without a restart, similar cases of the examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from medcap.inference import similar
from tests.conftest import PROJECT_ROOT
from tests.support.dashboard_fixtures import small_state, write_image


def run_page(script: str) -> AppTest:
    return AppTest.from_file(str(PROJECT_ROOT / "app_pages" / script), default_timeout=60).run()


def texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "warning") for e in getattr(at, kind))


def test_true_boxes_appear_once_the_synthetic_set_exists_without_a_restart(artifacts: Path) -> None:
    small_state(artifacts)  # its run trained on synthetic:40, not generated yet
    at = run_page("5_Attention.py")
    assert not at.exception and "Dashed boxes" not in texts(at)
    folder = artifacts / "datasets" / "synthetic-40-seed0"
    lines = []
    for i in range(6):  # the fixture run's test images
        write_image(folder / "images" / f"img{i:05d}.png", seed=i)
        box = {"finding": "nodule", "location": "left upper zone", "size": "small", "box": [0.1, 0.1, 0.4, 0.4]}
        lines.append(json.dumps({"image_id": f"img{i:05d}", "file": f"images/img{i:05d}.png", "caption": "a nodule",
                                 "group": f"g{i}", "boxes": [box]}))
    (folder / "records.jsonl").write_text("\n".join(lines) + "\n")
    at = run_page("5_Attention.py")  # same process, same caches: what a running server sees
    assert not at.exception
    assert "Dashed boxes: the true findings of this synthetic image." in texts(at)


def test_similar_cases_of_a_run_shipped_without_store_or_cases_say_why_without_a_machine_path(
        tmp_path: Path) -> None:
    shipped = PROJECT_ROOT / "examples" / "demo" / "runs" / "example-model-80"
    if not shipped.is_dir():
        pytest.skip("examples/demo not present")
    run = tmp_path / "demo" / "runs" / "example-model-80"  # a bundle without its cases/ index
    run.mkdir(parents=True)
    for name in ("config.json", "split.json"):
        (run / name).write_bytes((shipped / name).read_bytes())
    with pytest.raises(ValueError) as exc:
        similar.case_memory(run)
    message = str(exc.value)
    assert message.startswith("example-model-80/config.json: this run ships without its feature store")
    assert "Build the demo" in message and str(tmp_path) not in message and "older or hand-written" not in message


def test_example_runs_show_similar_cases_on_a_fresh_clone(artifacts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = PROJECT_ROOT / "examples" / "demo"
    if not bundle.is_dir():
        pytest.skip("examples/demo not present")
    monkeypatch.setenv("MEDCAP_EXAMPLES", str(bundle))  # no feature store, no dataset on disk
    at = run_page("5_Attention.py")
    assert not at.exception
    shown = texts(at)
    assert "Similar cases are unavailable" not in shown
    assert "closest to this image in the run's global image features" in shown
    assert len(at.dataframe) >= 1 and len(at.dataframe[-1].value) == 5  # the k = 5 closest training images


def test_example_runs_show_their_true_finding_boxes_at_once_on_a_fresh_clone(
        artifacts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = PROJECT_ROOT / "examples" / "demo"
    if not bundle.is_dir():
        pytest.skip("examples/demo not present")
    monkeypatch.setenv("MEDCAP_EXAMPLES", str(bundle))  # nothing generated: no synthetic set on disk
    assert not (artifacts / "datasets").exists()
    at = run_page("5_Attention.py")
    assert not at.exception
    assert "Dashed boxes: the true findings of this synthetic image." in texts(at)


def test_an_evaluation_writes_each_images_true_boxes_beside_its_caption(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    from medcap.app.datasets import true_boxes
    from medcap.eval.evalset import EvalSet
    from medcap.eval.evaluate import _write_predictions

    box = [{"finding": "nodule", "location": "left upper zone", "size": "small", "box": [0.1, 0.1, 0.4, 0.4]}]
    table = pd.DataFrame({"image_id": ["a", "b"], "image_path": ["a.png", "b.png"], "group": ["g1", "g2"],
                          "boxes": [json.dumps(box), "[]"]})
    ev = EvalSet(spec="synthetic:2", name="synthetic-2", split="test", basis="test", table=table,
                 global_feats=np.zeros((2, 4), np.float32), grid_feats=np.zeros((2, 7, 7, 512), np.float32))
    refs = [[["a", "nodule"]], [["no", "finding"]]]
    per_image = {"rouge_l": np.zeros(2), "cider": np.zeros(2)}
    _write_predictions(tmp_path / "predictions.csv", ev, refs, [["a", "nodule"], ["clear"]], per_image,
                       [["clear"], ["clear"]], per_image)
    written = pd.read_csv(tmp_path / "predictions.csv", keep_default_na=False)
    assert true_boxes(written.iloc[0]) == box and true_boxes(written.iloc[1]) == []
