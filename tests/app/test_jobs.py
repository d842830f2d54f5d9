"""medcap.app.jobs: background `python -m medcap` processes (arguments, spawn, terminate, child environment)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from medcap.app import jobs
from medcap.base import procs
from tests.support.dashboard_fixtures import dead_pid


def test_launch_train_builds_the_command_from_the_config(artifacts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[str], Path]] = []
    monkeypatch.setattr(jobs, "spawn", lambda args, log_path: calls.append((list(args), log_path)) or log_path)
    settings = {"preset": "model-70", "dataset": "synthetic:200", "epochs": 4, "seed": 7, "name": "my run/../x",
                "learning_rate": 0.001, "batch_size": None}
    jobs.launch_train(settings)
    jobs.launch_train(settings)
    args, log_path = calls[0]
    assert args[:5] == ["train", "--preset", "model-70", "--dataset", "synthetic:200"]
    assert args[args.index("--epochs") + 1] == "4" and args[args.index("--seed") + 1] == "7"
    assert args[args.index("--name") + 1] == "my run/../x"  # an argv element; the run folder name is sanitised
    assert "--batch-size" not in args  # None: the preset's
    assert log_path.parent == jobs.launches_dir() and "my-run" in log_path.name
    assert calls[1][1] != log_path  # two launches in the same second get their own logs
    with pytest.raises(ValueError, match="epochs"):
        jobs.launch_train({"dataset": "synthetic", "epochs": 0})


def test_spawn_runs_detached_and_logs(artifacts: Path) -> None:
    launch = procs.spawn(["--help"], artifacts / "launch.log")
    for _ in range(200):
        if "usage: python -m medcap" in procs.tail(launch.log_path):
            break
        time.sleep(0.05)
    assert "usage: python -m medcap" in procs.tail(launch.log_path)
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
        assert jobs.stop({"state": "running", "pid": proc.pid}, "run x") == proc.pid
        assert proc.wait(timeout=10) == -15
    finally:
        proc.kill()
    with pytest.raises(ValueError, match="not running"):
        jobs.stop({"state": "finished", "pid": proc.pid}, "run x")
    with pytest.raises(ValueError, match="state interrupted"):
        jobs.stop({"state": "running", "pid": dead_pid()}, "run y")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    _started(other)
    try:
        with pytest.raises(ValueError, match="not a medcap process"):
            jobs.stop({"state": "running", "pid": other.pid}, "run z")
    finally:
        other.kill()
        other.wait()


def test_child_env_points_children_at_this_artifacts_root_and_project(artifacts: Path, monkeypatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = procs.child_env()
    assert env["MEDCAP_ARTIFACTS"] == str(artifacts.resolve())
    assert env["PYTHONPATH"] == "/elsewhere"  # untouched: children import the installed package
    assert (procs.project_root() / "medcap" / "__init__.py").is_file()
    assert procs.medcap_command(["evaluate", "x"]) == [sys.executable, "-m", "medcap", "evaluate", "x"]


def test_launch_log_stays_in_the_launches_folder(artifacts: Path) -> None:
    assert jobs.launch_log("20250101-000000-x.log") == artifacts / "launches" / "20250101-000000-x.log"
    assert jobs.launch_log("../../etc/passwd").parent == artifacts / "launches"
