"""Issue 22, item 5: the small items, one test each.

evaluate while training (warned, the scored epoch recorded), the Data page's dropdown vs text box, Train's
default dataset, readable leakage labels, whole-number count axes, the research-use notice, the
out-of-distribution warning and Home's single fragment decorator.
"""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from medcap.app import viz
from medcap.base.locks import RunLock
from medcap.inference import ood
from tests.conftest import PROJECT_ROOT
from tests.support.dashboard_fixtures import FINISHED_ID, make_run, small_state, with_similar_cases, write_image
from tests.support.pages import frames, run_page, texts

# ---- evaluate while the run is training ---------------------------------------------------------------


def test_scored_weights_warn_while_a_process_trains_the_run(artifacts: Path, caplog: pytest.LogCaptureFixture) -> None:
    from medcap.eval.scored import scored_weights

    run = make_run(artifacts / "runs", FINISHED_ID, state="running", epochs=6, evaluate=False)
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "best_epoch": 2, "pid": None}))
    assert scored_weights(run)["run_training"] is False
    with RunLock(run), caplog.at_level(logging.WARNING, logger="medcap"):
        info = scored_weights(run.name)  # a run id works too
    assert info == {"file": "weights/best.weights.h5", "epoch": 2, "epochs_run": 3, "run_state": "running",
                    "run_training": True}
    assert any(f"{FINISHED_ID} is being trained right now" in r.message and "(epoch 2, after 3 of 6 epochs)"
               in r.message for r in caplog.records)


@pytest.mark.slow
def test_evaluate_while_training_records_the_epoch_of_the_weights_it_scored(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from medcap.config import RunConfig
    from medcap.eval.evaluate import evaluate_run
    from medcap.train import train_run
    from tests.support.tiny import make_tiny

    spec, store = make_tiny(tmp_path / "data", n=24, seed=0)
    cfg = RunConfig.from_preset("model-80", dataset=spec, epochs=1, batch_size=16, embed_dim=8, lstm_units=8,
                                dense_units=8, attn_units=8, min_count=1, feature_store=str(store))
    run = train_run(cfg, run_dir=tmp_path / "runs" / "tiny")
    with RunLock(run), caplog.at_level(logging.WARNING, logger="medcap"):  # as if `train --resume` held it
        out = evaluate_run(run, with_meteor=False, n_boot=20, with_reliance=False)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["weights"] == {"file": "weights/best.weights.h5", "epoch": 1, "epochs_run": 1,
                                  "run_state": "finished", "run_training": True}
    assert any("is being trained right now" in r.message for r in caplog.records)


# ---- the Data page and Train's default dataset ---------------------------------------------------------


def _csv_dataset(folder: Path, n_images: int, missing: bool = False) -> Path:
    rows = []
    for i in range(3):
        if not missing:
            write_image(folder / f"im{i}.png", seed=i)
        rows.append({"image_path": f"im{i}.png", "caption": f"axial ct shows lesion {i} in the liver",
                     "group": f"case{i}"})
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows[:n_images]).to_csv(folder / "captions.csv", index=False)
    return folder / "captions.csv"


def test_the_data_page_says_when_the_typed_spec_wins_over_the_dropdown(artifacts: Path) -> None:
    csv = _csv_dataset(artifacts / "typed", 3)
    at = run_page("data")
    dropdown = at.selectbox[0].value
    at.text_input[0].input(f"csv:{csv}")
    at.button[0].click().run()
    assert not at.exception
    note = [i.value for i in at.info]
    assert note == [f"Loaded the spec typed in the box, `csv:{csv}`; the dropdown's `{dropdown}` is not used while "
                    "the box has text (clear the box to load the dropdown's choice)."]
    at.text_input[0].input("")
    at.button[0].click().run()
    assert not [i.value for i in at.info if "typed in the box" in i.value]  # the dropdown's own choice: no note


def test_train_defaults_to_a_dataset_with_usable_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    empty = _csv_dataset(data / "a-empty", 3, missing=True)  # first alphabetically; its images are missing
    good = _csv_dataset(data / "b-good", 3)
    monkeypatch.setenv("MEDCAP_DATA", str(data))
    at = run_page("train")
    assert not at.exception
    dataset = at.selectbox[1]
    assert dataset.options[:2] == [f"csv:{empty}", f"csv:{good}"]
    assert dataset.value == f"csv:{good}"


