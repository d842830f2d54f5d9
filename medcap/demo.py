"""The demo pipeline: synthetic dataset -> features -> Model-80 and Model-70 -> evaluation of both.

Each heavy step runs as its own `python -m medcap ...` child process (the same commands a user
types), one after the other. Progress goes atomically to the status file of `artifacts/demo/`
(`DemoDir`, same format as a run's): `state` (queued/running/finished/failed/cancelled), `stage`,
`progress` (0-1 over the whole demo), `message`, `error`, `pid`, `runs` ({preset: run id}).
SIGTERM stops the current step and marks the demo cancelled. `start_demo`, `demo_status` and
`cancel_demo` are the dashboard's side. No TensorFlow in this process.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medcap import jobs, paths
from medcap.config import train_cli_args
from medcap.io import read_json, safe_name
from medcap.rundir import ACTIVE_STATES, RunDir, effective_state, read_status_file, write_status_file

log = logging.getLogger(__name__)

PRESETS = ("model-80", "model-70")


@dataclass
class DemoOptions:
    """Size of the demo; the defaults take a few minutes on a laptop CPU."""

    n_images: int = 600
    epochs: int = 6
    seed: int = 0
    patience: int = 3


class DemoCancelledError(RuntimeError):
    """The demo received SIGTERM."""


class StepFailedError(RuntimeError):
    """A child command exited with an error."""


@dataclass(frozen=True)
class DemoDir:
    """`artifacts/demo/`: the demo's status file (a run's status format) and its log."""

    path: Path

    LOG = "demo.log"

    @property
    def status(self) -> Path:
        return self.path / RunDir.STATUS

    @property
    def log(self) -> Path:
        return self.path / self.LOG

    def read_status(self) -> dict[str, Any]:
        return read_status_file(self.status)

    def write_status(self, state: str, **fields: Any) -> dict[str, Any]:
        return write_status_file(self.status, state, **fields)


def demo_dir() -> DemoDir:
    """The demo's folder under the artifacts root (it may not exist yet)."""
    return DemoDir(paths.artifacts_dir() / "demo")


# (stage name, share of the whole demo's progress)
def stage_plan() -> list[tuple[str, float]]:
    """The demo's stages with their share of the overall progress bar (sums to 1)."""
    return [
        ("dataset", 0.05),
        ("features", 0.25),
        ("train model-80", 0.25),
        ("train model-70", 0.25),
        ("evaluate model-80", 0.10),
        ("evaluate model-70", 0.10),
    ]


class Progress:
    """Writes the demo's status as stages advance."""

    def __init__(self, folder: DemoDir) -> None:
        self.folder = folder
        self.plan = stage_plan()
        self.runs: dict[str, str] = {}

    def _start_of(self, stage: str) -> tuple[float, float]:
        done = 0.0
        for name, share in self.plan:
            if name == stage:
                return done, share
            done += share
        raise KeyError(stage)

    def update(self, stage: str, fraction: float = 0.0, message: str = "") -> None:
        """Mark `stage` as `fraction` done (0-1)."""
        start, share = self._start_of(stage)
        overall = round(start + share * min(max(fraction, 0.0), 1.0), 4)
        self.folder.write_status(
            "running",
            stage=stage,
            progress=overall,
            message=message or stage,
            error=None,
            pid=os.getpid(),
            runs=dict(self.runs),
        )


class Runner:
    """Runs child commands one at a time; SIGTERM forwards to the current child and cancels."""

    def __init__(self) -> None:
        self.child: subprocess.Popen[str] | None = None
        self.cancelled = False

    def on_sigterm(self, signum: int, frame: Any) -> None:
        self.cancelled = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

    def run(self, args: list[str], poll: Callable[[], None] | None = None, every: float = 1.0) -> str:
        """Run `python -m medcap <args>`; return its stdout. `poll` is called while it runs."""
        if self.cancelled:
            raise DemoCancelledError("cancelled")
        log.info("demo: %s", " ".join(args))
        child = subprocess.Popen(
            jobs.medcap_command(args), stdout=subprocess.PIPE, stderr=None, text=True, env=jobs.child_env()
        )
        self.child = child
        chunks: list[str] = []
        reader = threading.Thread(
            target=lambda: chunks.append(child.stdout.read() if child.stdout else ""), daemon=True
        )
        reader.start()
        while child.poll() is None:
            if poll is not None:
                try:
                    poll()
                except (OSError, ValueError) as exc:
                    log.debug("progress poll: %s", exc)
            time.sleep(every)
        reader.join(timeout=10)
        code = child.returncode
        self.child = None
        if self.cancelled:
            raise DemoCancelledError("cancelled")
        if code != 0:
            raise StepFailedError(
                f"`python -m medcap {' '.join(args[:1])}` exited with code {code} (see {DemoDir.LOG})"
            )
        return "".join(chunks)


def _new_run(before: set[str], label: str) -> Path | None:
    """The run folder created since `before` whose name carries `label`."""
    root = paths.runs_dir()
    fresh = [p for p in root.iterdir() if p.is_dir() and p.name not in before and f"-{label}-" in p.name]
    return max(fresh, key=lambda p: p.name) if fresh else None


