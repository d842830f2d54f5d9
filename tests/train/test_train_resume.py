"""Resume after SIGKILL, SIGTERM -> cancelled, and MirroredStrategy on 2 logical CPUs (subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from medcap.runs.index import read_history, read_status
from tests.support.tiny import make_tiny, tiny_config

ROOT = Path(__file__).resolve().parents[2]

# Trains the tiny run whose RunConfig JSON is argv[1] into the folder argv[2] (optionally on 2 logical CPUs).
TRAIN_SCRIPT = """
import json, sys
if len(sys.argv) > 3 and sys.argv[3] == "2cpu":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from pathlib import Path
from medcap.config import RunConfig
from medcap.train import train_run
train_run(RunConfig.from_dict(json.loads(sys.argv[1])), run_dir=Path(sys.argv[2]))
"""


def _env(artifacts: Path) -> dict[str, str]:
    return {**os.environ, "MEDCAP_ARTIFACTS": str(artifacts),
            "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": "1"}


def _start(cfg_json: str, run: Path, artifacts: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TRAIN_SCRIPT, cfg_json, str(run), *extra], cwd=ROOT,
                            env=_env(artifacts), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(pred, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc.poll() is not None:
            pytest.fail(f"training process ended early (rc {proc.returncode}): {proc.stderr.read()[-2000:]}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("timed out waiting for the training process")


def _finished_epochs(run: Path) -> int:
    return len(read_history(run))


@pytest.fixture(scope="module")
def tiny_big(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    return make_tiny(tmp_path_factory.mktemp("tiny-resume"), n=60)


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tiny_big: tuple[str, Path], artifacts: Path,
                                                          tmp_path: Path) -> None:
    from medcap.train import train_run

    spec, store = tiny_big
    cfg = tiny_config(spec, store, epochs=4, batch_size=8)
    killed = tmp_path / "killed"
    proc = _start(json.dumps(cfg.to_dict()), killed, artifacts)
    _wait_for(lambda: _finished_epochs(killed) >= 1, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done_at_kill = _finished_epochs(killed)
    assert 1 <= done_at_kill < 4, "the kill must land mid-run"
    assert read_status(killed)["state"] == "running"  # what a SIGKILL leaves behind

    out = subprocess.run([sys.executable, "-m", "medcap", "train", "--resume", str(killed), "--json"], cwd=ROOT,
                         env=_env(artifacts), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["state"] == "finished"
    resumed = read_history(killed)
    assert resumed["epoch"].tolist() == [1, 2, 3, 4]  # each epoch exactly once

    straight = read_history(train_run(cfg))
    cols = ["loss", "accuracy", "val_loss", "val_accuracy", "lr"]
    # epochs after the kill continue with the same data order, dropout seeds and Adam state
    np.testing.assert_allclose(resumed[cols].to_numpy(), straight[cols].to_numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_sigterm_marks_the_run_cancelled(tiny_big: tuple[str, Path], artifacts: Path, tmp_path: Path) -> None:
    spec, store = tiny_big
    run = tmp_path / "cancel"
    proc = _start(json.dumps(tiny_config(spec, store, epochs=50, batch_size=8).to_dict()), run, artifacts)
    _wait_for(lambda: read_status(run).get("step", 0) > 0, proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    status = read_status(run)
    assert status["state"] == "cancelled" and "SIGTERM" in status["message"]


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tiny_big: tuple[str, Path], artifacts: Path, tmp_path: Path) -> None:
    spec, store = tiny_big
    run = tmp_path / "mirrored"
    cfg = tiny_config(spec, store, epochs=1, batch_size=16, strategy="mirrored")
    proc = _start(json.dumps(cfg.to_dict()), run, artifacts, "2cpu")
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-2000:]
    assert read_status(run)["state"] == "finished"
    assert read_history(run)["epoch"].tolist() == [1]
    log = (run / "train.log").read_text()
    assert "MirroredStrategy (2 replicas)" in log
