"""The dashboard's data side: medcap.dashboard, eval.artifacts, jobs, dataset_view, upload, demo."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medcap import dashboard, dataset_view, demo, jobs, upload
from medcap.eval import artifacts as eval_artifacts
from medcap.eval import paper
from medcap.runs import list_runs, read_status
from tests.dashboard_fixtures import (
    FAILED_ERROR,
    FAILED_ID,
    FINISHED70_ID,
    FINISHED_ID,
    HALF_ID,
    KILLED_ID,
    dead_pid,
    full_state,
)


@pytest.fixture
def full(artifacts: Path) -> Path:
    full_state(artifacts)
    return artifacts / "runs"


def test_runs_table_shows_every_state(full: Path) -> None:
    table = dashboard.runs_table(full).set_index("run")
    assert table.loc[FINISHED_ID, "state"] == "finished"
    assert table.loc[FAILED_ID, "state"] == "failed"
    assert table.loc[FAILED_ID, "message"] == FAILED_ERROR
    assert table.loc[KILLED_ID, "state"] == "interrupted"  # 'running' with a dead pid
    assert table.loc[HALF_ID, "state"] == "unknown"
    assert "status.json missing" in table.loc[HALF_ID, "message"]
    assert table.loc[FINISHED_ID, "BLEU-1"] == pytest.approx(0.312)
    assert table.loc[FINISHED_ID, "BLEU-1 95% CI"] == "[0.281, 0.344]"
    assert table.loc[FINISHED_ID, "epoch"] == "3/3"
    assert math.isnan(table.loc[FAILED_ID, "BLEU-1"])


def test_runs_signature_changes_when_a_run_changes(full: Path) -> None:
    before = dashboard.runs_signature(full)
    assert len(before) == 5
    status = full / FINISHED_ID / "status.json"
    time.sleep(0.01)
    status.write_text(status.read_text())
    import os

    os.utime(status, (time.time() + 5, time.time() + 5))
    assert dashboard.runs_signature(full) != before


def test_default_compare_is_latest_model80_and_model70(full: Path) -> None:
    assert dashboard.default_compare(list_runs(full)) == [FINISHED_ID, FINISHED70_ID]


def test_metric_tables(full: Path) -> None:
    metrics = {
        "A": eval_artifacts.read_metrics(full / FINISHED_ID, "test"),
        "B": eval_artifacts.read_metrics(full / FINISHED70_ID, "test"),
    }
    long = eval_artifacts.metrics_table(metrics)
    row = long[(long["series"] == "B") & (long["metric"] == "BLEU-1")].iloc[0]
    assert (row["value"], row["lo"], row["hi"]) == pytest.approx((0.29, 0.26, 0.32))
    side = eval_artifacts.side_by_side(long)
    assert side.loc["BLEU-1", "A"] == "0.312 [0.281, 0.344]"
    assert side.loc["BLEU-4", "A · most-frequent baseline"] == "—"  # the baseline reports BLEU-1/2 only
    assert list(side.index[:2]) == ["BLEU-1", "BLEU-2"]
    nw = eval_artifacts.next_word_table(metrics)
    assert nw.loc["F1 (macro)", "A"] == pytest.approx(0.38)
    beside = paper.comparison(metrics, {"A": "model-80", "B": "model-70"}).set_index(["run", "figure"])
    assert beside.loc[("A", "bleu1"), "difference"] == pytest.approx(0.312 - 0.309)
    assert beside.loc[("B", "accuracy"), "paper"] == pytest.approx(0.3936)


def test_read_metrics_errors_name_the_file(full: Path) -> None:
    path = full / FINISHED_ID / "eval" / "test" / "metrics.json"
    path.write_text("{broken")
    with pytest.raises(ValueError, match=r"metrics\.json"):
        eval_artifacts.read_metrics(full / FINISHED_ID, "test")
    with pytest.raises(ValueError, match="cannot read"):
        eval_artifacts.read_metrics(full / FINISHED_ID, "nope")


def test_predictions_parse_filter_and_sort(full: Path) -> None:
    df = eval_artifacts.read_predictions(full / FINISHED_ID, "test")
    assert len(df) == 6
    assert df.loc[0, "reference"] == "axial ct shows a lesion in the liver"
    worst = dashboard.filter_predictions(df)
    assert worst["image_id"].iloc[0] == "img00000"
    ct = dashboard.filter_predictions(df, modality=["CT"], length=(8, 10))
    assert set(ct["image_id"]) == {"img00000", "img00002"}  # CT rows with ref_len 8..10


def test_predictions_missing_columns_is_a_clear_error(full: Path) -> None:
    path = full / FINISHED_ID / "eval" / "test" / "predictions.csv"
    path.write_text("image_id,prediction\na,b\n")
    with pytest.raises(ValueError, match=r"predictions.csv: lacks columns \['image_path', 'references', 'bleu1'\]"):
        eval_artifacts.read_predictions(full / FINISHED_ID, "test")


def test_attention_reading(full: Path) -> None:
    att = eval_artifacts.read_attention(full / FINISHED_ID, "test", "img00002")
    assert att is not None and att.shape == (10, 7, 7) and att.dtype == np.float32
    assert att[0, 2, 6] == pytest.approx(0.8, abs=1e-3)
    assert eval_artifacts.read_attention(full / FINISHED_ID, "test", "unknown") is None
    assert eval_artifacts.attention_ids(full / FINISHED_ID, "test")[:2] == ["img00000", "img00001"]


def test_true_boxes() -> None:
    row = {"boxes": json.dumps([{"finding": "cyst", "box": [0, 0, 0.5, 0.5]}, {"finding": "nobox"}])}
    assert dataset_view.true_boxes(row) == [{"finding": "cyst", "box": [0, 0, 0.5, 0.5]}]
    assert dataset_view.true_boxes({"boxes": "not json"}) == []
    assert dataset_view.true_boxes({}) == []


def _png(fmt: str = "PNG", size: tuple[int, int] = (20, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, 90).save(buf, format=fmt)
    return buf.getvalue()


def test_open_upload_accepts_png_and_jpeg_only() -> None:
    assert upload.open_upload(_png(), "scan.png").size == (20, 10)
    assert upload.open_upload(_png("JPEG"), "scan.jpg").mode == "RGB"
    with pytest.raises(ValueError, match="only PNG and JPEG"):
        upload.open_upload(_png("GIF"), "anim.gif")
    with pytest.raises(ValueError, match=r"evil-.-etc-passwd.png: not a readable PNG or JPEG"):
        upload.open_upload(b"\x89PNG garbage", "evil/../etc/passwd.png")
    with pytest.raises(ValueError, match="limit is"):
        upload.open_upload(_png(), "big.png", max_bytes=10)
    with pytest.raises(ValueError, match="empty"):
        upload.open_upload(b"", "empty.png")


def test_train_args_and_cli_options() -> None:
    args = jobs.train_args("model-70", "synthetic:200", 4, 7, "my run/../x", {"--lr": 0.001, "--batch-size": None})
    assert args == [
        "train", "--preset", "model-70", "--dataset", "synthetic:200", "--epochs", "4", "--seed", "7",
        "--name", "my-run-.-x", "--lr", "0.001",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="not a flag"):
        jobs.train_args("model-80", "synthetic", 1, 1, options={"lr": 1})
    assert {"--epochs", "--seed", "--preset", "--dataset"} <= jobs.cli_options("train")
    assert jobs.cli_options("no-such-command") == set()


def test_spawn_runs_detached_and_logs(artifacts: Path) -> None:
    launch = jobs.spawn(["--help"], artifacts / "launch.log")
    for _ in range(200):
        if "usage: python -m medcap" in jobs.tail(launch.log_path):
            break
        time.sleep(0.05)
    assert "usage: python -m medcap" in jobs.tail(launch.log_path)
    assert launch.command[1:3] == ["-m", "medcap"]


def _started(proc: subprocess.Popen) -> None:
    """Wait until the child has exec'd (its /proc cmdline is its own, not the forked parent's)."""
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    for _ in range(200):
        if not cmdline.exists() or b"time.sleep" in cmdline.read_bytes():
            return
        time.sleep(0.01)


def test_terminate_signals_only_running_medcap_processes(artifacts: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "medcap"])
    _started(proc)
    try:
        assert jobs.terminate({"state": "running", "pid": proc.pid}, "run x") == proc.pid
        assert proc.wait(timeout=10) == -15
    finally:
        proc.kill()
    with pytest.raises(ValueError, match="not running"):
        jobs.terminate({"state": "finished", "pid": proc.pid}, "run x")
    with pytest.raises(ValueError, match="state interrupted"):
        jobs.terminate({"state": "running", "pid": dead_pid()}, "run y")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    _started(other)
    try:
        with pytest.raises(ValueError, match="not a medcap process"):
            jobs.terminate({"state": "running", "pid": other.pid}, "run z")
    finally:
        other.kill()
        other.wait()


def test_demo_status_states(artifacts: Path) -> None:
    assert demo.demo_status() == {"state": "none"}
    (artifacts / "demo").mkdir()
    (artifacts / "demo" / "status.json").write_text(json.dumps({"state": "running", "pid": dead_pid()}))
    assert demo.demo_status()["state"] == "interrupted"


class FakeRunner(demo.Runner):
    """Pretends to run the CLI steps: 'train' creates a finished run folder and prints its JSON."""

    def __init__(self, fail_on: str = "") -> None:
        super().__init__()
        self.calls: list[list[str]] = []
        self.fail_on = fail_on

    def run(self, args: list[str], poll=None, every: float = 1.0) -> str:  # type: ignore[override]
        self.calls.append(args)
        if args[0] == self.fail_on:
            raise demo.StepFailedError(f"`python -m medcap {args[0]}` exited with code 1 (see demo.log)")
        if args[0] == "train":
            from medcap.runs import new_run_dir, write_status

            run = new_run_dir(args[args.index("--name") + 1])
            write_status(run, "finished", progress=1.0)
            if poll:
                poll()
            return json.dumps({"run_dir": str(run)})
        return "{}"


@pytest.fixture
def no_synthetic(monkeypatch: pytest.MonkeyPatch) -> None:
    import medcap.data.synthetic as synthetic

    monkeypatch.setattr(synthetic, "ensure_synthetic", lambda n: Path("."))


def test_demo_runs_every_stage_and_finishes(artifacts: Path, no_synthetic: None) -> None:
    runner = FakeRunner()
    status = demo.run_demo(demo.DemoOptions(n_images=40, epochs=2), runner)
    assert [c[0] for c in runner.calls] == ["features", "train", "train", "evaluate", "evaluate"]
    assert runner.calls[1][runner.calls[1].index("--epochs") + 1] == "2"
    assert runner.calls[2][runner.calls[2].index("--preset") + 1] == "model-70"
    saved = read_status(artifacts / "demo")
    assert saved["state"] == status["state"] == "finished"
    assert saved["progress"] == 1.0
    assert set(saved["runs"]) == {"model-80", "model-70"}
    assert "-demo-model-70-" in saved["runs"]["model-70"]
    assert runner.calls[3][1].endswith(saved["runs"]["model-80"])


def test_demo_failure_is_recorded_with_its_stage(artifacts: Path, no_synthetic: None) -> None:
    status = demo.run_demo(demo.DemoOptions(n_images=40, epochs=1), FakeRunner(fail_on="evaluate"))
    assert status["state"] == "failed"
    assert status["stage"] == "evaluate model-80"
    assert "evaluate` exited with code 1" in status["error"]
    assert status["progress"] == pytest.approx(0.8)  # dataset + features + both trainings done


def test_demo_stage_plan_sums_to_one() -> None:
    assert sum(share for _, share in demo.stage_plan()) == pytest.approx(1.0)


def test_paired_difference_table_reads_the_compare_output() -> None:
    result = {
        "n_images": 30,
        "metrics": {"bleu1": {"a": 0.3, "b": 0.31, "diff": 0.01, "ci95": [-0.02, 0.04], "share_b_gt_a": 0.7}},
        "corpus": {"a": {"bleu1": 0.3}},
    }
    table = dashboard.paired_difference_table(result)
    assert list(table["metric"]) == ["BLEU-1"]
    assert table.loc[0, "95% CI of B − A"] == "[-0.020, 0.040]"
    assert table.loc[0, "B − A"] == pytest.approx(0.01)
    assert dashboard.paired_difference_table({"other": 1}).empty


def test_synthetic_boxes_reads_an_existing_set_only(artifacts: Path) -> None:
    from tests.dashboard_fixtures import write_image

    assert dataset_view.synthetic_boxes("synthetic:3") == {}  # not generated: nothing, and nothing generated
    assert not (artifacts / "datasets" / "synthetic-3-seed0").exists()
    folder = artifacts / "datasets" / "synthetic-3-seed0"
    lines = []
    for i in range(3):
        write_image(folder / "images" / f"s{i}.png", seed=i)
        box = {"finding": "cyst", "location": "left", "size": "small", "box": [0.1 * i, 0.1, 0.5, 0.6]}
        lines.append(json.dumps({"image_id": f"s{i}", "file": f"images/s{i}.png", "caption": "a cyst", "group": "g",
                                 "boxes": [box]}))  # fmt: skip
    (folder / "records.jsonl").write_text("\n".join(lines) + "\n")
    boxes = dataset_view.synthetic_boxes("synthetic:3")
    assert boxes["s2"][0]["box"] == pytest.approx([0.2, 0.1, 0.5, 0.6])
    assert dataset_view.synthetic_boxes("medpix:x") == {}


def test_demo_reports_feature_extraction_progress(artifacts: Path) -> None:
    from medcap.io import write_json

    write_json(artifacts / "features" / "synthetic-40-vgg16-abc" / "progress.json", {"n_rows": 40, "rows_done": 10})
    progress = demo.Progress(demo.demo_dir())
    demo._features_poll(progress, demo.DemoOptions(n_images=40))()
    status = read_status(artifacts / "demo")
    assert status["message"] == "extracting VGG16 features: 10/40 images"
    assert status["progress"] == pytest.approx(0.05 + 0.25 * 10 / 40)


def test_start_demo_marks_it_queued_and_refuses_a_second_start(
    artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launched = []

    def fake_spawn(args: list[str], log_path: Path) -> jobs.Launch:
        launched.append(args)
        return jobs.Launch(pid=__import__("os").getpid(), log_path=log_path, command=args)

    monkeypatch.setattr(jobs, "spawn", fake_spawn)
    demo.start_demo(["--epochs", "1"])
    assert launched == [["demo", "--epochs", "1"]]
    status = demo.demo_status()
    assert status["state"] == "queued" and status["stage"] == "starting"
    with pytest.raises(ValueError, match="already running"):
        demo.start_demo()
    assert len(launched) == 1