def test_the_leakage_table_reads_in_words(artifacts: Path) -> None:
    csv = _csv_dataset(artifacts / "leak", 3)
    at = run_page("data")
    at.text_input[0].input(f"csv:{csv}")
    at.button[0].click().run()
    table = next(f for f in frames(at) if list(f.columns) == ["check", "value"])
    assert list(table["check"]) == ["groups in train and test", "groups in train and val", "groups in val and test",
                                    "test captions also in train (fraction)", "val captions also in train (fraction)"]


# ---- charts, notices, out of distribution ---------------------------------------------------------------


@pytest.mark.parametrize(("values", "step"), [([0.1, 0.2, 0.2, 0.9], 1), (list(np.linspace(0, 1, 1000)), 5),
                                              ([], 1)])
def test_a_histograms_count_axis_has_whole_steps(values: list[float], step: int) -> None:
    fig = viz.histogram(values, "Per-image BLEU-1", "sentence BLEU-1 (0-1)")
    assert fig.layout.yaxis.dtick == step and fig.layout.yaxis.tick0 == 0


def test_the_per_image_histogram_counts_in_whole_steps(artifacts: Path) -> None:
    small_state(artifacts)
    at = run_page("per_image")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["yaxis"]["dtick"] == 1  # 6 images: 0, 1, 2 ... not 0, 0.5, 1


def test_caption_an_image_says_research_use_not_for_diagnosis(artifacts: Path) -> None:
    for state in ("none", "a finished run"):
        if state != "none":
            small_state(artifacts)
        at = run_page("caption")
        assert any("Research use only, not for diagnosis." in i.value for i in at.info), state


def test_ood_threshold_is_the_first_percentile_of_leave_one_out_similarities() -> None:
    angles = np.linspace(0.0, 1.0, 101)  # unit vectors on an arc: neighbours 0.01 rad apart
    train = np.stack([np.cos(angles), np.sin(angles), np.zeros_like(angles)], axis=1).astype(np.float32)
    calib = ood.calibrate(train)
    assert calib.threshold == pytest.approx(np.cos(0.01), abs=1e-6) and calib.n_calibration == 101
    assert not calib.is_unfamiliar(ood.nearest_similarity(train, train[50] + 1e-3))
    far = np.array([0.0, 0.0, 1.0], dtype=np.float32)  # orthogonal to every training image
    assert ood.nearest_similarity(train, far) == pytest.approx(0.0, abs=1e-6) and calib.is_unfamiliar(0.0)
    dup = np.concatenate([train[:1], train[:1], train[60:]])  # a duplicate image counts as its own neighbour
    np.testing.assert_allclose(ood.leave_one_out(dup, np.array([0, 1])), [1.0, 1.0], atol=1e-6)
    big = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    assert ood.calibrate(big, max_queries=10).n_calibration == 10
    with pytest.raises(ValueError, match="needs at least 2 training images"):
        ood.calibrate(train[:1])


def _ood_app(run_path: str, query: list[float]) -> None:
    import numpy as np

    from medcap.runs.index import list_runs
    from ui import safety

    info = next(i for i in list_runs() if str(i.path) == run_path)
    safety.ood_note(info, np.asarray(query, dtype=np.float32))


def test_an_image_unlike_the_training_set_gets_a_warning(artifacts: Path) -> None:
    small_state(artifacts)
    with_similar_cases(artifacts)  # training images img00006..11: features on an arc, 0.2 rad apart
    run = str(artifacts / "runs" / FINISHED_ID)
    like = [float(np.cos(1.5)), float(np.sin(1.5)), 0, 0, 0, 0, 0, 0]  # between two training images
    unlike = [0, 0, 1.0, 0, 0, 0, 0, 0]  # orthogonal to all of them
    at = AppTest.from_function(_ood_app, args=(run, like), default_timeout=60).run()
    assert not at.exception and not at.warning
    assert "Like the training images: the closest one has cosine similarity" in texts(at)
    at = AppTest.from_function(_ood_app, args=(run, unlike), default_timeout=60).run()
    assert not at.exception
    assert [w.value.split(":**")[0] for w in at.warning] == [f"**This image is unlike the images `{FINISHED_ID}` "
                                                            "was trained on"]
    assert "closest training image has cosine similarity 0.000" in at.warning[0].value


def test_homes_live_demo_is_decorated_once() -> None:
    tree = ast.parse((PROJECT_ROOT / "app_pages" / "0_Home.py").read_text(encoding="utf-8"))
    live = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_live_demo")
    assert [ast.unparse(d) for d in live.decorator_list] == ["st.fragment(run_every=2.0)"]
