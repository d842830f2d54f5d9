"""Issue 22, item 1: one bad run file marks its own run on every page; every other run stays usable.

The files are checked by `medcap.runs.schema` (metrics.json, config.json, status.json, predictions.csv columns).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from medcap.eval import artifacts as eval_artifacts
from medcap.runs import schema
from medcap.runs.index import list_runs
from tests.support.dashboard_fixtures import (
    FAILED_ID,
    FINISHED70_ID,
    FINISHED_ID,
    full_state,
    make_run,
    small_state,
)
from tests.support.pages import frames, run_page, texts


def _set_bleu1(artifacts: Path, run_id: str, value: object) -> None:
    path = artifacts / "runs" / run_id / "eval" / "test" / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["model"]["bleu1"] = value
    path.write_text(json.dumps(metrics))


# ---- the schema's messages --------------------------------------------------------------------


@pytest.mark.parametrize(("value", "kind"), [("high", "a string"), ([0.3], "a list"), (None, "null"),
                                             (0.3, "a number")])
def test_a_wrong_typed_metric_is_named_with_its_path(value: object, kind: str) -> None:
    problem = schema.metrics_problem({"model": {"bleu2": {"value": 0.1}, "bleu1": value}})
    assert problem == f"model.bleu1 is {kind}; expected an object with a number `value`"


def test_the_schema_checks_nested_values_and_accepts_good_files() -> None:
    good = {"model": {"bleu1": {"value": 0.3, "ci95": [0.2, 0.4]}}, "n_images": 6, "next_word": {"accuracy": 0.4},
            "baselines": {"nearest_neighbour": {"bleu1": {"value": 0.2, "ci95": None}}}, "extra": ["anything"]}
    assert schema.metrics_problem(good) is None
    bad_ci = {"model": {"bleu1": {"value": 0.3, "ci95": [0.2]}}}
    assert schema.metrics_problem(bad_ci) == "model.bleu1.ci95 is a list; expected a list of two numbers [low, high]"
    bad_base = {**good, "baselines": {"nearest_neighbour": {"bleu1": {"value": "x"}}}}
    assert schema.metrics_problem(bad_base) == "baselines.nearest_neighbour.bleu1.value is a string; expected a number"
    assert schema.metrics_problem({**good, "n_images": "6"}) == "n_images is a string; expected an integer"
    assert schema.metrics_problem([1]) == "the file holds a list; expected an object"
    assert schema.status_problem({"state": "running", "pid": [1]}) == "pid is a list; expected an integer or null"
    assert schema.config_problem({"run": []}) == "run is a list; expected an object"
    assert schema.config_problem({"run": {"preset": 80}}) == "run.preset is an integer; expected a string"
    assert schema.predictions_problem(["image_id", "image_path", "references", "prediction", "bleu1"],
                                      {"bleu1": [0.1, "", "abc"]}) == "bleu1 is not a number in row 4 ('abc')"


def test_read_metrics_names_the_evaluation_file_and_the_field(artifacts: Path) -> None:
    small_state(artifacts)
    run = artifacts / "runs" / FINISHED_ID
    _set_bleu1(artifacts, FINISHED_ID, "high")
    with pytest.raises(schema.RunFileError, match=r"^unreadable eval/test/metrics\.json: model\.bleu1 is a string"):
        eval_artifacts.read_metrics(run, "test")
    (run / "eval" / "test" / "metrics.json").write_text('{"model": {"bleu1": {"val')  # truncated
    with pytest.raises(ValueError, match=r"unreadable eval/test/metrics\.json: not valid JSON \(truncated\?\)"):
        eval_artifacts.read_metrics(run, "test")


def test_a_listing_marks_the_bad_run_alone(artifacts: Path) -> None:
    full_state(artifacts)
    _set_bleu1(artifacts, FINISHED70_ID, "high")
    status = artifacts / "runs" / FAILED_ID / "status.json"
    status.write_text(json.dumps({"state": "running", "pid": [1]}))  # pid_alive([1]) raised TypeError
    infos = {i.run_id: i for i in list_runs()}
    assert infos[FINISHED70_ID].problems == [
        "unreadable eval/test/metrics.json: model.bleu1 is a string; expected an object with a number `value`"]
    assert infos[FAILED_ID].state == "unknown"
    assert infos[FAILED_ID].status["problem"] == "unreadable status.json: pid is a list; expected an integer or null"
    assert infos[FINISHED_ID].problems == [] and infos[FINISHED_ID].state == "finished"


# ---- the pages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "kind"), [("high", "a string"), ([1, 2], "a list"), (None, "null")])
def test_home_lists_every_run_beside_a_malformed_metrics_file(artifacts: Path, value: object, kind: str) -> None:
    full_state(artifacts)
    _set_bleu1(artifacts, FINISHED70_ID, value)
    at = run_page("home")
    assert not at.exception
    assert not any("Could not show" in w.value for w in at.warning), [w.value for w in at.warning]
    runs = frames(at)[0].set_index("run")
    assert len(runs) == 5  # every run folder is listed
    assert runs.loc[FINISHED_ID, "BLEU-1"] == pytest.approx(0.312)  # the good run keeps its figures
    assert runs.loc[FINISHED70_ID, "message"].startswith(
        f"unreadable eval/test/metrics.json: model.bleu1 is {kind}")


def test_train_keeps_its_runs_section_and_names_the_bad_file(artifacts: Path) -> None:
    full_state(artifacts)
    _set_bleu1(artifacts, FINISHED70_ID, ["x"])
    (artifacts / "runs" / FINISHED_ID / "config.json").write_text(json.dumps({"run": ["model-80"]}))
    at = run_page("train")
    assert not at.exception
    assert not any("Could not show" in w.value for w in at.warning), [w.value for w in at.warning]
    runs = frames(at)[0].set_index("run")
    assert "unreadable config.json: run is a list; expected an object" in runs.loc[FINISHED_ID, "message"]
    at.selectbox(key="train_run").set_value(FAILED_ID).run()
    assert "Resume run" in [b.label for b in at.button]  # the failed run can still be resumed
    at.selectbox(key="train_run").set_value(FINISHED70_ID).run()
    assert not at.exception
    assert any("unreadable eval/test/metrics.json: model.bleu1 is a list" in w.value for w in at.warning)
    assert len(at.get("plotly_chart")) == 2  # its curves are still drawn


def test_the_seed_noise_section_leaves_out_a_truncated_metrics_file(artifacts: Path) -> None:
    runs = artifacts / "runs"
    ids = [f"20250101-10000{i}-model-80-seed{i}0" for i in range(3)]
    for i, run_id in enumerate(ids):
        make_run(runs, run_id, "model-80", images_dir=artifacts / "images", bleu1=0.30 + 0.01 * i)
        config = json.loads((runs / run_id / "config.json").read_text())
        config["run"].update(seed=i + 1, split_seed=0)  # the split stays fixed: only the init seed differs
        (runs / run_id / "config.json").write_text(json.dumps(config))
    (runs / ids[0] / "eval" / "test" / "metrics.json").write_text('{"model": {"bleu1": ')  # truncated
    at = run_page("compare")
    at.multiselect(key="cmp").set_value(ids[1:]).run()
    assert not at.exception
    assert not any("Could not show seed noise" in w.value for w in at.warning)
    summary = next(f for f in frames(at) if "n_seeds" in f.columns).set_index("metric")
    assert summary.loc["bleu1", "n_seeds"] == 2
    assert summary.loc["bleu1", "mean"] == pytest.approx(0.315)
    assert any(ids[0] in m.value and "Left out of the seed noise" in m.value and "not valid JSON" in m.value
               for m in at.markdown)


def test_a_non_number_score_in_predictions_is_named_on_per_image(artifacts: Path) -> None:
    small_state(artifacts)
    path = artifacts / "runs" / FINISHED_ID / "eval" / "test" / "predictions.csv"
    preds = pd.read_csv(path, dtype=str, keep_default_na=False)
    preds.loc[1, "bleu1"] = "abc"
    preds.to_csv(path, index=False)
    at = run_page("per_image")
    assert not at.exception
    assert any(f"`{FINISHED_ID}`: unreadable eval/test/predictions.csv: bleu1 is not a number in row 3 ('abc')"
               == w.value for w in at.warning), [w.value for w in at.warning]
    assert "Per-image BLEU-1" not in texts(at)  # nothing drawn from the bad file


def test_caption_health_may_name_what_decoding_enforces() -> None:
    health = {"adjacent_repeat_share": 0.0, "enforced_by_decoding": ["adjacent_repeat_share"]}
    ok = {"model": {"bleu1": {"value": 0.3}}, "caption_health": {"model": health}}
    assert schema.metrics_problem(ok) is None
    bad = {**ok, "caption_health": {"model": {"enforced_by_decoding": "adjacent_repeat_share"}}}
    assert "caption_health.model.enforced_by_decoding" in schema.metrics_problem(bad)
