"""Issue 12 on real tiny runs: run locks, bad config.json, deleted weights, 16-bit PNG caption parity."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from medcap.base.locks import RunLock
from medcap.cli import main
from medcap.config import RunConfig
from medcap.features.backbones import Backbone
from medcap.runs.index import read_history, read_status
from tests.support.tiny import make_tiny, tiny_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunConfig, Path]:
    """One finished 2-epoch tiny run; tests copy it before changing it."""
    from medcap.train import train_run

    spec, store = make_tiny(tmp_path_factory.mktemp("tiny-safe"))
    cfg = tiny_config(spec, store, epochs=2)
    return cfg, train_run(cfg, run_dir=tmp_path_factory.mktemp("runs") / "tiny")


def _copy(run: Path, tmp_path: Path, name: str = "copy") -> Path:
    dest = tmp_path / "runs" / name
    shutil.copytree(run, dest)
    return dest


# ---- 5. run locks ---------------------------------------------------------------------------------


def test_resume_of_a_run_being_trained_is_refused_by_the_cli(tiny_run: tuple[RunConfig, Path], tmp_path: Path,
                                                             artifacts: Path) -> None:
    """This process holds the run's lock (as a training would); `train --resume` in a second process
    says who holds it, exits non-zero, and touches nothing."""
    run = _copy(tiny_run[1], tmp_path)
    (run / "status.json").write_text(json.dumps({**read_status(run), "state": "cancelled"}))
    before = (run / "status.json").read_text()
    with RunLock(run):
        done = subprocess.run([sys.executable, "-m", "medcap", "train", "--resume", str(run)], cwd=ROOT,
                              env={**os.environ, "MEDCAP_ARTIFACTS": str(artifacts), "TF_CPP_MIN_LOG_LEVEL": "3"},
                              capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 3, done.stderr[-2000:]
    assert f"{run} is already being trained by pid {os.getpid()}" in done.stderr
    assert "Traceback" not in done.stderr
    assert (run / "status.json").read_text() == before  # the refused resume wrote nothing


def test_training_holds_the_lock_for_the_whole_run(tiny_run: tuple[RunConfig, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from medcap.base.locks import lock_holder
    from medcap.train import runner

    seen: list[int | None] = []
    real_fit = runner.fit_run

    def spying_fit(run_dir, *args, **kwargs):
        seen.append(lock_holder(run_dir))
        return real_fit(run_dir, *args, **kwargs)

    monkeypatch.setattr(runner, "fit_run", spying_fit)
    cfg = tiny_run[0]
    run = runner.train_run(RunConfig.from_dict({**cfg.to_dict(), "epochs": 1}), run_dir=tmp_path / "held")
    assert seen == [os.getpid()]
    assert lock_holder(run) is None  # released at the end


# ---- 6. wrong value types in config.json ---------------------------------------------------------


@pytest.mark.parametrize("command", ["evaluate", "resume"])
def test_a_wrong_typed_config_value_names_the_field(command: str, tiny_run: tuple[RunConfig, Path],
                                                    tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = _copy(tiny_run[1], tmp_path)
    config = json.loads((run / "config.json").read_text())
    config["run"]["lstm_units"] = "lots"
    (run / "config.json").write_text(json.dumps(config))
    (run / "status.json").write_text(json.dumps({**read_status(run), "state": "failed"}))
    argv = ["evaluate", str(run), "--no-meteor"] if command == "evaluate" else ["train", "--resume", str(run)]
    with caplog.at_level(logging.ERROR, logger="medcap"):
        rc = main(argv)
    assert rc == 2
    message = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "config.json" in message and "lstm_units" in message and "lots" in message
    assert read_status(run)["state"] == "failed"  # nothing was started


# ---- 7. deleted weights ---------------------------------------------------------------------------


def test_evaluate_without_weights_says_why_and_what_to_do(tiny_run: tuple[RunConfig, Path], tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    run = _copy(tiny_run[1], tmp_path)
    shutil.rmtree(run / "weights")
    with caplog.at_level(logging.ERROR, logger="medcap"):
        rc = main(["evaluate", str(run), "--no-meteor"])
    assert rc == 2
    message = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "weights missing" in message and "best.weights.h5" in message
    assert f"train --resume {run.name}" in message


def test_resume_after_weights_were_deleted_restarts_from_epoch_1_and_says_why(
        tiny_run: tuple[RunConfig, Path], tmp_path: Path) -> None:
    from medcap.train import resume_run

    run = _copy(tiny_run[1], tmp_path)
    assert read_status(run)["state"] == "finished"
    shutil.rmtree(run / "weights")
    resume_run(run)
    log_text = (run / "train.log").read_text()
    assert "resume.npz is missing" in log_text and "restarts from epoch 1" in log_text
    status = read_status(run)
    assert status["state"] == "finished" and "restarted from epoch 1" in status["message"]
    assert read_history(run)["epoch"].tolist() == [1, 2]
    assert (run / "weights" / "best.weights.h5").is_file()


def test_resume_with_its_state_continues_and_says_nothing_about_restarting(
        tiny_run: tuple[RunConfig, Path], tmp_path: Path) -> None:
    from medcap.train import resume_run

    run = _copy(tiny_run[1], tmp_path)
    (run / "status.json").write_text(json.dumps({**read_status(run), "state": "cancelled"}))
    resume_run(run)
    status = read_status(run)
    assert status["state"] == "finished" and "restarted" not in status["message"]
    assert read_history(run)["epoch"].tolist() == [1, 2]  # nothing left to train: history kept


# ---- 3. 16-bit PNG: CLI caption == dashboard caption ----------------------------------------------


def _hand_made_backbone() -> Backbone:
    """28x28 input; grid (7, 7, 512) = 4x4 average pool tiled over channels; global (8,) = channel means."""

    def build():
        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 3], tf.uint8)])
        def run(images):
            x = tf.cast(images, tf.float32) / 255.0  # (B, 28, 28, 3)
            pooled = tf.nn.avg_pool2d(x, 4, 4, "VALID")  # (B, 7, 7, 3)
            grid = tf.tile(pooled, [1, 1, 1, 171])[..., :512]  # (B, 7, 7, 512)
            glob = tf.tile(tf.reduce_mean(pooled, axis=[1, 2]), [1, 3])[:, :8] * 3.0  # (B, 8)
            return glob, grid

        return run

    return Backbone("hand-made", 28, 8, (7, 7, 512), "test", "0" * 64, "mean", "avgpool", "x/255", build)


def test_a_16bit_png_gets_the_same_caption_from_the_cli_and_the_dashboard(
        tiny_run: tuple[RunConfig, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from medcap.data.images import open_upload
    from medcap.features import featurizer
    from medcap.inference.opened import load_run

    backbone = _hand_made_backbone()
    monkeypatch.setattr(featurizer, "get_backbone", lambda name, precision="float32": backbone)
    yy, xx = np.mgrid[0:56, 0:56]
    arr = ((xx * 1100 + yy * 60) % 65536).astype(np.uint16)  # (56, 56) values far above 255
    path = tmp_path / "scan16.png"
    Image.fromarray(arr).save(path)
    assert Image.open(path).mode in ("I;16", "I")

    assert main(["caption", str(tiny_run[1]), str(path), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)["captions"][0]

    uploaded = open_upload(path.read_bytes(), "scan16.png")  # what the Caption page decodes
    loaded = load_run(tiny_run[1])
    from_file = loaded.featurizer()(str(path))
    from_upload = loaded.featurizer()(uploaded)
    np.testing.assert_array_equal(from_upload[0], from_file[0])  # same pixels -> same features
    np.testing.assert_array_equal(from_upload[1], from_file[1])
    dash = loaded.caption_images([uploaded])[0]
    assert cli["caption"] == dash.text and cli["words"] == list(dash.words)
    np.testing.assert_allclose(cli["probs"], [round(float(p), 5) for p in dash.probs])
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    clipped = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")  # the old upload path clipped at 255
    assert not np.array_equal(np.asarray(clipped), np.asarray(uploaded))