def _train(runner: Runner, progress: Progress, preset: str, spec: str, opts: DemoOptions) -> str:
    stage = f"train {preset}"
    label = safe_name(f"demo-{preset}", max_len=40)
    before = {p.name for p in paths.runs_dir().iterdir()}

    def poll() -> None:
        run = _new_run(before, label)
        if run is None:
            return
        status = RunDir(run).read_status()
        progress.runs[preset] = run.name
        progress.update(
            stage,
            float(status.get("progress") or 0.0),
            f"{preset}: epoch {status.get('epoch', 0)}/{status.get('epochs', opts.epochs)} · {status.get('message')}",
        )

    progress.update(stage, 0.0, f"{preset}: preparing")
    settings = {"preset": preset, "dataset": spec, "epochs": opts.epochs, "seed": opts.seed, "name": label,
                "patience": opts.patience}
    args = [*train_cli_args(settings), "--json"]
    out = runner.run(args, poll)
    run = _run_dir_from(out) or _new_run(before, label)
    if run is None:
        raise StepFailedError(f"train {preset}: finished but its run folder was not found")
    progress.runs[preset] = run.name
    return str(run)


def _features_poll(progress: Progress, opts: DemoOptions) -> Callable[[], None]:
    """Report the feature extraction's own progress file (rows done of rows) as the stage's progress."""

    def poll() -> None:
        for folder in paths.features_dir().glob(f"synthetic-{opts.n_images}-*"):
            state = read_json(folder / "progress.json") if (folder / "progress.json").is_file() else None
            if isinstance(state, dict) and state.get("n_rows"):
                done, total = int(state.get("rows_done", 0)), int(state["n_rows"])
                progress.update("features", done / total, f"extracting VGG16 features: {done}/{total} images")
                return

    return poll


def _run_dir_from(stdout: str) -> Path | None:
    import json

    text = stdout.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        last = Path(text.splitlines()[-1].strip())
        return last if last.is_dir() else None
    run_dir = data.get("run_dir") if isinstance(data, dict) else None
    return Path(run_dir) if run_dir and Path(run_dir).is_dir() else None


@contextmanager
def _sigterm(runner: Runner) -> Iterator[None]:
    try:
        previous = signal.signal(signal.SIGTERM, runner.on_sigterm)
    except ValueError:  # not the main thread (tests): no handler
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(opts: DemoOptions | None = None, runner: Runner | None = None) -> dict[str, Any]:
    """Build the whole demo; returns the final status. Never raises for a failed step: the status says."""
    opts = opts or DemoOptions()
    runner = runner or Runner()
    folder = demo_dir()
    progress = Progress(folder)
    started = time.monotonic()
    spec = f"synthetic:{opts.n_images}"
    folder.write_status(
        "running",
        stage="dataset",
        progress=0.0,
        message="starting",
        error=None,
        pid=os.getpid(),
        runs={},
        started=time.time(),
        options=vars(opts),
    )
    with _sigterm(runner):
        try:
            progress.update("dataset", 0.0, f"generating {opts.n_images} synthetic images")
            from medcap.data.synthetic import ensure_synthetic

            ensure_synthetic(n=opts.n_images)
            progress.update("features", 0.0, "extracting VGG16 features")
            runner.run(["features", "--dataset", spec, "--json", "--no-progress"], _features_poll(progress, opts))
            run_dirs = {preset: _train(runner, progress, preset, spec, opts) for preset in PRESETS}
            for preset in PRESETS:
                progress.update(f"evaluate {preset}", 0.0, f"evaluating {preset}")
                runner.run(["evaluate", run_dirs[preset], "--json"])
        except DemoCancelledError:
            return folder.write_status("cancelled", message="cancelled by SIGTERM", pid=os.getpid())
        except Exception as exc:  # the status must say what went wrong, whatever it was
            log.exception("demo failed")
            return folder.write_status(
                "failed", error=f"{type(exc).__name__}: {exc}", message="failed", pid=os.getpid()
            )
    seconds = round(time.monotonic() - started, 1)
    return folder.write_status(
        "finished",
        stage="done",
        progress=1.0,
        message=f"finished in {seconds} s",
        seconds=seconds,
        pid=os.getpid(),
        runs=dict(progress.runs),
    )


# ----------------------------------------------------------------------------------------------
# the dashboard's side


def demo_status() -> dict[str, Any]:
    """The demo's status (state 'none' before any demo); a dead 'running' demo shows 'interrupted'."""
    folder = demo_dir()
    if not folder.status.exists():
        return {"state": "none"}
    status = folder.read_status()
    status["state"] = effective_state(status)
    return status


def start_demo(extra_args: Iterable[str] = ()) -> jobs.Launch:
    """Start `python -m medcap demo` in the background unless one is already running.

    The status says 'queued' (with the child's pid) before the child writes its own status, so a
    second click during start-up is refused.
    """
    if demo_status()["state"] in ACTIVE_STATES:
        raise ValueError("the demo is already running")
    folder = demo_dir()
    folder.write_status("queued", stage="starting", progress=0.0, message="starting", error=None, pid=None, runs={})
    try:
        launch = jobs.spawn(["demo", *extra_args], folder.log)
    except OSError as exc:
        folder.write_status("failed", error=f"could not start the demo: {exc}")
        raise
    if folder.read_status().get("state") == "queued":
        folder.write_status("queued", pid=launch.pid)
    return launch


def cancel_demo() -> int:
    """Stop a running demo (SIGTERM; it stops its current step and marks itself cancelled)."""
    return jobs.terminate(demo_status(), "demo")
