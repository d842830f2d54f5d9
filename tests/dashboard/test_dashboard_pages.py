"""Every dashboard page under Streamlit's AppTest, with no runs and with a finished + a failed run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import PROJECT_ROOT
from tests.support.dashboard_fixtures import FAILED_ERROR, FAILED_ID, FINISHED_ID, small_state, write_image
from tests.support.pages import PAGES, TITLES, assert_clean, frames, run_page, texts


@pytest.mark.parametrize("name", list(PAGES))
def test_page_without_runs(name: str) -> None:
    at = run_page(name)
    assert_clean(at, name)
    assert not at.warning, [w.value for w in at.warning]
    shown = texts(at)
    expected = {
        "home": "No runs yet",
        "data": "press **Load dataset**",
        "train": "No runs yet",
        "compare": "No evaluated runs yet",
        "per_image": "No evaluated runs yet",
        "attention": "No evaluated runs yet",
        "caption": "No finished run yet",
        "study": "No study yet",
    }[name]
    assert expected in shown


def test_home_without_runs_offers_the_demo_button() -> None:
    at = run_page("home")
    assert [b.label for b in at.button] == ["Build the demo"]
    # the paper's Table 2 and 3 figures are shown
    table2 = frames(at)[0]
    assert table2.loc[table2["preset"] == "model-80", "accuracy"].item() == pytest.approx(0.4941)
    table3 = frames(at)[1]
    assert table3.loc[table3["preset"] == "model-70", "bleu1"].item() == pytest.approx(0.310)


@pytest.fixture
def small(artifacts: Path) -> Path:
    small_state(artifacts)
    return artifacts


@pytest.mark.parametrize("name", list(PAGES))
def test_page_with_a_finished_and_a_failed_run(small: Path, name: str) -> None:
    at = run_page(name)
    assert_clean(at, name)
    assert not at.warning, [w.value for w in at.warning]


def test_home_lists_runs_with_bleu_and_the_failure(small: Path) -> None:
    at = run_page("home")
    runs = frames(at)[0]
    row = runs.set_index("run").loc[FINISHED_ID]
    assert row["BLEU-1"] == pytest.approx(0.312)
    assert row["BLEU-1 95% CI"] == "[0.281, 0.344]"
    failed = runs.set_index("run").loc[FAILED_ID]
    assert "failed" in failed["state"]
    assert failed["message"] == FAILED_ERROR
    assert "Build the demo" not in [b.label for b in at.button]
    beside = frames(at)[-1]
    assert list(beside["figure"]) == ["accuracy", "precision", "recall", "f1", "bleu1", "bleu2"]
    assert beside.set_index("figure").loc["bleu1", "paper"] == pytest.approx(0.309)
    # a run on the synthetic set is not set against the paper's MedICaT figures with a signed difference
    assert (beside["difference"] == "").all() and beside["note"].str.contains("different data: not comparable").all()
    assert beside.set_index("figure").loc["bleu1", "medcap 95% CI"] == "[0.2810, 0.3440]"


def test_train_shows_the_failed_runs_error(small: Path) -> None:
    at = run_page("train")
    assert FAILED_ERROR in texts(at)  # the newest run (the failed one) is selected by default
    assert "Resume run" in [b.label for b in at.button]
    at.selectbox(key="train_run").set_value(FINISHED_ID).run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 2  # loss and accuracy curves


def test_compare_shows_metrics_with_cis_and_the_paper(small: Path) -> None:
    at = run_page("compare")
    scope = frames(at)[0]
    assert scope["role"].iloc[0] == "not recorded"  # an evaluation older than split roles: said, not guessed
    side = frames(at)[1]
    column = "model-80"  # the run's name (unnamed: its preset), never a piece of its id
    assert side.loc["BLEU-1", column] == "0.312 [0.281, 0.344]"
    assert side.loc["BLEU-1", f"{column} · 1-NN baseline"] == "0.220 [0.200, 0.240]"
    assert "METEOR" not in side.index  # skipped in this evaluation (no JVM)
    next_word = frames(at)[2]
    assert next_word.loc["Accuracy (words decoding may emit)", column] == pytest.approx(0.4567)
    assert "Pick exactly two runs" in texts(at)
    shown = [f for f in frames(at) if "run" in f.columns and "bleu1" in f.columns]
    assert shown and (shown[0]["bleu1"] == "not computed").all()  # image reliance of an older evaluation
    assert "No runs differ only in their init seed" in texts(at)


def test_per_image_is_worst_first_and_filters(small: Path) -> None:
    at = run_page("per_image")
    table = frames(at)[0]
    assert table["image_id"].iloc[0] == "img00000"
    assert table["bleu1"].iloc[0] == 0.0
    assert list(table["bleu1"]) == sorted(table["bleu1"])
    at.multiselect(key="pi_mod").set_value(["MR"]).run()
    assert set(frames(at)[0]["image_id"]) == {"img00001", "img00003", "img00005"}
    at.toggle(key="pi_order").set_value(False).run()
    values = list(frames(at)[0]["bleu1"])
    assert values == sorted(values, reverse=True)


def test_per_image_detail_opens_the_attention_page(small: Path) -> None:
    at = run_page("per_image")
    assert "**Prediction:** axial ct shows a small mass in the left lung" in texts(at)
    at.button(key="to_attention").click().run()
    assert not at.exception
    assert at.session_state["attention_image"] == "img00000"


def test_attention_page_draws_per_word_maps(small: Path) -> None:
    at = run_page("attention")
    assert "**Generated:** axial ct shows a small mass in the left lung" in texts(at)
    assert len(at.get("plotly_chart")) == 2  # one word's map and the small multiples
    at.select_slider(key="att_word").set_value("3. shows").run()
    assert not at.exception


def test_data_page_summarises_a_csv_dataset(artifacts: Path) -> None:
    folder = artifacts / "mini"
    rows = []
    for i in range(12):
        write_image(folder / f"im{i}.png", seed=i)
        rows.append({"image_path": f"im{i}.png", "caption": f"axial ct shows lesion number {i % 3}", "group": f"g{i}",
                     "plane": "Axial" if i < 9 else "Coronal"})
    rows.append({"image_path": "missing.png", "caption": "no image here", "group": "gx"})
    pd.DataFrame(rows).to_csv(folder / "captions.csv", index=False)
    at = run_page("data")
    at.text_input[0].input(f"csv:{folder / 'captions.csv'}")
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.warning, [w.value for w in at.warning]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Records read"] == "13"
    assert metrics["Images found"] == "12"
    dropped = frames(at)[0]
    assert dropped["records"].sum() == 1
    assert len(at.image) == 8 + 12  # the sample grid, then the gallery's first 12 images
    assert "12 of 12 images match; showing the first 12." in texts(at)
    at.selectbox(key="gal_count_by").set_value("plane").run()  # counts by a label of the dataset
    counts = next(f for f in frames(at) if "plane" in f.columns and "cases" in f.columns)
    assert counts[["plane", "images", "cases"]].values.tolist() == [["Axial", 9, 9], ["Coronal", 3, 3]]


def test_a_broken_run_folder_shows_a_warning_not_a_traceback(small: Path) -> None:
    metrics = small / "runs" / FINISHED_ID / "eval" / "test" / "predictions.csv"
    metrics.write_text("image_id,prediction\nx,y\n")
    at = run_page("per_image")
    assert not at.exception
    assert any("lacks columns" in w.value for w in at.warning)


def test_home_shows_live_demo_progress(artifacts: Path) -> None:
    import os

    from medcap.base.io import write_json

    write_json(
        artifacts / "demo" / "status.json",
        {"state": "running", "stage": "features", "progress": 0.2, "message": "extracting", "pid": os.getpid()},
    )
    at = run_page("home")
    assert not at.exception
    assert "Building the demo" in [h.value for h in at.subheader]
    assert "Cancel the demo" in [b.label for b in at.button]
    assert "Build the demo" not in [b.label for b in at.button]


def test_home_shows_a_failed_demo_and_offers_a_retry(artifacts: Path) -> None:
    from medcap.base.io import write_json

    write_json(
        artifacts / "demo" / "status.json",
        {"state": "failed", "stage": "train model-70", "error": "StepFailedError: train exited with code 1"},
    )
    at = run_page("home")
    assert not at.exception
    assert "StepFailedError: train exited with code 1" in texts(at)
    assert [b.label for b in at.button] == ["Build the demo again"]


def test_train_shows_killed_and_half_written_runs(artifacts: Path) -> None:
    from tests.support.dashboard_fixtures import HALF_ID, KILLED_ID, full_state

    full_state(artifacts)
    at = run_page("train")
    assert not at.exception
    assert "This folder is incomplete" in texts(at)  # the newest folder has no status.json
    at.selectbox(key="train_run").set_value(KILLED_ID).run()
    assert "**Interrupted:**" in texts(at)
    assert "Resume run" in [b.label for b in at.button]
    assert "Cancel run" not in [b.label for b in at.button]  # its process is gone
    states = frames(at)[0].set_index("run")["state"]
    assert states[KILLED_ID] == "interrupted (process gone)"
    assert states[HALF_ID] == "unknown (half-written?)"


def test_compare_paired_difference_on_demand(artifacts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medcap.app import tables
    from tests.support.dashboard_fixtures import FINISHED70_ID, full_state

    full_state(artifacts)
    calls = []

    def fake_compare(a, b):  # the real one bootstraps the two runs' stored predictions in-process
        calls.append((a.run_id, b.run_id))
        diff = {"a": 0.312, "b": 0.29, "diff": -0.022, "ci95": [-0.05, 0.01], "share_b_gt_a": 0.1}
        return {"n_images": 6, "images": "shared test images", "metrics": {"bleu1": diff}}

    monkeypatch.setattr(tables, "paired_runs", fake_compare)
    at = run_page("compare")
    assert calls == []  # nothing heavy until asked
    at.button(key="paired_btn").click().run()
    assert not at.exception
    assert calls == [(FINISHED_ID, FINISHED70_ID)]  # A = the Model-80 run, B = the Model-70 run
    paired = next(d.value for d in at.dataframe if "B − A" in d.value.columns)
    assert paired.loc[0, "metric"] == "BLEU-1"
    assert paired.loc[0, "95% CI of B − A"] == "[-0.0500, +0.0100]"


def test_the_router_routes_every_page_and_opens_home() -> None:
    import ast

    tree = ast.parse((PROJECT_ROOT / "streamlit_app.py").read_text(encoding="utf-8"))
    routed = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PAGES"
    )
    assert sorted(script for script, _, _ in routed) == sorted(PAGES.values())
    assert [title for _, title, _ in routed] == ["Home", *(TITLES[name] for name in list(PAGES)[1:])]
    # A folder called `pages/` beside the app makes Streamlit list it by itself on a fresh server,
    # so a deep link opened first would show that list instead of the app's navigation.
    assert not (PROJECT_ROOT / "pages").exists()
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title][:1] == [TITLES["home"]]


# ----------------------------------------------------------------------------------------------
# a fresh clone: no runs of one's own, the example bundle present

BUNDLE = PROJECT_ROOT / "examples" / "demo"
needs_bundle = pytest.mark.skipif(not (BUNDLE / "manifest.json").is_file(), reason="examples/demo not present")


@pytest.fixture
def bundle_only(monkeypatch: pytest.MonkeyPatch, artifacts: Path) -> Path:
    monkeypatch.setenv("MEDCAP_EXAMPLES", str(BUNDLE))
    return artifacts


@needs_bundle
@pytest.mark.parametrize("name", list(PAGES))
def test_page_with_only_the_example_bundle(bundle_only: Path, name: str) -> None:
    at = run_page(name)
    assert_clean(at, name)
    assert not at.warning, [w.value for w in at.warning]
    assert "No evaluated runs yet" not in texts(at)


@needs_bundle
def test_home_with_only_examples_says_what_they_are_and_offers_the_demo(bundle_only: Path) -> None:
    at = run_page("home")
    shown = texts(at)
    assert "Explore now" in shown and "examples/demo/" in shown
    assert "measured: 208 s and 264 s" in shown  # the measured demo time (README), not 'a few minutes'
    assert [b.label for b in at.button] == ["Build the demo"]
    runs = frames(at)[0].set_index("run")
    assert list(runs.index) == ["example-model-80", "example-model-70"]
    assert set(runs["source"]) == {"example (read-only)"}
    assert runs["BLEU-1"].between(0.05, 1.0).all()
    assert not (bundle_only / "runs").exists() or not any((bundle_only / "runs").iterdir())  # nothing written


@needs_bundle
def test_compare_defaults_to_the_two_example_runs(bundle_only: Path) -> None:
    at = run_page("compare")
    side = next(f for f in frames(at) if "BLEU-1" in f.index)
    assert {"demo-model-80 (example)", "demo-model-70 (example)"} <= set(side.columns)  # by name
    assert side.loc["BLEU-1", "demo-model-80 (example)"].count("[") == 1  # value with its CI
    assert "Pick exactly two runs" not in texts(at)
    at.button(key="paired_btn").click().run()  # computed in-process from the shipped predictions
    assert not at.exception
    paired = next(d.value for d in at.dataframe if "B − A" in d.value.columns)
    assert paired.loc[0, "metric"] == "BLEU-1" and paired["B − A"].notna().all()


@needs_bundle
def test_per_image_and_attention_show_the_example_images(bundle_only: Path) -> None:
    at = run_page("per_image")
    table = frames(at)[0]
    assert len(table) > 5 and table["thumbnail"].str.startswith("data:image/jpeg;base64,").all()
    at = run_page("attention")
    assert len(at.get("plotly_chart")) == 2  # the word's map and the strip of every word
    assert "**Generated:**" in texts(at)


@needs_bundle
def test_train_marks_example_runs_read_only(bundle_only: Path) -> None:
    at = run_page("train")
    assert "example run of the pre-built bundle" in texts(at)
    assert not {"Resume run", "Cancel run", "Evaluate"} & {b.label for b in at.button}


def test_study_page_shows_pooled_results_and_folds(artifacts: Path) -> None:
    from medcap.base.io import write_json

    folder = artifacts / "studies" / "20260101-000000-s-abcdef"
    write_json(folder / "study.json", {"dataset": "medpix:x", "folds": 2, "seed": 0,
                                       "systems": {"model-80": {"preset": "model-80"}}})
    write_json(folder / "status.json", {"state": "finished", "progress": 1.0})
    metric = {"value": 0.2, "ci95": [0.1, 0.3]}
    write_json(folder / "results.json", {
        "dataset": "medpix:x", "folds": 2, "n_images": 10, "n_groups": 4,
        "pooled": {"model-80": {"cider": metric}, "nearest_neighbour": {"cider": {"value": 0.1, "ci95": [0, 0.2]}}},
        "paired_vs_nearest_neighbour": {"model-80": {"cider": {"diff": 0.1, "ci95": [0.02, 0.18]}}},
        "per_fold": [{"fold": 0, "n_images": 5, "systems": {"model-80": {"cider": 0.25}},
                      "baselines": {"nearest_neighbour": {"cider": 0.1}}},
                     {"fold": 1, "n_images": 5, "systems": {"model-80": {"cider": 0.15}},
                      "baselines": {"nearest_neighbour": {"cider": 0.1}}}],
        "caption_health": {"model-80": {"adjacent_repeat_share": 0.0}}})
    at = run_page("study")
    assert_clean(at, "study")
    pooled = frames(at)[0].set_index("system")
    assert pooled.loc["model-80", "cider - 1-NN"] == "+0.1000 [+0.0200, +0.1800]"
    assert list(frames(at)[1]["model-80"]) == [0.25, 0.15]
