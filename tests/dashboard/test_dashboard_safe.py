"""Issue 12 on the dashboard's side: path refusal, bounded uploads, background synthetic sets, run locks,
bad config.json, missing weights and one broken metrics.json, under Streamlit's AppTest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from medcap.app import jobs
from medcap.base import procs
from medcap.base.locks import RunLock
from medcap.data.roots import REFUSED_TEXT
from tests.support.dashboard_fixtures import (
    FINISHED70_ID,
    FINISHED_ID,
    KILLED_ID,
    full_state,
    small_state,
    write_image,
)
from tests.support.pages import frames, run_page, texts

ROOT = Path(__file__).resolve().parents[2]


def _load_spec(at, spec: str):
    at.text_input[0].input(spec)
    return at.button[0].click().run()


# ---- 1. the Data page reads only inside the data folders -----------------------------------------


@pytest.mark.parametrize("spec", ["csv:/etc/passwd", "csv:/no/such/file.csv", "medpix:/etc", "csv:../../etc/passwd"])
def test_a_spec_outside_the_data_folders_gets_one_refusal(spec: str) -> None:
    at = _load_spec(run_page("data"), spec)
    assert not at.exception
    assert [e.value for e in at.error] == [f"`{spec}`: {REFUSED_TEXT}"]  # same text, file there or not
    shown = texts(at)
    assert "root:" not in shown and "Records read" not in [m.label for m in at.metric]


def test_the_dataset_list_comes_from_the_data_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      artifacts: Path) -> None:
    data = tmp_path / "mydata"
    rows = [{"image_path": f"im{i}.png", "caption": f"axial ct lesion {i}"} for i in range(3)]
    for i in range(3):
        write_image(data / "set1" / f"im{i}.png", seed=i)
    pd.DataFrame(rows).to_csv(data / "set1" / "captions.csv", index=False)
    monkeypatch.setenv("MEDCAP_DATA", str(data))
    small_state(artifacts)  # its runs used synthetic:40: offered (generated sets always pass)
    config = json.loads((artifacts / "runs" / FINISHED_ID / "config.json").read_text())
    config["run"]["dataset"] = "csv:/etc/passwd"  # a run's dataset outside the folders is not offered
    (artifacts / "runs" / FINISHED_ID / "config.json").write_text(json.dumps(config))
    for page in ("data", "train"):
        at = run_page(page)
        options = at.selectbox[0].options if page == "data" else at.selectbox[1].options
        assert f"csv:{data / 'set1' / 'captions.csv'}" in options, page
        assert "synthetic:40" in options and "csv:/etc/passwd" not in options, page
        assert not any("shared/data" in o for o in options), page


# ---- 2. uploads are bounded ----------------------------------------------------------------------


def test_an_oversized_upload_is_refused_before_decoding(tmp_path: Path) -> None:
    from medcap.data.images import open_upload

    path = tmp_path / "huge.png"
    Image.new("1", (13000, 13000)).save(path)  # 169 MP, a 21 KB file
    with pytest.raises(ValueError, match=r"huge.png: image is too large \(13000 x 13000"):
        open_upload(path.read_bytes(), "huge.png")


RSS_SCRIPT = """
import resource, sys
from medcap.data.images import display_copy, open_upload
idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
data = open(sys.argv[1], "rb").read()
img = open_upload(data, "big.png")
shown = display_copy(img)
print(idle, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, img.size, shown.size)
"""


def test_the_largest_accepted_upload_stays_within_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("1", (9400, 9400)).save(path)  # just under MAX_PIXELS
    out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, check=True).stdout.split(maxsplit=2)
    idle_kb, peak_kb = int(out[0]), int(out[1])
    assert (peak_kb - idle_kb) * 1024 < 1.5e9
    assert out[2].strip() == "(9400, 9400) (1024, 1024)"


# ---- 4. synthetic:N is generated in the background, bounded ---------------------------------------


def test_synthetic_beyond_the_maximum_is_refused_and_nothing_is_generated(artifacts: Path) -> None:
    at = _load_spec(run_page("data"), "synthetic:6000")
    assert not at.exception
    assert any("at most 5,000 images" in e.value for e in at.error)
    assert not (artifacts / "datasets").exists() or not any((artifacts / "datasets").iterdir())
    with pytest.raises(ValueError, match="1 to 5,000 images"):
        jobs.launch_synthetic(6000)


def _wait(pred, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pred():
        time.sleep(0.2)


def test_synthetic_is_generated_by_a_background_job_then_shown(artifacts: Path) -> None:
    from medcap.app import datasets

    at = _load_spec(run_page("data"), "synthetic:6")
    assert not at.exception
    assert any("not generated yet" in i.value for i in at.info)
    assert not datasets.synthetic_ready(6)  # the page generated nothing itself
    at.button(key="gen_synthetic").click().run()
    job = jobs.synthetic_job(6)
    assert job["pid"] != os.getpid() and job["state"] in ("running", "interrupted")
    _wait(lambda: datasets.synthetic_ready(6) and not procs.pid_alive(job["pid"]))
    assert datasets.synthetic_ready(6)
    at.run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Records read"] == "6"


def test_a_background_generation_can_be_cancelled(artifacts: Path) -> None:
    from medcap.app import datasets

    launch = jobs.launch_synthetic(5000)
    _wait(lambda: datasets.synthetic_rendered(5000) > 0 or not procs.pid_alive(launch.pid))
    assert jobs.synthetic_job(5000)["state"] == "running"
    jobs.cancel_synthetic(5000)
    _wait(lambda: not procs.pid_alive(launch.pid), timeout=60)
    assert not procs.pid_alive(launch.pid)
    assert jobs.synthetic_job(5000)["state"] == "cancelled"
    assert not datasets.synthetic_ready(5000)
    log_names = sorted(p.name for p in (artifacts / "launches").glob("*.log"))
    assert len(log_names) == 1 and "synthetic-5000" in log_names[0]


# ---- 5. the Train page does not offer Resume while a process holds the run ----------------------


def test_resume_is_hidden_while_a_live_process_holds_the_run(artifacts: Path) -> None:
    full_state(artifacts)
    with RunLock(artifacts / "runs" / KILLED_ID):
        at = run_page("train")
        at.selectbox(key="train_run").set_value(KILLED_ID).run()
        assert not at.exception
        assert "Resume run" not in [b.label for b in at.button]
        assert f"is being trained by pid {os.getpid()}" in texts(at)
    at.run()
    assert "Resume run" in [b.label for b in at.button]  # offered again once the lock is free


# ---- 6. a wrong-typed config.json value is named on the page -----------------------------------


def test_a_wrong_typed_config_value_is_named_on_the_train_page(artifacts: Path) -> None:
    small_state(artifacts)
    path = artifacts / "runs" / FINISHED_ID / "config.json"
    config = json.loads(path.read_text())
    config["run"]["lstm_units"] = "lots"
    path.write_text(json.dumps(config))
    at = run_page("train")
    at.selectbox(key="train_run").set_value(FINISHED_ID).run()
    assert not at.exception
    shown = texts(at)
    assert "Unusable config.json" in shown and "lstm_units" in shown and "lots" in shown
    assert not {"Resume run", "Evaluate"} & {b.label for b in at.button}


# ---- 7. a finished run whose weights are gone ---------------------------------------------------


def test_a_finished_run_without_weights_says_so_and_offers_resume(artifacts: Path) -> None:
    small_state(artifacts)
    (artifacts / "runs" / FINISHED_ID / "weights" / "best.weights.h5").unlink()
    at = run_page("train")
    states = frames(at)[0].set_index("run")["state"]
    assert states[FINISHED_ID] == "finished (weights missing)"
    at.selectbox(key="train_run").set_value(FINISHED_ID).run()
    shown = texts(at)
    assert "Weights missing" in shown and "best.weights.h5" in shown and "train --resume" in shown
    assert "Resume run" in [b.label for b in at.button]
    home = run_page("home")
    assert frames(home)[0].set_index("run")["state"][FINISHED_ID] == "finished (weights missing)"
    caption = run_page("caption")
    assert not caption.exception
    assert any("weights missing" in w.value for w in caption.warning)
    assert not caption.get("file_uploader")


# ---- 9. one broken metrics.json never hides the others -------------------------------------------


def test_one_malformed_metrics_file_does_not_hide_the_paper_comparison(artifacts: Path) -> None:
    full_state(artifacts)
    (artifacts / "runs" / FINISHED70_ID / "eval" / "test" / "metrics.json").write_text("{not json")
    at = run_page("home")
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    assert "medcap beside the paper" in texts(at)
    beside = frames(at)[-1]
    assert set(beside["figure"]) == {"accuracy", "precision", "recall", "f1", "bleu1", "bleu2"}
    assert (beside["run"] == "model-80").all()  # the model-80 run, the broken model-70 left out
    assert any(FINISHED70_ID in m.value and "Left out" in m.value for m in at.markdown)


def test_launch_logs_started_in_the_same_second_are_distinct(artifacts: Path) -> None:
    names = {jobs._stamped_log("same").name for _ in range(20)}
    assert len(names) == 20
