"""medcap.experiments.demo: the demo pipeline (with a fake runner) and its dashboard side (start, status)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medcap.app import jobs
from medcap.base import procs
from medcap.experiments import demo
from medcap.runs.index import read_status
from tests.support.dashboard_fixtures import dead_pid


def test_demo_status_states(artifacts: Path) -> None:
    assert jobs.demo_status() == {"state": "none"}
    (artifacts / "demo").mkdir()
    (artifacts / "demo" / "status.json").write_text(json.dumps({"state": "running", "pid": dead_pid()}))
    assert jobs.demo_status()["state"] == "interrupted"


class FakeRunner(procs.ChildGroup):
    """Pretends to run the CLI steps: 'train' creates a finished run folder and prints its JSON."""

    def __init__(self, fail_on: str = "") -> None:
        super().__init__()
        self.calls: list[list[str]] = []
        self.envs: list[dict] = []
        self.fail_on = fail_on

    def run(self, args: list[str], poll=None, every: float = 1.0, env=None) -> str:  # type: ignore[override]
        self.calls.append(args)
        self.envs.append(env or {})
        if args[0] == self.fail_on:
            raise procs.ChildFailedError(f"`python -m medcap {args[0]}` exited with code 1 (see demo.log)")
        if args[0] == "train":
            from medcap.runs.index import new_run_dir, write_status

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
    status = demo.run_demo(demo.DemoOptions(n_images=40, epochs=2, parallel=False), runner)
    assert [c[0] for c in runner.calls] == ["features", "train", "evaluate", "train", "evaluate"]
    assert runner.calls[1][runner.calls[1].index("--epochs") + 1] == "2"
    assert runner.calls[1][runner.calls[1].index("--lr") + 1] == "0.005"
    assert runner.calls[3][runner.calls[3].index("--preset") + 1] == "model-70"
    assert runner.envs == [{}] * 5  # one at a time: every child keeps all CPU threads
    saved = read_status(artifacts / "demo")
    assert saved["state"] == status["state"] == "finished"
    assert saved["progress"] == 1.0
    assert set(saved["runs"]) == {"model-80", "model-70"}
    assert saved["evaluated"] == ["model-80", "model-70"]
    assert set(saved["timings"]) == {"dataset", "features", "train model-80", "evaluate model-80",
                                     "train model-70", "evaluate model-70"}
    assert "-demo-model-70-" in saved["runs"]["model-70"]
    assert runner.calls[2][1].endswith(saved["runs"]["model-80"])
    assert runner.calls[4][1].endswith(saved["runs"]["model-70"])


def test_demo_side_by_side_trains_each_run_then_evaluates_it(artifacts: Path, no_synthetic: None) -> None:
    runner = FakeRunner()
    status = demo.run_demo(demo.DemoOptions(n_images=40, epochs=2), runner)
    assert status["state"] == "finished" and status["progress"] == 1.0
    assert runner.calls[0][0] == "features"
    for preset in demo.PRESETS:  # within each chain: train, then evaluate that run
        steps = [c for c in runner.calls[1:] if (c[0] == "train" and preset in c)
                 or (c[0] == "evaluate" and status["runs"][preset] in c[1])]
        assert [c[0] for c in steps] == ["train", "evaluate"]
    assert sorted(status["evaluated"]) == ["model-70", "model-80"]
    threads = {e.get("TF_NUM_INTRAOP_THREADS") for e in runner.envs[1:]}
    assert threads == {demo.thread_env(True)["TF_NUM_INTRAOP_THREADS"]}  # the CPUs shared by two children


def test_demo_failure_is_recorded_with_its_stage(artifacts: Path, no_synthetic: None) -> None:
    status = demo.run_demo(demo.DemoOptions(n_images=40, epochs=1, parallel=False), FakeRunner(fail_on="evaluate"))
    assert status["state"] == "failed"
    assert status["stage"] == "evaluate model-80"
    assert "evaluate` exited with code 1" in status["error"]
    assert status["progress"] == pytest.approx(0.55)  # dataset + features + Model-80's training done


def test_demo_failure_of_one_side_by_side_run_fails_the_demo(artifacts: Path, no_synthetic: None) -> None:
    runner = FakeRunner(fail_on="evaluate")
    status = demo.run_demo(demo.DemoOptions(n_images=40, epochs=1), runner)
    assert status["state"] == "failed" and "evaluate` exited with code 1" in status["error"]
    assert [c[0] for c in runner.calls].count("train") == 2  # the other run still trained
    assert status["evaluated"] == []


def test_thread_env_halves_the_cpus_only_side_by_side() -> None:
    assert demo.thread_env(False) == {}
    env = demo.thread_env(True)
    assert int(env["TF_NUM_INTRAOP_THREADS"]) == max(1, (__import__("os").cpu_count() or 2) // 2)


def test_demo_stage_plan_sums_to_one() -> None:
    assert sum(share for _, share in demo.stage_plan()) == pytest.approx(1.0)


def test_demo_reports_feature_extraction_progress(artifacts: Path) -> None:
    from medcap.base.io import write_json

    write_json(artifacts / "features" / "synthetic-40-vgg16-abc" / "progress.json", {"n_rows": 40, "rows_done": 10})
    progress = demo.Progress(jobs.demo_dir())
    progress.update("dataset", 1.0)
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
    jobs.start_demo(["--epochs", "1"])
    assert launched == [["demo", "--epochs", "1"]]
    status = jobs.demo_status()
    assert status["state"] == "queued" and status["stage"] == "starting"
    with pytest.raises(ValueError, match="already running"):
        jobs.start_demo()
    assert len(launched) == 1
